// Agents: the Agent seam: what a run's agent gets (task, sandbox, budgets) and gives back.
import Foundation
import PatchdSystem
import PatchdCore
import Sandboxing

/// Everything an agent may use for one run. The sandbox runs commands in the workspace;
/// `log` records events; `budget` carries the limits the task and the server agreed on.
public struct AgentContext: Sendable {
    public let runID: Int64
    public let task: TaskSpec
    public let sandbox: Sandbox
    public let mounts: SandboxMounts
    public let limits: SandboxLimits
    public let cancel: CancellationFlag
    public let log: @Sendable (RunEvent) -> Void
    /// Absolute monotonic deadline for the whole run.
    public let deadline: Double

    public init(runID: Int64, task: TaskSpec, sandbox: Sandbox, mounts: SandboxMounts, limits: SandboxLimits,
                cancel: CancellationFlag, deadline: Double, log: @escaping @Sendable (RunEvent) -> Void) {
        self.runID = runID
        self.task = task
        self.sandbox = sandbox
        self.mounts = mounts
        self.limits = limits
        self.cancel = cancel
        self.deadline = deadline
        self.log = log
    }

    /// Limits for one command: the run's, with the wall clock cut to what is left.
    public func commandLimits() -> SandboxLimits {
        var l = limits
        l.wallClockSeconds = max(0.1, deadline - MonotonicClock.now)
        return l
    }

    /// Runs a script in the sandbox, logging each output line as an `.output` event
    /// (or handing it to `onLine` instead).
    /// - Parameter maxLineBytes: the longest line `onLine` gets whole (see `SandboxLimits.maxLineBytes`);
    ///   a reader of JSON lines raises it so a long event is not cut.
    public func runScript(_ script: String, environment: [String: String] = [:], extraBinds: [SandboxBind] = [],
                          maxLineBytes: Int? = nil, onLine: ((String) -> Void)? = nil) throws -> SandboxResult {
        var withBinds = mounts
        withBinds.extra += extraBinds
        var limits = commandLimits()
        if let maxLineBytes { limits.maxLineBytes = maxLineBytes }
        return try sandbox.execute(script: script, environment: environment, mounts: withBinds, limits: limits,
                                   cancel: cancel) { line in
            if let onLine { onLine(line) } else { log(RunEvent(.output, line)) }
        }
    }
}

/// Usage an agent reports (tokens and cost for LLM agents; zero for commands).
public struct AgentUsage: Sendable, Codable, Equatable {
    public var inputTokens = 0
    public var outputTokens = 0
    public var cacheReadTokens = 0
    public var cacheWriteTokens = 0
    public var costUSD = 0.0
    public var turns = 0
    public init() {}
}

/// How an agent's work ended.
public struct AgentOutcome: Sendable {
    /// Whether the agent finished its job (the check is judged separately).
    public var succeeded: Bool
    /// Text for the result commit's body.
    public var summary: String
    /// Why it failed, when it did.
    public var error: String?
    /// A limit that ended it (partial work is still committed to refs/patchd/runs/ID).
    public var limit: LimitHit?
    public var usage: AgentUsage
    public var model: String?

    public init(succeeded: Bool, summary: String, error: String? = nil, limit: LimitHit? = nil,
                usage: AgentUsage = AgentUsage(), model: String? = nil) {
        self.succeeded = succeeded
        self.summary = summary
        self.error = error
        self.limit = limit
        self.usage = usage
        self.model = model
    }
}

/// A coding agent. Implementations: `CommandAgent` (the task's `run:` script), `BuiltinAgent`
/// (the Messages API loop) and `ClaudeCodeAgent` (the Claude Code CLI).
public protocol Agent: Sendable {
    var kind: AgentKind { get }
    func run(_ context: AgentContext) throws -> AgentOutcome
}

/// Runs the task's `run:` script in the sandbox. No model, no key.
public struct CommandAgent: Agent {
    public let kind = AgentKind.command
    public init() {}

    public func run(_ context: AgentContext) throws -> AgentOutcome {
        guard let script = context.task.run, !script.isEmpty else {
            return AgentOutcome(succeeded: false, summary: "", error: "the task has no run: script (the command agent needs one)")
        }
        context.log(RunEvent(.tool, "$ run: \(ScriptSummary.firstLine(script))"))
        let result = try context.runScript(script)
        let summary = "Ran the task's run: script (exit \(result.exitStatus), \(String(format: "%.1f", result.duration))s)."
        if let limit = result.limit {
            return AgentOutcome(succeeded: false, summary: summary, error: "run: \(limit.explanation)", limit: limit)
        }
        guard result.exitStatus == 0 else {
            return AgentOutcome(succeeded: false, summary: summary, error: "run: script exited \(result.exitStatus)")
        }
        return AgentOutcome(succeeded: true, summary: summary)
    }

}
