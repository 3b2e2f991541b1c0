// PatchdCommands: `key add KEYLINE`: adds a key to your account; a key belongs to one user. Gate: anyone (own keys only).

import ArgumentParser
import PatchdCore
import SSHKeys

struct KeyAdd: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "add a key to your account; a key belongs to one user",
        discussion: "The key line as in ~/.ssh/id_ed25519.pub: 'TYPE BASE64 [COMMENT]', quoted or as separate words.")
    static let gate = CommandGate.anyone

    @Argument(help: "The OpenSSH public key line.")
    var keyline: [String]

    func validate() throws {
        // A key line has spaces: accept it quoted as one word or as up to three words.
        guard (1...3).contains(keyline.count) else { throw ValidationError("too many arguments") }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let key: PublicKey
        do { key = try ctx.parseKey(keyline.joined(separator: " ")) } catch { return invocation.fail("\(error)") }
        try ctx.users.addKey(userID: ctx.identity.userID, key: key)
        invocation.out("added \(key.fingerprint) (\(key.type))\n")
        return 0
    }
}
