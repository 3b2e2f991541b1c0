// PatchdServer: the daemon: lays out the data dir, opens the database, loads keys, starts serving SSH.
import Foundation
import GitStore
import Logging
import PatchdSystem
import PatchdCore
import Sandboxing
import Agents
import Runs
import SSHServer
import Synchronization
import SSHKeys
import Offsite

/// `patchd serve`, as an object tests can also start and stop.
public final class PatchdDaemon: Sendable {
    public let configuration: PatchdConfiguration
    public let layout: DataLayout
    let logger: Logger
    let database: PatchdDatabase
    let ssh: SSHServer
    public let repositories: RepositoryStore
    let scheduler: RunScheduler
    let hookContext: HookContext
    /// Off-machine replication, when `offsite:` is configured.
    let replicator: Replicator?

    public init(configuration: PatchdConfiguration) throws {
        _ = PatchdLogging.bootstrap
        try configuration.validate()
        self.configuration = configuration
        let logger = Logger(label: "patchd")
        self.logger = logger
        layout = try DataLayout(root: configuration.dataDir)
        database = try PatchdDatabase(path: layout.database)

        let users = UserStore(db: database)
        let adminKeys = try configuration.adminKeys.map { line in
            do { return try PublicKey(line: line) } catch {
                throw PatchdConfiguration.Invalid("admin key '\(line.prefix(60))...': \(error)")
            }
        }
        try users.ensureAdmin(keys: adminKeys)
        if adminKeys.isEmpty {
            logger.warning("No admin key given (--admin-key or PATCHD_ADMIN_KEYS); only keys already in the database can log in")
        }

        let git = try Self.findExecutable("git")
        let hooks = Dictionary(uniqueKeysWithValues: HookScripts.names.map { ($0, HookScripts.script($0)) })
        repositories = RepositoryStore(root: layout.repos, gitExecutable: git, gitHome: layout.home,
                                       maxPushBytes: configuration.maxPushBytes, hooks: hooks,
                                       defaultAgent: configuration.defaultAgent)
        // Settings and hooks patchd owns are rewritten at every start, so upgrades apply everywhere.
        for name in repositories.allNames() {
            do { try repositories.refreshConfig(name) } catch {
                logger.warning("Cannot refresh the config of \(name): \(error)")
            }
        }

        let address = try configuration.listenAddress()
        var sshConfig = SSHServerConfiguration(host: address.host, port: address.port)
        sshConfig.authTimeout = configuration.authTimeout
        sshConfig.idleTimeout = configuration.idleTimeout
        sshConfig.maxUnauthenticated = configuration.maxUnauthenticated
        sshConfig.maxChannelsPerConnection = configuration.maxSessionsPerConnection
        let hostKeys = try HostKeys.loadOrCreate(in: layout.root)
        let repoStore = RepoStore(db: database)
        let runStore = RunStore(db: database)
        hookContext = HookContext(base: [
            "PATCHD_DATA_DIR": layout.root,
            "PATCHD_EXECUTABLE": Self.ownExecutable(),
            "PATCHD_GIT": git,
            "PATCHD_DEFAULT_AGENT": configuration.defaultAgent,
        ])

        let sandbox = try Self.makeSandbox(configuration, owner: layout.root)
        if let container = sandbox as? ContainerSandbox {
            // Containers a crashed daemon left running would hold workspaces and CPU.
            let removed = container.removeLeftovers()
            if removed > 0 { logger.warning("removed \(removed) leftover sandbox container(s) of an earlier daemon") }
            if !container.imageExists() {
                logger.warning("sandbox image \(container.image) is not in \(container.engine.executable): every run will fail until it is built (podman build -t localhost/patchd-sandbox -f container/Containerfile.sandbox container/) or container_image names one that exists")
            }
        }
        var limits = SandboxLimits()
        limits.wallClockSeconds = Double(configuration.maxRunSeconds)
        limits.maxProcesses = configuration.maxProcesses
        limits.maxFileBytes = configuration.maxFileBytes
        limits.maxMemoryBytes = configuration.maxMemoryBytes
        limits.maxCPUs = configuration.maxCPUs
        limits.maxWorkspaceBytes = configuration.maxWorkspaceBytes
        limits.minFreeBytes = configuration.minFreeBytes
        limits.maxOutputBytes = configuration.maxOutputBytes
        let runEnvironment = RunEnvironment(runs: runStore, repositories: repositories, layout: layout, sandbox: sandbox,
                                            agents: Self.agents(configuration, logger: logger), defaultLimits: limits,
                                            maxTimeoutSeconds: configuration.maxRunSeconds,
                                            hostName: ProcessInfo.processInfo.hostName, logger: logger)
        let wakeup = try RunWakeup(dataDir: layout.root)
        scheduler = RunScheduler(executor: RunExecutor(env: runEnvironment), runs: runStore,
                                 workers: configuration.workers, wakeup: wakeup, logger: logger)

        let replicator = try configuration.offsite.map { [layout, repositories] offsite in
            try Replicator(configuration: offsite, layout: layout, repositories: repositories, logger: logger)
        }
        self.replicator = replicator
        let counters = TransferCounters()
        let transport = GitTransport(repos: repositories, repoStore: repoStore, logger: logger, hooks: hookContext, counters: counters)
        let statsSource = StatsSource()
        let schedulerRef = scheduler
        let commands = CommandRouter(services: CommandServices(
            users: users, repoStore: repoStore, runs: runStore, repositories: repositories,
            scheduler: SchedulerHandle(cancel: { schedulerRef.cancel(runID: $0) }, wake: { schedulerRef.poke() }),
            stats: { [database, replicator] in
                try MetricsSnapshot.gather(ssh: statsSource.ssh?.statistics ?? SSHStatistics(), transfers: counters, db: database,
                                           offsite: try replicator?.state.status())
            }))
        let delegate = PatchdSSHDelegate(users: users, transport: transport, commands: commands)
        ssh = try SSHServer(configuration: sshConfig, hostKeys: hostKeys, delegate: delegate, logger: logger)
        statsSource.ssh = ssh
    }

