// PatchdCommands: `user list [--json]`: every user, with key counts. Gate: admin.

import ArgumentParser
import PatchdCore

struct UserList: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "every user, with how many keys they have")
    static let gate = onlyAdminsManageUsers

    @Flag(help: "A JSON array.")
    var json = false

    struct UserJSON: Encodable {
        let name: String
        let admin: Bool
        let keys: Int
        let created_at: String
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let counts = try ctx.users.keyCounts()
        let users = try ctx.users.allUsers().map {
            UserJSON(name: $0.name, admin: $0.isAdmin, keys: counts[$0.id!] ?? 0, created_at: RunJSON.iso($0.createdAt))
        }
        if json { return invocation.json(users) }
        invocation.out(
            TextTable.render(
                ["NAME", "ADMIN", "KEYS", "CREATED"],
                users.map {
                    [$0.name, $0.admin ? "yes" : "no", String($0.keys), $0.created_at]
                }))
        return 0
    }
}
