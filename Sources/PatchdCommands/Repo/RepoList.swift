// PatchdCommands: `repo list [--json]`: the repositories you can read, with your role. Gate: anyone.

import ArgumentParser
import PatchdCore
import SSHKeys

struct RepoList: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "repositories you can read, with your role")
    static let gate = CommandGate.anyone

    @Flag(help: "A JSON array.")
    var json = false

    struct RepoJSON: Encodable {
        let name: String
        let owner: String?
        let role: String
        let created_at: String
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let repos = try ctx.repoStore.visible(userID: ctx.identity.userID)
        let items = repos.map {
            RepoJSON(
                name: $0.0.name, owner: ctx.ownerName($0.0), role: $0.1.description,
                created_at: RunJSON.iso($0.0.createdAt))
        }
        if json { return invocation.json(items) }
        if items.isEmpty {
            invocation.out("no repositories yet; push to ssh://git@HOST:PORT/NAME to create one\n")
            return 0
        }
        invocation.out(
            TextTable.render(
                ["NAME", "OWNER", "ROLE", "CREATED"],
                zip(items, repos).map {
                    [$0.0.name, $0.0.owner ?? "-", $0.0.role, RelativeTime.describe($0.1.0.createdAt)]
                }))
        return 0
    }
}
