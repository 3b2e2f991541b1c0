// Agents: the Agent seam: what a run's agent gets (task, sandbox, budgets) and gives back.

import Foundation
package import PatchdCore
import PatchdSystem
package import Sandboxing
import Synchronization

/// Everything an agent may use for one run. The sandbox runs commands in the workspace;
/// `log` records events; `budget` carries the limits the task and the server agreed on.
package struct AgentContext: Sendable {
    package let runID: Int64
    package let task: TaskSpec
    package let sandbox: Sandbox
    package let mounts: SandboxMounts
    package let limits: SandboxLimits
    package let cancel: CancellationFlag
    package let log: @Sendable (RunEvent) -> Void
    /// Absolute monotonic deadline for the whole run.
    package let deadline: Double
    /// The run's sandbox, which every command enters (opened by the executor, or on first use).
    let runSandboxSlot: RunSandboxSlot
    /// Where the agent saves its state after each turn (nil: nowhere, as in unit tests).
    package var checkpointer: (any AgentCheckpointer)? = nil
    /// The state the run goes on from (a restart after a crash, `run resume`); nil: a fresh start.
    package var resume: AgentResume? = nil
    /// What came before, for a follow-up: the earlier runs' tasks, summaries and what they did
    /// (`FollowUpContext`). Agents give it to the model ahead of the task.
    package var earlier: String?

    /// The task as the model gets it: the earlier work first (a follow-up), then the task.
    package var prompt: String {
        guard let earlier, !earlier.isEmpty else { return task.body }
        return earlier + "\n\nThe new task:\n" + task.body
    }

    /// - Parameter runSandbox: the run's open sandbox; nil opens one on first use (tests; whoever
    ///   made the context then owns closing it through `closeRunSandbox`).
    package init(
        runID: Int64, task: TaskSpec, sandbox: Sandbox, mounts: SandboxMounts, limits: SandboxLimits,
        cancel: CancellationFlag, deadline: Double, runSandbox: RunSandbox? = nil,
        log: @escaping @Sendable (RunEvent) -> Void
    ) {
        runSandboxSlot = RunSandboxSlot(runSandbox)
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
    package func commandLimits() -> SandboxLimits {
        var l = limits
        l.wallClockSeconds = max(0.1, deadline - MonotonicClock.now)
        return l
    }

    /// The run's sandbox (opened now if the context was made without one).
    package func runSandbox() throws -> RunSandbox {
        try runSandboxSlot.get { try sandbox.open(mounts: mounts, limits: limits, cancel: cancel) }
    }

    /// Closes a run sandbox this context opened itself.
    package func closeRunSandbox() { runSandboxSlot.closeOwned() }

    /// The wall clock of one builtin bash tool call: the task's `command_timeout` (default 10 minutes), within the run's.
    package func toolCommandLimits() -> SandboxLimits {
        var l = commandLimits()
        l.wallClockSeconds = min(l.wallClockSeconds, Double(task.commandTimeoutSeconds ?? TaskSpec.defaultCommandTimeoutSeconds))
        return l
    }

    /// Runs a script in the run's sandbox, logging each output line as an `.output` event
    /// (or handing it to `onLine` instead). `extraBinds` must be within what the sandbox was
    /// opened with (`Agent.sandboxBinds`, the run's HOME and bridge directory).
    /// - Parameter maxLineBytes: the longest line `onLine` gets whole (see `SandboxLimits.maxLineBytes`);
    ///   a reader of JSON lines raises it so a long event is not cut.
    package func runScript(
        _ script: String, environment: [String: String] = [:], extraBinds: [SandboxBind] = [],
        maxLineBytes: Int? = nil, onLine: ((String) -> Void)? = nil
    ) throws -> SandboxResult {
        let run = try runSandbox()
        try run.checkBinds(extraBinds)
        var limits = commandLimits()
        if let maxLineBytes { limits.maxLineBytes = maxLineBytes }
        return try run.execute(script: script, environment: environment, limits: limits) { line in
            if let onLine { onLine(line) } else { log(RunEvent(.output, line)) }
        }
    }
}

/// Usage an agent reports (tokens and cost for LLM agents; zero for commands).
package struct AgentUsage: Sendable, Codable, Equatable {
    package var inputTokens = 0
    package var outputTokens = 0
    package var cacheReadTokens = 0
    package var cacheWriteTokens = 0
    package var costUSD = 0.0
    package var turns = 0
    package init() {}
}

/// How an agent's work ended.
package struct AgentOutcome: Sendable {
    /// Whether the agent finished its job (the check is judged separately).
    package var succeeded: Bool
    /// Text for the result commit's body.
    package var summary: String
    /// Why it failed, when it did.
    package var error: String?
    /// A limit that ended it (partial work is still committed to refs/patchd/runs/ID).
    package var limit: LimitHit?
    package var usage: AgentUsage
    package var model: String?

    package init(
        succeeded: Bool, summary: String, error: String? = nil, limit: LimitHit? = nil,
        usage: AgentUsage = AgentUsage(), model: String? = nil
    ) {
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
package protocol Agent: Sendable {
    var kind: AgentKind { get }
    /// Host paths the agent's commands need mounted (its CLI binary), for the whole run: the run
    /// sandbox is opened with them, as a running sandbox cannot grow mounts.
    func sandboxBinds(_ mounts: SandboxMounts) -> [SandboxBind]
    func run(_ context: AgentContext) throws -> AgentOutcome
}

extension Agent {
    package func sandboxBinds(_ mounts: SandboxMounts) -> [SandboxBind] { [] }
}

/// The run sandbox of an `AgentContext`: given, or opened on first use (and then closed by `closeOwned`).
final class RunSandboxSlot: Sendable {
    private let state: Mutex<(sandbox: RunSandbox?, owned: Bool)>

    init(_ given: RunSandbox?) { state = Mutex((given, false)) }

    func get(open: () throws -> RunSandbox) throws -> RunSandbox {
        try state.withLock { s in
            if let sandbox = s.sandbox { return sandbox }
            let opened = try open()
            s = (opened, true)
            return opened
        }
    }

    func closeOwned() {
        state.withLock { s in
            if s.owned { s.sandbox?.close(); s = (nil, false) }
        }
    }
}

/// Runs the task's `run:` script in the sandbox. No model, no key.
package struct CommandAgent: Agent {
    package let kind = AgentKind.command
    package init() {}

    package func run(_ context: AgentContext) throws -> AgentOutcome {
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
