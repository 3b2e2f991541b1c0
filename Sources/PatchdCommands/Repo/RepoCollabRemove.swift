// PatchdCommands: `repo collab remove NAME USER`: revokes access. Gate: owner or admin.

import ArgumentParser
import PatchdCore

struct RepoCollabRemove: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "take USER's access away")
    static let gate = CommandGate.repository(.owner, action: "manage collaborators")

    @Argument(help: "The repository.")
    var name: String
    @Argument(help: "The collaborator to remove.")
    var user: String

    var gateSubject: String? { name }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let repo = try invocation.repo
        guard let target = try ctx.users.user(named: user), let userID = target.id,
            try ctx.repoStore.removeCollaborator(repoID: repo.record.id!, userID: userID)
        else {
            return invocation.fail("'\(shown(user))' is not a collaborator on \(repo.name)")
        }
        invocation.out("removed \(target.name) from \(repo.name)\n")
        return 0
    }
}
