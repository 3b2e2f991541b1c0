// PatchdCommands: `repo info NAME [--json]`: owner, HEAD, branches; collaborators for owners and admins. Gate: read.

import ArgumentParser
import GitStore
import PatchdCore

struct RepoInfo: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "owner, HEAD, branches; collaborators for owners and admins")
    static let gate = CommandGate.repository(.read)

    @Argument(help: "The repository.")
    var name: String
    @Flag(help: "One JSON object.")
    var json = false

    var gateSubject: String? { name }

    struct InfoJSON: Encodable {
        let name: String
        let owner: String?
        let role: String
        let created_at: String
        let head: String?
        let branches: [String]
        let collaborators: [CollabJSON]?
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let repo = try invocation.repo
        let git = try? GitRepository(openBare: ctx.repositories.path(for: repo.name))
        let branches =
            ((try? git?.referenceNames()) ?? [])?.filter { $0.hasPrefix("refs/heads/") }
            .map { String($0.dropFirst(11)) }.sorted() ?? []
        let head = git?.headTarget.map { $0.hasPrefix("refs/heads/") ? String($0.dropFirst(11)) : $0 }
        let collabs =
            repo.role.canAdminister
            ? try ctx.repoStore.collaborators(repoID: repo.record.id!).map { CollabJSON(user: $0.0.name, role: $0.1) } : nil
        let info = InfoJSON(
            name: repo.name.value, owner: ctx.ownerName(repo.record), role: repo.role.description,
            created_at: RunJSON.iso(repo.record.createdAt), head: head, branches: branches, collaborators: collabs)
        if json { return invocation.json(info) }
        var text = "name      \(info.name)\nowner     \(info.owner ?? "-")\nyour role \(info.role)\n"
        text += "created   \(info.created_at) (\(RelativeTime.describe(repo.record.createdAt)))\nhead      \(info.head ?? "-")\n"
        text += "branches  \(branches.isEmpty ? "-" : branches.map { Terminal.sanitize($0) }.joined(separator: ", "))\n"
        if let collabs { text += "collabs   \(collabs.isEmpty ? "-" : collabs.map { "\($0.user) (\($0.role))" }.joined(separator: ", "))\n" }
        invocation.out(text)
        return 0
    }
}
