// PatchdCommands: `repo collab list NAME [--json]`: who else may read or push. Gate: read.

import ArgumentParser
import PatchdCore

struct RepoCollabList: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "collaborators and their roles")
    static let gate = CommandGate.repository(.read)

    @Argument(help: "The repository.")
    var name: String
    @Flag(help: "A JSON array.")
    var json = false

    var gateSubject: String? { name }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let repo = try invocation.repo
        let collabs = try invocation.context.repoStore.collaborators(repoID: repo.record.id!).map { CollabJSON(user: $0.0.name, role: $0.1) }
        if json { return invocation.json(collabs) }
        if collabs.isEmpty { invocation.out("\(repo.name) has no collaborators\n"); return 0 }
        invocation.out(TextTable.render(["USER", "ROLE"], collabs.map { [$0.user, $0.role] }))
        return 0
    }
}
