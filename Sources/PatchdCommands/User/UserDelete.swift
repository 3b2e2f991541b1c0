// PatchdCommands: `user delete NAME --yes`: removes a user and their keys. Gate: admin.

import ArgumentParser
import PatchdCore
import SSHKeys

struct UserDelete: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "remove a user and their keys")
    static let gate = onlyAdminsManageUsers

    @Argument(help: "The user's name.")
    var name: String
    @Flag(help: "Confirms.")
    var yes = false

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        guard yes else { return invocation.usage("deleting a user removes their keys; add --yes to confirm") }
        guard name != ctx.identity.userName else { return invocation.fail("you cannot delete yourself") }
        try ctx.users.deleteUser(name: name)
        invocation.out("deleted \(name)\n")
        return 0
    }
}
