// PatchdCommands: `key remove FINGERPRINT`: removes one of your keys; your last key stays. Gate: anyone (own keys only).

import ArgumentParser
import PatchdCore
import SSHKeys

struct KeyRemove: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "remove one of your keys; your last key stays")
    static let gate = CommandGate.anyone

    @Argument(help: "The key's SHA256:... fingerprint (key list shows it).")
    var fingerprint: String

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        try ctx.users.removeKey(userID: ctx.identity.userID, fingerprint: fingerprint, allowLast: false)
        invocation.out("removed \(fingerprint)\n")
        return 0
    }
}
