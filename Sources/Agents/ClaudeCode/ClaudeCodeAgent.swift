// Agents: the claude-code agent: `claude -p` in the sandbox, its API traffic through patchd's proxy.

import Foundation
package import Logging
package import PatchdCore
import PatchdSystem
package import Sandboxing

/// Runs the Claude Code CLI inside the sandbox (bwrap; container untested) with stream-json output. The sandbox
/// still has no network: socat, started in the sandbox, bridges 127.0.0.1:8765 (in the
/// sandbox's own network namespace) to a unix socket bound in from the run's scratch
/// dir, where `APIProxy` adds the real key. The sandbox holds only a placeholder key.
/// Tokens and cost are what the proxy saw (`UsageMeter`), not what the CLI reports, and the
/// run's `max_cost_usd` is enforced there.
///
/// HOME is the run's scratch directory `DATA/work/run-ID/home` (`/home/agent` inside: the run's HOME), so the
/// CLI's `~/.claude` state (the session transcript under `projects/-workspace/`, todos) stays with
/// the run where a resume can find it; the CLI reads the repository's `CLAUDE.md` and `.mcp.json`
/// from `/workspace` itself (its MCP servers run inside the sandbox too).
///
/// `max_turns` N becomes `--max-turns N`: the CLI then asks the model at most N times in its main
/// conversation, and its `num_turns` reports N+1 when it stops there (it counts the turn it
/// refused). patchd records the turns that reached the model: the main conversation's answers.
package struct ClaudeCodeAgent: Agent {
    package let kind = AgentKind.claudeCode
    let claudePath: String
    let upstream: String
    let apiKey: String
    let defaultModel: String
    let maxTurns: Int
    /// The server's cap on a task's max_cost_usd, and the price table (shared with builtin).
    let pricing: BuiltinAgentConfiguration
    let logger: Logger

    package init(
        claudePath: String, upstream: String, apiKey: String, defaultModel: String, maxTurns: Int, pricing: BuiltinAgentConfiguration, logger: Logger
    ) {
        self.claudePath = claudePath
        self.upstream = upstream
        self.apiKey = apiKey
        self.defaultModel = defaultModel
        self.maxTurns = maxTurns
        self.pricing = pricing
        self.logger = logger
    }

    static let placeholderKey = "sk-ant-patchd-placeholder"
    static let port = 8765
    /// The CLI's HOME inside the sandbox: the run's HOME, DATA/work/run-ID/home on the host.
    static let home = RunSandboxPaths.homeInside

    /// The CLI binary, mounted when the run sandbox opens.
    package func sandboxBinds(_ mounts: SandboxMounts) -> [SandboxBind] {
        [SandboxBind(host: claudePath, inside: "/patchd/bin/claude", writable: false)]
    }

    package func run(_ context: AgentContext) throws -> AgentOutcome {
        guard context.sandbox.hasPrivateNetwork else {
            return AgentOutcome(
                succeeded: false, summary: "",
                error:
                    "the claude-code agent needs a sandbox with a private network namespace (bwrap or container), not --sandbox none: its API bridge relies on one"
            )
        }
        // In the run's bridge directory, which the sandbox holds read-only at /patchd/bridge.
        let socketPath = RunSandboxPaths.bridge(context.mounts) + "/api.sock"
        let budget = [context.task.maxCostUSD, pricing.maxCostUSD].compactMap { $0 }.min()
        let meter = UsageMeter(budgetUSD: budget, prices: pricing, cancel: context.cancel)
        let proxy = try APIProxy(
            socketPath: socketPath, route: APIRoute(wire: .anthropicMessages, upstream: upstream, apiKey: apiKey),
            meter: meter, logger: logger)
        defer { proxy.stop() }
        let socketBind = SandboxBind(host: socketPath, inside: RunSandboxPaths.bridgeInside + "/api.sock", writable: false)
        let claudeBind = sandboxBinds(context.mounts)[0]
        let homeDir = RunSandboxPaths.home(context.mounts)
        try FileManager.default.createDirectory(atPath: homeDir, withIntermediateDirectories: true)
        let homeBind = SandboxBind(host: homeDir, inside: Self.home, writable: true)
        let model = context.task.model ?? defaultModel
        let turns = min(context.task.maxTurns ?? maxTurns, maxTurns)
        let script = """
            socat TCP-LISTEN:\(Self.port),bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:\(context.sandbox.path(of: socketBind)) &
            bridge=$!
            for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/\(Self.port)) 2>/dev/null && break; sleep 0.02; done
            printf '%s' "$PATCHD_TASK" | "\(context.sandbox.path(of: claudeBind))" -p --output-format stream-json --verbose \\
                --permission-mode bypassPermissions --max-turns \(turns) --model="$PATCHD_MODEL"
            status=$?
            kill $bridge 2>/dev/null
            exit $status
            """
        // The task and model travel in the environment and the prompt on stdin: a task starting
        // with "-" is text, never an option.
        let environment = [
            "PATCHD_TASK": context.prompt,
            "PATCHD_MODEL": model,
            "HOME": context.sandbox.path(of: homeBind),
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:\(Self.port)",
            "ANTHROPIC_API_KEY": Self.placeholderKey,
            "IS_SANDBOX": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        ]
        context.log(RunEvent(.tool, "$ claude -p (model \(model), max turns \(turns))"))
        var result: JSONValue?
        var mainTurns = Set<String>()
        let started = MonotonicClock.now
        // stream-json events are whole lines of any length (a long final result too): never cut them.
        let run = try context.runScript(
            script, environment: environment, extraBinds: [socketBind, claudeBind, homeBind],
            maxLineBytes: context.limits.maxOutputBytes
        ) { line in
            guard let event = JSONValue.parse(line), let type = event["type"]?.string else {
                context.log(RunEvent(.output, line))
                return
            }
            switch type {
            case "assistant":
                // The CLI prints one event per content block; they share the answer's message id.
                if event["parent_tool_use_id"]?.string == nil, let id = event["message"]?["id"]?.string { mainTurns.insert(id) }
                if case .array(let blocks)? = event["message"]?["content"] {
                    for block in blocks {
                        if block["type"]?.string == "text", let text = block["text"]?.string {
                            for l in text.split(separator: "\n") { context.log(RunEvent(.info, "agent: " + l)) }
                        } else if block["type"]?.string == "tool_use", let name = block["name"]?.string {
                            let input = block["input"]?["command"]?.string ?? block["input"]?["file_path"]?.string ?? ""
                            context.log(RunEvent(.tool, "\(name): \(ScriptSummary.firstLine(input))"))
                        }
                    }
                }
            case "result": result = event
            case "system":
                var text = "claude-code: \(event["subtype"]?.string ?? "system")"
                if case .array(let servers)? = event["mcp_servers"], !servers.isEmpty {
                    text += " (MCP: " + servers.map { "\($0["name"]?.string ?? "?") \($0["status"]?.string ?? "?")" }.joined(separator: ", ") + ")"
                }
                context.log(RunEvent(.info, text))
            default: break
            }
        }
        if let first = meter.firstRequestAt {
            context.log(RunEvent(.info, String(format: "claude-code: first API request %.1fs after start", first - started)))
        }
        // Tokens and cost as patchd's proxy counted them; turns as the main conversation's answers.
        var usage = meter.usage
        let reportedTurns = result?["num_turns"]?.int
        usage.turns = mainTurns.isEmpty ? (reportedTurns ?? 0) : mainTurns.count
        context.log(
            RunEvent(.info, "claude-code: \(usage.turns) turns; patchd counted \(meter.requests) model answers, $\(BudgetText.usd(usage.costUSD))"))
        if case .number(let reported)? = result?["total_cost_usd"], abs(reported - usage.costUSD) > 0.01 {
            context.log(
                RunEvent(
                    .info,
                    String(
                        format: "claude reports $%.4f; patchd counted $%.4f over %d requests (the run records patchd's)",
                        reported, usage.costUSD, meter.requests)))
        }
        let summary = result?["result"]?.string ?? ""
        // The proxy cancels the run when a budget runs out; the CLI may exit on the refused
        // request before the sandbox's loop sees the cancel, so the cancel's reason counts too.
        let stoppedBy = run.limit ?? context.cancel.reason
        if stoppedBy == .cost, let budget {
            return AgentOutcome(
                succeeded: false, summary: summary,
                error: BudgetText.costStop(spent: usage.costUSD, budget: budget),
                limit: .cost, usage: usage, model: model)
        }
        if let limit = stoppedBy {
            return AgentOutcome(succeeded: false, summary: summary, error: "claude: \(limit.explanation)", limit: limit, usage: usage, model: model)
        }
        guard let result else {
            return AgentOutcome(
                succeeded: false, summary: "", error: "claude exited \(run.exitStatus) without a result event", usage: usage, model: model)
        }
        if result["subtype"]?.string == "error_max_turns" {
            let cli = reportedTurns.map { "; the CLI's num_turns says \($0), counting the turn it refused" } ?? ""
            return AgentOutcome(
                succeeded: false, summary: summary, error: "stopped after \(usage.turns) turns (max_turns \(turns)\(cli))",
                limit: .turns, usage: usage, model: model)
        }
        if result["is_error"]?.bool == true || run.exitStatus != 0 {
            return AgentOutcome(
                succeeded: false, summary: summary, error: "claude reported an error: \(ScriptSummary.firstLine(summary))", usage: usage, model: model
            )
        }
        return AgentOutcome(succeeded: true, summary: summary, usage: usage, model: model)
    }
}
