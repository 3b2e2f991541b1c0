// PatchdCommands: `user create NAME --key KEYLINE [--admin]`: a new user with one key. Gate: admin.

import ArgumentParser
import PatchdCore
import SSHKeys

struct UserCreate: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "a new user with one key",
        discussion: "KEYLINE as in ~/.ssh/id_ed25519.pub: 'TYPE BASE64 [COMMENT]', quoted or as separate words.")
    static let gate = onlyAdminsManageUsers

    @Argument(help: "The user's name.")
    var name: String
    // The key line has spaces; the client's shell usually splits it: the words after --key's value belong to it.
    @Argument(help: .hidden)
    var keyRest: [String] = []
    @Option(help: "The user's OpenSSH public key line.")
    var key: String?
    @Flag(help: "Make the user an admin.")
    var admin = false

    func validate() throws {
        guard key != nil else { throw ValidationError("--key is required") }
        guard keyRest.count <= 2 else { throw ValidationError("too many arguments") }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let parsed: PublicKey
        do { parsed = try ctx.parseKey(([key ?? ""] + keyRest).joined(separator: " ")) } catch { return invocation.fail("\(error)") }
        let user = try ctx.users.createUser(name: name, key: parsed, admin: admin)
        invocation.out("created \(user.name)\(user.isAdmin ? " (admin)" : "") with key \(parsed.fingerprint)\n")
        return 0
    }
}
