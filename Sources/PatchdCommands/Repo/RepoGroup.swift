// PatchdCommands: the `repo` and `repo collab` groups, and what their commands share.

import ArgumentParser
import PatchdCore

struct RepoGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repo", abstract: "repositories you can see",
        subcommands: [
            RepoList.self, RepoCreate.self, RepoInfo.self, RepoConfig.self, RepoDelete.self, RepoCollabGroup.self, RepoSecretGroup.self,
        ])
}

struct RepoCollabGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab", abstract: "who else may read or push",
        subcommands: [RepoCollabAdd.self, RepoCollabRemove.self, RepoCollabList.self])
}

struct CollabJSON: Encodable {
    let user: String
    let role: String
}

extension CommandContext {
    func ownerName(_ repo: RepoRecord) -> String? {
        repo.ownerID.flatMap { try? services.users.user(id: $0) }??.name
    }
}
