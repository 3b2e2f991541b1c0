// PatchdCommands: what every command gets: who is asking, and the stores and services it may use.

import Foundation
package import GitStore
package import PatchdCore
package import SSHKeys

/// What every command may use: the stores, the repositories, the scheduler, the counters,
/// and what only the SSH layer can do (parse a key line with libssh).
package struct CommandServices: Sendable {
    package let users: UserStore
    package let repoStore: RepoStore
    package let runs: RunStore
    package let repositories: RepositoryStore
    package let scheduler: SchedulerHandle
    package let stats: @Sendable () throws -> MetricsSnapshot
    /// An OpenSSH public key line -> a validated key (`PublicKey(line:)` in SSHServer).
    package let parseKey: @Sendable (String) throws -> PublicKey
    /// Which agents this server can run (decided at start); nil: not known, nothing refused early.
    package let agents: AgentAvailability?
    /// Cached environments and setup's secrets (nil: this server has none).
    package let environments: EnvironmentStore?
    package let secrets: SecretStore?
    /// The server's max_attempts: `run start --attempts N` is capped by it.
    package let maxAttempts: Int

    package init(
        users: UserStore, repoStore: RepoStore, runs: RunStore, repositories: RepositoryStore,
        scheduler: SchedulerHandle, stats: @escaping @Sendable () throws -> MetricsSnapshot,
        parseKey: @escaping @Sendable (String) throws -> PublicKey, agents: AgentAvailability? = nil,
        environments: EnvironmentStore? = nil, secrets: SecretStore? = nil,
        maxAttempts: Int = RunStore.AttemptPlan.defaultCap
    ) {
        self.environments = environments
        self.secrets = secrets
        self.users = users
        self.repoStore = repoStore
        self.runs = runs
        self.repositories = repositories
        self.scheduler = scheduler
        self.stats = stats
        self.parseKey = parseKey
        self.agents = agents
        self.maxAttempts = maxAttempts
    }
}

/// What commands may ask of the scheduler, without depending on it.
package struct SchedulerHandle: Sendable {
    package let cancel: @Sendable (Int64) -> Bool
    package let wake: @Sendable () -> Void

    package init(cancel: @escaping @Sendable (Int64) -> Bool, wake: @escaping @Sendable () -> Void) {
        self.cancel = cancel
        self.wake = wake
    }
}

/// One command invocation's world: who is asking, and the services.
@dynamicMemberLookup
package struct CommandContext: Sendable {
    package let identity: SSHIdentity
    package let isAdmin: Bool
    package let services: CommandServices

    package init(identity: SSHIdentity, isAdmin: Bool, services: CommandServices) {
        self.identity = identity
        self.isAdmin = isAdmin
        self.services = services
    }

    package subscript<T>(dynamicMember path: KeyPath<CommandServices, T>) -> T { services[keyPath: path] }

    /// Resolves a repository the caller may see, or nil (missing and unreadable look the same).
    func readableRepo(_ raw: String) -> ResolvedRepository? {
        guard let name = try? RepositoryName(fromClient: raw), let repo = try? services.repoStore.repo(named: name),
            let role = try? services.repoStore.role(userID: identity.userID, repo: repo), role.canRead
        else { return nil }
        return ResolvedRepository(name: name, record: repo, role: role)
    }

    /// Names of the repositories the caller may read; nil for admins, who read them all.
    func readableRepositoryNames() throws -> Set<String>? {
        isAdmin ? nil : Set(try services.repoStore.visible(userID: identity.userID).map { $0.0.name })
    }
}

/// A repository the gate resolved, with the caller's role on it.
package struct ResolvedRepository: Sendable {
    package let name: RepositoryName
    package let record: RepoRecord
    package let role: RepoRole
}

/// A run the gate resolved, with the caller's role on its repository.
package struct ResolvedRun: Sendable {
    package let record: RunRecord
    package let role: RepoRole
    package var id: Int64 { record.id! }
}

/// A name a client typed, made safe and short for an error message.
func shown(_ raw: String, _ limit: Int = 40) -> String { Terminal.sanitize(String(raw.prefix(limit))) }
