// PatchdServer: what every shortcut gets: who is asking, the stores, and helpers for output and errors.
import Foundation
import GitStore
import SSHServer
import PatchdCore
import SSHKeys

/// What every command may use: the stores, the repositories, the scheduler, the counters.
struct CommandServices: Sendable {
    let users: UserStore
    let repoStore: RepoStore
    let runs: RunStore
    let repositories: RepositoryStore
    let scheduler: SchedulerHandle
    let stats: @Sendable () throws -> MetricsSnapshot
}

/// One command invocation's world: who is asking, and the services.
@dynamicMemberLookup
struct CommandContext: Sendable {
    let identity: SSHIdentity
    let isAdmin: Bool
    let services: CommandServices

    subscript<T>(dynamicMember path: KeyPath<CommandServices, T>) -> T { services[keyPath: path] }

    /// Resolves a repository the caller may see, or nil (missing and unreadable look the same).
    func readableRepo(_ raw: String) -> (RepositoryName, RepoRecord, RepoRole)? {
        guard let name = try? RepositoryName(fromClient: raw), let repo = try? services.repoStore.repo(named: name),
              let role = try? services.repoStore.role(userID: identity.userID, repo: repo), role.canRead else { return nil }
        return (name, repo, role)
    }
}

/// What commands may ask of the scheduler, without depending on it.
struct SchedulerHandle: Sendable {
    let cancel: @Sendable (Int64) -> Bool
    let wake: @Sendable () -> Void
}

/// Output helpers shared by the commands. All write through `ProgramOutput`.
extension ProgramOutput {
    /// `patchd: error: MESSAGE` on stderr; exit 1.
    func fail(_ message: String) -> Int32 {
        err("patchd: error: \(message)\n")
        return 1
    }

    /// A usage error: the reason and the command's usage; exit 2.
    func usage(_ why: String, _ usage: String) -> Int32 {
        err("patchd: error: \(why)\nusage: \(usage)\n")
        return 2
    }

    /// Runs a command's body: usage errors exit 2 with the usage, any other error exits 1.
    func guarded(usage text: String, _ body: () throws -> Int32) -> Int32 {
        do { return try body() } catch let error as CommandArguments.UsageError {
            return usage(error.description, text)
        } catch {
            return fail("\(error)")
        }
    }

    func unknownSubcommand(_ word: String, _ text: String) -> Int32 {
        usage("unknown subcommand '\(Terminal.sanitize(String(word.prefix(40))))'", text)
    }

    func json<T: Encodable>(_ value: T) -> Int32 {
        out(((try? RunJSON.encode(value)) ?? "null") + "\n")
        return 0
    }
}

func iso(_ date: Date?) -> String? { date.map(RunJSON.iso) }
