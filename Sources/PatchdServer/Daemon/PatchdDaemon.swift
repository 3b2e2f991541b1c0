// PatchdServer: the daemon: lays out the data dir, opens the database, loads keys, starts serving SSH.

import Agents
import Foundation
package import GitStore
import Logging
import Offsite
import PatchdCommands
package import PatchdCore
import PatchdSystem
import Runs
import SSHKeys
package import SSHServer
import Sandboxing
import Synchronization

/// `patchd serve`, as an object tests can also start and stop.
package final class PatchdDaemon: Sendable {
    package let configuration: PatchdConfiguration
    package let layout: DataLayout
    let logger: Logger
    let database: PatchdDatabase
    let ssh: SSHServer
    package let repositories: RepositoryStore
    let scheduler: RunScheduler
    let hookContext: HookContext
    /// Which agents this server runs, and why not the others: the hooks refuse tasks naming one
    /// it cannot run (they get it as PATCHD_AGENTS); `run start` should ask it too.
    package let agentAvailability: AgentAvailability
    /// Off-machine replication, when `offsite:` is configured.
    let replicator: Replicator?

    package init(configuration: PatchdConfiguration) throws {
        _ = PatchdLogging.bootstrap
        try configuration.validate()
        self.configuration = configuration
        let logger = Logger(label: "patchd")
        self.logger = logger
        layout = DataLayout(root: configuration.dataDir)
        try layout.create()
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
        repositories = RepositoryStore(
            root: layout.repos, gitExecutable: git, gitHome: layout.home,
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
        let agentSetup = Self.agents(configuration, environment: ProcessInfo.processInfo.environment, logger: logger)
        agentAvailability = agentSetup.availability
        for entry in agentSetup.availability.entries where !entry.offered {
            logger.info("\(entry.kind.rawValue) agent not offered: \(entry.detail)")
        }
        hookContext = HookContext(base: [
            AgentAvailability.environmentKey: agentSetup.availability.environmentValue,
            "PATCHD_DATA_DIR": layout.root,
            "PATCHD_EXECUTABLE": Self.ownExecutable(),
            "PATCHD_GIT": git,
            "PATCHD_DEFAULT_AGENT": configuration.defaultAgent,
            "PATCHD_MAX_ATTEMPTS": String(configuration.maxAttempts),
        ])

        let sandbox = try Self.makeSandbox(configuration, owner: layout.root)
        if let container = sandbox as? ContainerSandbox {
            // Containers a crashed daemon left running would hold workspaces and CPU.
            let removed = container.removeLeftovers()
            if removed > 0 { logger.warning("removed \(removed) leftover sandbox container(s) of an earlier daemon") }
            if !container.imageExists() {
                logger.warning(
                    "sandbox image \(container.image) is not in \(container.engine.executable): every run will fail until it is built (podman build -t localhost/patchd-sandbox -f container/Containerfile.sandbox container/) or container_image names one that exists"
                )
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
        var runEnvironment = RunEnvironment(
            runs: runStore, repoStore: repoStore, repositories: repositories, layout: layout, sandbox: sandbox,
            agents: agentSetup.agents, defaultLimits: limits,
            maxTimeoutSeconds: configuration.maxRunSeconds,
            hostName: ProcessInfo.processInfo.hostName, logger: logger, egress: configuration.egress,
            environments: EnvironmentStore(db: database, root: layout.environments), environmentCache: configuration.environmentCache,
            secrets: SecretStore(db: database, keyFile: layout.secretsKey))
        runEnvironment.attemptsCancelRest = configuration.attemptsCancelRest
        let wakeup = try RunWakeup(dataDir: layout.root)
        scheduler = RunScheduler(
            executor: RunExecutor(env: runEnvironment), runs: runStore,
            workers: configuration.workers, wakeup: wakeup, logger: logger)

        let replicator = try configuration.offsite.map { [layout, repositories] offsite in
            try Replicator(configuration: offsite, layout: layout, repositories: repositories, logger: logger)
        }
        self.replicator = replicator
        let counters = TransferCounters()
        let transport = GitTransport(repos: repositories, repoStore: repoStore, logger: logger, hooks: hookContext, counters: counters)
        let statsSource = StatsSource()
        let schedulerRef = scheduler
        let commands = CommandRouter(
            services: CommandServices(
                users: users, repoStore: repoStore, runs: runStore, repositories: repositories,
                scheduler: SchedulerHandle(cancel: { schedulerRef.cancel(runID: $0) }, wake: { schedulerRef.poke() }),
                stats: { [database, replicator] in
                    try MetricsSnapshot.gather(
                        ssh: statsSource.ssh?.statistics ?? SSHStatistics(), transfers: counters, db: database,
                        offsite: try replicator?.state.status())
                },
                parseKey: { try PublicKey(line: $0) }, agents: agentSetup.availability,
                environments: EnvironmentStore(db: database, root: layout.environments),
                secrets: SecretStore(db: database, keyFile: layout.secretsKey), maxAttempts: configuration.maxAttempts))
        let delegate = PatchdSSHDelegate(users: users, transport: transport, commands: commands)
        ssh = try SSHServer(configuration: sshConfig, hostKeys: hostKeys, delegate: delegate, logger: logger)
        statsSource.ssh = ssh
    }

    /// The agents this server offers, and for each one it does not, why and what to do (the
    /// same decision `patchd doctor` shows and the push hooks enforce). builtin and claude-code
    /// need ANTHROPIC_API_KEY, codex OPENAI_API_KEY; the CLI agents need their CLI, socat and a
    /// sandbox with a private network (bwrap or container).
    static func agents(
        _ configuration: PatchdConfiguration, environment env: [String: String],
        logger: Logger
    ) -> (agents: [AgentKind: Agent], availability: AgentAvailability) {
        var agents: [AgentKind: Agent] = [.command: CommandAgent()]
        var entries = [AgentAvailability.Entry(kind: .command, offered: true, detail: "runs the task's run: script; no model, no key")]
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        let anthropicKey = value("ANTHROPIC_API_KEY")
        let anthropicURL = configuration.anthropicBaseURL ?? value("ANTHROPIC_BASE_URL") ?? "https://api.anthropic.com"
        let openAIKey = value("OPENAI_API_KEY")
        let configuredOpenAIURL = configuration.openAIBaseURL ?? value("OPENAI_BASE_URL")
        let openAIURL = configuredOpenAIURL ?? "https://api.openai.com/v1"
        var builtin = BuiltinAgentConfiguration()
        builtin.defaultModel = configuration.model
        builtin.defaultOpenAIModel = configuration.openAIModel
        builtin.maxTurns = configuration.maxTurns
        builtin.maxCostUSD = configuration.maxCostUSD
        builtin.prices.merge(configuration.prices) { _, configured in configured }
        builtin.openAIPrices.merge(configuration.prices) { _, configured in configured }

        // The builtin agent talks to the APIs from the daemon (not the sandbox). Chat Completions
        // needs no key when the admin named a server (Ollama, vLLM, llama.cpp's server): a
        // configured OPENAI_BASE_URL alone offers it, and requests then carry no Authorization.
        var transports: [ModelProvider: @Sendable () throws -> MessagesTransport] = [:]
        var endpoints: [String] = []
        if let key = anthropicKey {
            transports[.anthropic] = { try AnthropicTransport(baseURL: anthropicURL, apiKey: key) }
            endpoints.append("model \(configuration.model), Messages API at \(anthropicURL) (provider anthropic)")
        }
        if openAIKey != nil || configuredOpenAIURL != nil {
            transports[.openai] = { try OpenAIChatTransport(baseURL: openAIURL, apiKey: openAIKey) }
            endpoints.append(
                "model \(configuration.openAIModel), Chat Completions API at \(openAIURL) (provider openai\(openAIKey == nil ? ", no key" : ""))")
        }
        builtin.defaultProvider = configuration.defaultProvider ?? (anthropicKey != nil ? .anthropic : .openai)
        if transports.isEmpty {
            entries.append(
                .init(
                    kind: .builtin, offered: false,
                    detail:
                        "the server has no ANTHROPIC_API_KEY: ask its admin, or use agent: command (for an OpenAI-compatible model the admin sets OPENAI_API_KEY or OPENAI_BASE_URL)"
                ))
        } else {
            agents[.builtin] = BuiltinAgent(configuration: builtin, transports: transports)
            var detail = endpoints.joined(separator: "; ") + "; default provider \(builtin.defaultProvider.rawValue)"
            if transports[builtin.defaultProvider] == nil {
                detail += " (which has no endpoint: tasks must name provider: \(transports.keys.map(\.rawValue).sorted().joined(separator: " or ")))"
            }
            entries.append(.init(kind: .builtin, offered: true, detail: detail))
        }
        let alternative = transports.isEmpty ? "agent: command" : "agent: builtin"
        // What the CLI agents share: the API bridge needs a private network namespace and socat.
        var bridgeProblem: String?
        if configuration.sandbox == "none" {
            bridgeProblem =
                "the server runs with --sandbox none, which has no private network for the API bridge (an admin can use bwrap or container)"
        } else if (try? Executable.find("socat")) == nil {
            bridgeProblem = "the server has no socat for the API bridge (an admin can apt-get install socat)"
        }

        if anthropicKey == nil {
            entries.append(
                .init(
                    kind: .claudeCode, offered: false,
                    detail: "the server has no ANTHROPIC_API_KEY: ask its admin, or use agent: command"))
        } else if let bridgeProblem {
            entries.append(.init(kind: .claudeCode, offered: false, detail: "\(bridgeProblem); or use \(alternative)"))
        } else if let claude = try? Executable.find(configuration.claudePath) {
            agents[.claudeCode] = ClaudeCodeAgent(
                claudePath: claude, upstream: anthropicURL, apiKey: anthropicKey!, defaultModel: configuration.model,
                maxTurns: configuration.maxTurns, pricing: builtin, logger: logger)
            entries.append(
                .init(kind: .claudeCode, offered: true, detail: "\(claude), model \(configuration.model), Messages API at \(anthropicURL)"))
        } else {
            entries.append(
                .init(
                    kind: .claudeCode, offered: false,
                    detail:
                        "the server has no Claude Code CLI ('\(configuration.claudePath)' not found; an admin can install it and set claude_path, see the README), or use \(alternative)"
                ))
        }

        if openAIKey == nil {
            entries.append(
                .init(
                    kind: .codex, offered: false,
                    detail: "the server has no OPENAI_API_KEY: ask its admin, or use \(alternative)"))
        } else if let bridgeProblem {
            entries.append(.init(kind: .codex, offered: false, detail: "\(bridgeProblem); or use \(alternative)"))
        } else if let codex = try? Executable.find(configuration.codexPath) {
            agents[.codex] = CodexAgent(
                codexPath: codex, upstream: openAIURL, apiKey: openAIKey!, defaultModel: configuration.codexModel,
                maxTurns: configuration.maxTurns, maxCostUSD: configuration.maxCostUSD,
                prices: configuration.prices, logger: logger)
            entries.append(
                .init(
                    kind: .codex, offered: true,
                    detail: "\(codex), model \(configuration.codexModel ?? "the CLI's default"), Responses API at \(openAIURL)"))
        } else {
            entries.append(
                .init(
                    kind: .codex, offered: false,
                    detail:
                        "the server has no Codex CLI ('\(configuration.codexPath)' not found; an admin can install it and set codex_path, see the README), or use \(alternative)"
                ))
        }
        for entry in entries where entry.offered { logger.info("\(entry.kind.rawValue) agent: \(entry.detail)") }
        return (agents, AgentAvailability(entries: entries))
    }

    /// The running binary, for hooks to call back into (`patchd hook ...`).
    static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    package var hostKeys: HostKeys { ssh.hostKeys }

    /// Starts listening; returns the bound address.
    package func start() throws -> (host: String, port: Int) {
        let address = try ssh.start()
        let shownHost = address.host == "0.0.0.0" || address.host == "::" ? ProcessInfo.processInfo.hostName : address.host
        hookContext.set("PATCHD_SSH_HINT", ShellQuote.command(["ssh", "-p", String(address.port), "git@" + shownHost]))
        try scheduler.start()
        if let replicator {
            try replicator.start()
            logger.info(
                "offsite replication to \(replicator.configuration.endpoint) bucket \(replicator.configuration.bucket)\(replicator.configuration.prefix.isEmpty ? "" : " prefix \(replicator.configuration.prefix)")"
            )
        }
        return address
    }

    /// Stops accepting, waits for transfers in flight, and puts running runs back in the queue.
    package func stop(grace: Double = 60) {
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
            return try ContainerSandbox(
                engine: ContainerEngine.find(configuration.containerEngine),
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