    /// The agents this server offers. The LLM agents need ANTHROPIC_API_KEY; without it a
    /// task naming them fails with a message saying so.
    static func agents(_ configuration: PatchdConfiguration, logger: Logger) -> [AgentKind: Agent] {
        var agents: [AgentKind: Agent] = [.command: CommandAgent()]
        let env = ProcessInfo.processInfo.environment
        guard let key = env["ANTHROPIC_API_KEY"], !key.isEmpty else { return agents }
        let baseURL = env["ANTHROPIC_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.anthropic.com"
        var builtin = BuiltinAgentConfiguration()
        builtin.defaultModel = configuration.model
        builtin.maxTurns = configuration.maxTurns
        builtin.maxCostUSD = configuration.maxCostUSD
        builtin.prices.merge(configuration.prices) { _, configured in configured }
        agents[.builtin] = BuiltinAgent(configuration: builtin) { try AnthropicTransport(baseURL: baseURL, apiKey: key) }
        logger.info("builtin agent: model \(configuration.model), Messages API at \(baseURL)")
        if let claude = try? findExecutable(configuration.claudePath) {
            agents[.claudeCode] = ClaudeCodeAgent(claudePath: claude, upstream: baseURL, apiKey: key, defaultModel: configuration.model,
                                                  maxTurns: configuration.maxTurns, pricing: builtin, logger: logger)
            logger.info("claude-code agent: \(claude)")
        }
        return agents
    }

    /// The running binary, for hooks to call back into (`patchd hook ...`).
    static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public var hostKeys: HostKeys { ssh.hostKeys }

    /// Starts listening; returns the bound address.
    public func start() throws -> (host: String, port: Int) {
        let address = try ssh.start()
        let shownHost = address.host == "0.0.0.0" || address.host == "::" ? ProcessInfo.processInfo.hostName : address.host
        hookContext.set("PATCHD_SSH_HINT", ShellQuote.command(["ssh", "-p", String(address.port), "git@" + shownHost]))
        try scheduler.start()
        if let replicator {
            try replicator.start()
            logger.info("offsite replication to \(replicator.configuration.endpoint) bucket \(replicator.configuration.bucket)\(replicator.configuration.prefix.isEmpty ? "" : " prefix \(replicator.configuration.prefix)")")
        }
        return address
    }

    /// Stops accepting, waits for transfers in flight, and puts running runs back in the queue.
    public func stop(grace: Double = 60) {
        ssh.shutdown(grace: grace)
        scheduler.stop()
        replicator?.stop()
    }

    /// The sandbox backend the configuration names; `owner` (the data directory) tells this
    /// daemon's containers from another's.
    static func makeSandbox(_ configuration: PatchdConfiguration, owner: String) throws -> Sandbox {
        switch configuration.sandbox {
        case "none": return UnsandboxedSandbox()
        case "container":
            return try ContainerSandbox(engine: ContainerEngine.find(configuration.containerEngine),
                                        image: configuration.containerImage, extraOptions: configuration.containerOptions,
                                        owner: owner)
        default: return BubblewrapSandbox()
        }
    }

    /// `name` found as the shell would (PatchdSystem's `Executable.find`), as a configuration error.
    static func findExecutable(_ name: String) throws -> String {
        do { return try Executable.find(name) } catch { throw PatchdConfiguration.Invalid(error.description) }
    }
}

/// Lets the stats command reach the SSH server, which is created after the commands.
/// Weak: the server owns the commands (through its delegate), and a strong reference back
/// made a cycle that kept the server, the database pool and the libssh bind alive forever.
final class StatsSource: Sendable {
    private struct WeakServer: Sendable { weak var value: SSHServer? }
    private let server = Mutex(WeakServer())
    var ssh: SSHServer? {
        get { server.withLock { $0.value } }
        set { server.withLock { $0.value = newValue } }
    }
}

