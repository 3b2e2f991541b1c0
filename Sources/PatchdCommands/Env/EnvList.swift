// PatchdCommands: `env list REPO [--json]`: the repository's cached environments (key, size, created, last used, hits). Gate: read.

import ArgumentParser
import Foundation
import PatchdCore

struct EnvList: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "cached environments, most recently used first")
    static let gate = CommandGate.repository(.read)

    @Argument(help: "The repository.")
    var name: String
    @Flag(help: "A JSON array.")
    var json = false

    var gateSubject: String? { name }

    struct EntryJSON: Encodable {
        let key: String
        let size_bytes: Int64
        let created_at: String
        let last_used_at: String
        let hits: Int
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let repo = try invocation.repo
        let entries = try invocation.environmentStore().entries(repoID: repo.record.id!).map {
            EntryJSON(
                key: $0.key, size_bytes: $0.sizeBytes, created_at: RunJSON.iso($0.createdAt), last_used_at: RunJSON.iso($0.lastUsedAt), hits: $0.hits)
        }
        if json { return invocation.json(entries) }
        if entries.isEmpty { invocation.out("\(repo.name) has no cached environment\n"); return 0 }
        invocation.out(
            TextTable.render(
                ["KEY", "SIZE", "CREATED", "LAST USED", "HITS"],
                entries.map { [String($0.key.prefix(12)), "\($0.size_bytes / 1024) KiB", $0.created_at, $0.last_used_at, "\($0.hits)"] }))
        return 0
    }
}
