// PatchdCommands: `repo collab add NAME USER [read|write]`: grants access. Gate: owner or admin.

import ArgumentParser
import PatchdCore

struct RepoCollabAdd: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "let USER read (default) or push")
    // Only owners and admins grant: a write collaborator cannot hand out access.
    static let gate = CommandGate.repository(.owner, action: "manage collaborators")

    @Argument(help: "The repository.")
    var name: String
    @Argument(help: "The user to add.")
    var user: String
    @Argument(help: "read or write.")
    var role: String = "read"

    var gateSubject: String? { name }

    func validate() throws {
        guard role == "read" || role == "write" else { throw ValidationError("role must be read or write, not '\(shown(role, 20))'") }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let repo = try invocation.repo
        guard let target = try ctx.users.user(named: user), let userID = target.id else { return invocation.fail("no user '\(shown(user))'") }
        guard userID != repo.record.ownerID else { return invocation.fail("\(target.name) owns '\(repo.name)' already") }
        try ctx.repoStore.setCollaborator(repoID: repo.record.id!, userID: userID, role: role)
        invocation.out("\(target.name) can now \(role == "write" ? "read and push to" : "read") \(repo.name)\n")
        return 0
    }
}
