// Agents: the codex agent: OpenAI's Codex CLI (`codex exec --json`) in the sandbox, its API traffic through patchd's proxy.

import Foundation
package import Logging
package import PatchdCore
import PatchdSystem
package import Sandboxing

/// Runs `codex exec` inside the sandbox the way `ClaudeCodeAgent` runs claude: socat bridges
/// 127.0.0.1:8765 in the sandbox's own network namespace to `APIProxy`'s unix socket, which adds
/// `Authorization: Bearer OPENAI_API_KEY` and forwards to OPENAI_BASE_URL; the sandbox holds a
/// placeholder key only. The Codex CLI ignores OPENAI_BASE_URL, so patchd writes a config with
/// a custom model provider (`base_url`, `env_key`, `wire_api = "responses"`) into CODEX_HOME
/// (`DATA/work/run-ID/home/.codex`, `/home/agent/.codex` inside: the run's HOME, where its sessions stay too).
/// Tokens and cost are what the proxy read from the Responses API's `response.completed` events;
/// `max_turns` is counted there as well (one model request of the conversation is one turn: the
/// CLI has no limit of its own), and the request past it is refused and ends the run.
/// Codex's own sandbox is off (`--dangerously-bypass-approvals-and-sandbox`): patchd's is the
/// boundary, and bwrap inside bwrap cannot make the namespaces it wants.
package struct CodexAgent: Agent {
    package let kind = AgentKind.codex
    let codexPath: String
    let upstream: String
    let apiKey: String
    /// nil: the CLI's own default model.
    let defaultModel: String?
    let maxTurns: Int
    let maxCostUSD: Double?
    /// USD per million tokens: OpenAI's list prices with the server's `prices:` over them.
    let prices: [String: ModelPrice]
    let logger: Logger

    package init(
        codexPath: String, upstream: String, apiKey: String, defaultModel: String?, maxTurns: Int, maxCostUSD: Double?,
        prices: [String: ModelPrice], logger: Logger
    ) {
        self.codexPath = codexPath
        self.upstream = upstream
        self.apiKey = apiKey
        self.defaultModel = defaultModel
        self.maxTurns = maxTurns
        self.maxCostUSD = maxCostUSD
        self.prices = OpenAIPrices.table.merging(prices) { _, configured in configured }
        self.logger = logger
    }

    static let placeholderKey = "sk-patchd-placeholder"
    static let port = 8765
    static let home = RunSandboxPaths.homeInside

    /// The config patchd gives the CLI: its API is patchd's bridge, with the placeholder key.
    static func config(port: Int) -> String {
        """
        # Written by patchd for this run: the model API is patchd's proxy (it adds the real key).
        model_provider = "patchd"

        [model_providers.patchd]
        name = "patchd"
        base_url = "http://127.0.0.1:\(port)/v1"
        env_key = "PATCHD_OPENAI_KEY"
        wire_api = "responses"

        """
    }

    /// The executable itself (not a symlink's directory), and the code-mode host the default
    /// model's `exec` tool runs in, which the CLI looks for beside itself: mounted when the run sandbox opens.
    package func sandboxBinds(_ mounts: SandboxMounts) -> [SandboxBind] {
        let real = URL(fileURLWithPath: codexPath).resolvingSymlinksInPath().path
        var binds = [SandboxBind(host: real, inside: "/patchd/codex/codex", writable: false)]
        let host = (real as NSString).deletingLastPathComponent + "/codex-code-mode-host"
        if FileManager.default.isExecutableFile(atPath: host) {
            binds.append(SandboxBind(host: host, inside: "/patchd/codex/codex-code-mode-host", writable: false))
        }
        return binds
    }

    package func run(_ context: AgentContext) throws -> AgentOutcome {
        guard context.sandbox.hasPrivateNetwork else {
            return AgentOutcome(
                succeeded: false, summary: "",
                error:
                    "the codex agent needs a sandbox with a private network namespace (bwrap or container), not --sandbox none: its API bridge relies on one"
            )
        }
        let model = context.task.model ?? defaultModel
        let turns = min(context.task.maxTurns ?? maxTurns, maxTurns)
        let budget = [context.task.maxCostUSD, maxCostUSD].compactMap { $0 }.min()
        let meter = UsageMeter(
            budgetUSD: budget, maxTurns: turns, prices: prices, fallbackModel: OpenAIPrices.fallbackModel,
            cancel: context.cancel)
        let socketPath = RunSandboxPaths.bridge(context.mounts) + "/api.sock"
        let proxy = try APIProxy(
            socketPath: socketPath, route: APIRoute(wire: .openAIResponses, upstream: upstream, apiKey: apiKey),
            meter: meter, logger: logger)
        defer { proxy.stop() }

        let homeDir = RunSandboxPaths.home(context.mounts)
        try FileManager.default.createDirectory(atPath: homeDir + "/.codex", withIntermediateDirectories: true)
        try Self.config(port: Self.port).write(toFile: homeDir + "/.codex/config.toml", atomically: true, encoding: .utf8)
        let binaries = sandboxBinds(context.mounts)
        let binds =
            [
                SandboxBind(host: socketPath, inside: RunSandboxPaths.bridgeInside + "/api.sock", writable: false),
                binaries[0], SandboxBind(host: homeDir, inside: Self.home, writable: true),
            ] + binaries.dropFirst()
        let script = """
            socat TCP-LISTEN:\(Self.port),bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:\(context.sandbox.path(of: binds[0])) &
            bridge=$!
            for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/\(Self.port)) 2>/dev/null && break; sleep 0.02; done
            model=(); if [ -n "${PATCHD_MODEL:-}" ]; then model=(--model="$PATCHD_MODEL"); fi
            printf '%s' "$PATCHD_TASK" | "\(context.sandbox.path(of: binds[1]))" exec --json --skip-git-repo-check \\
                --dangerously-bypass-approvals-and-sandbox "${model[@]}" -
            status=$?
            kill $bridge 2>/dev/null
            exit $status
            """
        var environment = [
            "PATCHD_TASK": context.prompt,
            "HOME": context.sandbox.path(of: binds[2]),
            "CODEX_HOME": context.sandbox.path(of: binds[2]) + "/.codex",
            "PATCHD_OPENAI_KEY": Self.placeholderKey,
            "IS_SANDBOX": "1",
        ]
        if let model { environment["PATCHD_MODEL"] = model }
        context.log(RunEvent(.tool, "$ codex exec (model \(model ?? "the CLI's default"), max turns \(turns))"))

        var lastMessage = ""
        var failure: String?
        let started = MonotonicClock.now
        // `codex exec --json` events are whole lines of any length: never cut them.
        let run = try context.runScript(script, environment: environment, extraBinds: binds, maxLineBytes: context.limits.maxOutputBytes) { line in
            guard let event = JSONValue.parse(line), let type = event["type"]?.string else {
                context.log(RunEvent(.output, line))
                return
            }
            switch type {
            case "thread.started":
                context.log(RunEvent(.info, "codex: session \(event["thread_id"]?.string ?? "?")"))
            case "item.started", "item.completed":
                Self.logItem(event["item"], completed: type == "item.completed", context: context, lastMessage: &lastMessage)
            case "turn.failed":
                failure = event["error"]?["message"]?.string ?? "the turn failed"
            case "error":
                failure = event["message"]?.string ?? "error"
            default: break
            }
        }
        if let first = meter.firstRequestAt {
            context.log(RunEvent(.info, String(format: "codex: first API request %.1fs after start", first - started)))
        }
        let seenModel = meter.lastModel ?? model
        if let seenModel, !meter.hasPrice(seenModel) {
            context.log(
                RunEvent(
                    .info,
                    "codex: no price for model \(seenModel): counted at \(OpenAIPrices.fallbackModel)'s; the server's prices: setting can add it"))
        }
        var usage = meter.usage
        usage.turns = meter.turns
        context.log(RunEvent(.info, "codex: \(usage.turns) turns; patchd counted \(meter.requests) model answers, $\(BudgetText.usd(usage.costUSD))"))
        // The proxy cancels the run when a budget runs out; the CLI may exit on the refused
        // request before the sandbox's loop sees the cancel, so the cancel's reason counts too.
        let stoppedBy = run.limit ?? context.cancel.reason
        if stoppedBy == .cost, let budget {
            return AgentOutcome(
                succeeded: false, summary: lastMessage, error: BudgetText.costStop(spent: usage.costUSD, budget: budget),
                limit: .cost, usage: usage, model: seenModel)
        }
        if stoppedBy == .turns {
            return AgentOutcome(
                succeeded: false, summary: lastMessage, error: "stopped after \(usage.turns) turns (max_turns \(turns))",
                limit: .turns, usage: usage, model: seenModel)
        }
        if let limit = stoppedBy {
            return AgentOutcome(
                succeeded: false, summary: lastMessage, error: "codex: \(limit.explanation)", limit: limit, usage: usage, model: seenModel)
        }
        if let failure {
            return AgentOutcome(
                succeeded: false, summary: lastMessage, error: "codex reported an error: \(ScriptSummary.firstLine(failure))",
                usage: usage, model: seenModel)
        }
        guard run.exitStatus == 0 else {
            return AgentOutcome(succeeded: false, summary: lastMessage, error: "codex exited \(run.exitStatus)", usage: usage, model: seenModel)
        }
        return AgentOutcome(succeeded: true, summary: lastMessage, usage: usage, model: seenModel)
    }

    /// One `codex exec --json` item as run events: the agent's messages, commands, edits, MCP calls.
    static func logItem(_ item: JSONValue?, completed: Bool, context: AgentContext, lastMessage: inout String) {
        guard let item, let type = item["type"]?.string else { return }
        switch (type, completed) {
        case ("agent_message", true):
            let text = item["text"]?.string ?? ""
            lastMessage = text
            for l in text.split(separator: "\n") { context.log(RunEvent(.info, "agent: " + l)) }
        case ("command_execution", false):
            context.log(RunEvent(.tool, "exec: \(ScriptSummary.firstLine(item["command"]?.string ?? ""))"))
        case ("command_execution", true):
            if let code = item["exit_code"]?.int, code != 0 { context.log(RunEvent(.info, "exec: exit \(code)")) }
        case ("file_change", true):
            if case .array(let changes)? = item["changes"] {
                for change in changes {
                    context.log(RunEvent(.tool, "edit: \(change["path"]?.string ?? "?") (\(change["kind"]?.string ?? "change"))"))
                }
            }
        case ("mcp_tool_call", false):
            context.log(RunEvent(.tool, "mcp: \(item["server"]?.string ?? "?").\(item["tool"]?.string ?? "?")"))
        case ("error", true):
            context.log(RunEvent(.info, "codex: \(item["message"]?.string ?? "error")"))
        default: break
        }
    }
}
