// PatchdCommands: `user key remove NAME FINGERPRINT [--yes]`: removes another user's key. Gate: admin.

import ArgumentParser
import PatchdCore

struct UserKeyRemove: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "remove a user's key; --yes allows their last")
    static let gate = onlyAdminsManageUsers

    @Argument(help: "The user's name.")
    var name: String
    @Argument(help: "The key's SHA256:... fingerprint.")
    var fingerprint: String
    @Flag(help: "Allow removing the user's last key (they can no longer log in).")
    var yes = false

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        guard let user = try ctx.users.user(named: name) else { return invocation.fail("no user '\(shown(name))'") }
        try ctx.users.removeKey(userID: user.id!, fingerprint: fingerprint, allowLast: yes)
        invocation.out("removed \(fingerprint) from \(user.name)\n")
        return 0
    }
}
