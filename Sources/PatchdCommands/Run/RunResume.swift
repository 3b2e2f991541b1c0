// PatchdCommands: `run resume ID [--max-turns N] [--max-cost-usd X] [--timeout T] [--wait] [-- MORE INSTRUCTIONS]`: continues a stopped run. Gate: write.

import ArgumentParser
import PatchdCore
import SSHKeys

struct RunResume: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "continue a stopped run from its last checkpoint, with new budgets",
        discussion: """
            A new run on the same branch's queue, linked to the old one (resumed_from). Its workspace
            starts from the old run's result or last checkpoint; the builtin agent goes on with the old
            conversation, plus the text after '--' as the user's next message. claude-code and codex
            start a new session on that workspace, with the old task and the text.
            """)
    static let gate = CommandGate.run(.write, action: "resuming runs")

    @Argument(help: "The run's id.")
    var id: String
    @Option(name: .customLong("max-turns"), help: "The new run's max_turns (default: the task's).")
    var maxTurns: Int?
    @Option(name: .customLong("max-cost-usd"), help: "The new run's max_cost_usd (default: the task's).")
    var maxCostUSD: Double?
    @Option(help: "The new run's timeout, e.g. 20m or 1h30m (default: the task's).")
    var timeout: String?
    @Flag(help: "Stream the new run's log until it ends: exit 0 if it succeeded, 1 otherwise.")
    var wait = false
    @Argument(parsing: .postTerminator, help: "More instructions, after '--'.")
    var instructions: [String] = []

    var gateSubject: String? { id }

    func validate() throws {
        if let maxTurns, maxTurns < 1 { throw ValidationError("--max-turns must be at least 1") }
        if let maxCostUSD, !(maxCostUSD > 0 && maxCostUSD.isFinite) { throw ValidationError("--max-cost-usd must be a number above 0") }
        if let timeout, TaskFile.parseDuration(timeout) == nil {
            throw ValidationError("--timeout must be a duration like 90s, 20m, 2h or 1h30m")
        }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let old = try invocation.runRecord.record
        let oldID = old.id!
        guard old.status == .failed || old.status == .canceled else {
            let why = old.status == .succeeded ? "it succeeded" : "it is \(old.status.rawValue)"
            return invocation.fail("run \(oldID) cannot be resumed: \(why); a run that failed, hit a limit or was canceled can")
        }
        guard var spec = old.taskSpec, let agent = AgentKind(rawValue: old.agent) else {
            return invocation.fail("run \(oldID) cannot be resumed: its task could not be read")
        }
        guard agent != .command else {
            return invocation.fail("run \(oldID) used the command agent, which has no conversation to continue; use run retry \(oldID)")
        }
        if let refusal = ctx.agents?.refusal(for: agent) { return invocation.fail(refusal) }
        if let maxTurns { spec.maxTurns = maxTurns }
        if let maxCostUSD { spec.maxCostUSD = maxCostUSD }
        if let timeout { spec.timeoutSeconds = TaskFile.parseDuration(timeout) }
        let text = instructions.joined(separator: " ")
        if agent != .builtin {
            // No saved session to go on with: the task itself says where the work stands.
            spec.body += "\n\n(patchd: this continues run \(oldID), which stopped; the workspace holds its work so far.)"
            if !text.isEmpty { spec.body += "\n\n" + text }
        }
        // Where the old run's work stands: its result (taken at its end), else its last checkpoint.
        let saved = try ctx.runs.checkpoint(runID: oldID)
        let start = old.result ?? old.checkpoint ?? saved?.commit ?? old.base
        let run = try ctx.runs.enqueueResume(
            of: old, spec: spec, startCommit: start, instructions: text.isEmpty ? nil : text, requestedBy: ctx.identity.userID)
        ctx.scheduler.wake()
        invocation.out("run \(run.id!) queued (resumes run \(oldID) from \(start.prefix(12)))\n")
        return wait ? invocation.follow(run.id!) : 0
    }
}
