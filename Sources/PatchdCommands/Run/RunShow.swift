// PatchdCommands: `run show ID [--json]`: a run's record. Gate: read on the run's repository.

import ArgumentParser
import Foundation
import PatchdCore

struct RunShow: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "a run's record")
    static let gate = CommandGate.run(.read)

    @Argument(help: "The run's id.")
    var id: String
    @Flag(help: "One JSON object (the shape README 'JSON shapes' documents).")
    var json = false

    var gateSubject: String? { id }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let run = try invocation.runRecord.record
        if json { return invocation.json(RunJSON(run)) }
        var lines: [(String, String)] = [
            ("run", "\(run.id!)"), ("repo", run.repo), ("branch", run.branch), ("status", run.status.rawValue),
            ("title", run.title), ("agent", run.agent), ("model", run.model ?? "-"), ("base", run.base),
        ]
        if let result = run.result { lines.append(("result", "\(result) (refs/patchd/runs/\(run.id!))")) }
        if let chain = try? invocation.context.runs.followChain(of: run), !chain.isEmpty {
            lines.append(("follows", chain.map { "run \($0)" }.joined(separator: " <- ")))
        }
        if let checkpoint = run.checkpoint { lines.append(("checkpt", "\(checkpoint) (\(PatchdRefs.checkpoints(run.id!)))")) }
        if let from = run.resumedFrom { lines.append(("resumes", "run \(from)")) }
        if let group = run.attemptGroup {
            var text = "\(run.attemptNumber ?? 1) of \(run.attemptOf ?? 1) in group \(group)"
            if let diff = run.diffLines { text += ", \(diff) line\(diff == 1 ? "" : "s") changed" }
            if let reason = run.attemptReason {
                text +=
                    run.attemptWinner.map { $0 == run.id ? "; this attempt won: \(reason)" : "; run \($0) won: \(reason)" }
                    ?? "; none won: \(reason)"
            } else {
                text += "; not decided yet"
            }
            lines.append(("attempt", text))
        }
        if let changed = run.changed { lines.append(("changed", changed ? "yes" : "no")) }
        if let check = run.checkStatus { lines.append(("check", check)) }
        if let limit = run.limitHit { lines.append(("limit", limit)) }
        if let error = run.error { lines.append(("error", error)) }
        lines.append(("created", "\(RunJSON.iso(run.createdAt)) (\(RelativeTime.describe(run.createdAt)))"))
        if let s = run.startedAt { lines.append(("started", RunJSON.iso(s))) }
        if let f = run.finishedAt { lines.append(("finished", RunJSON.iso(f))) }
        if run.inputTokens + run.outputTokens > 0 || run.costUSD > 0 {
            lines.append(("usage", "\(run.inputTokens) in, \(run.outputTokens) out, $\(String(format: "%.4f", run.costUSD))"))
        }
        invocation.out(lines.map { $0.0.padding(toLength: 9, withPad: " ", startingAt: 0) + Terminal.sanitize($0.1) }.joined(separator: "\n") + "\n")
        return 0
    }
}
