// PatchdCommands: `env clear REPO [KEY]`: removes one cached environment (by key or its prefix) or all of them and the package caches. Gate: owner or admin.

import ArgumentParser
import PatchdCore

struct EnvClear: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "clear", abstract: "remove cached environments (all, or the one KEY names); the next run sets up again")
    static let gate = CommandGate.repository(.owner, action: "clear its cached environments")

    @Argument(help: "The repository.")
    var name: String
    @Argument(help: "A key or a prefix of one (as env list shows it); none: every entry and the package download caches.")
    var key: String?

    var gateSubject: String? { name }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let repo = try invocation.repo
        let repoID = repo.record.id!
        let store = try invocation.environmentStore()
        let entries = try store.entries(repoID: repoID)
        guard let key else {
            for entry in entries { try store.delete(repoID: repoID, key: entry.key) }
            store.discard(store.packages(repoID: repoID))
            invocation.out("cleared \(entries.count) cached environment(s) of \(repo.name) and its package caches\n")
            return 0
        }
        let matches = entries.filter { $0.key.hasPrefix(key.lowercased()) }
        guard key.count >= 4, matches.count == 1 else {
            return invocation.fail(
                matches.isEmpty || key.count < 4
                    ? "no cached environment of \(repo.name) has key '\(shown(key, 64))' (see env list \(repo.name))"
                    : "'\(shown(key, 64))' names \(matches.count) entries; give more of the key")
        }
        try store.delete(repoID: repoID, key: matches[0].key)
        invocation.out("cleared \(matches[0].key.prefix(12)) of \(repo.name)\n")
        return 0
    }
}
