// Runs: where a run's workspace and agent start: the pushed commit, its own last checkpoint after a crash, or the run it resumes.

import Agents
import Foundation
import GitStore
import PatchdCore

extension RunExecutor {
    /// Where a run starts: the commit whose tree the workspace gets, the conversation the agent
    /// goes on from, and the run's own latest checkpoint (the parent of its next one).
    struct StartPoint {
        var commit: String
        var resume: AgentResume?
        var lastCheckpoint: String?
    }

    /// A run with saved state of its own was interrupted (the server stopped while it worked): it
    /// goes on from that. Otherwise a run made by `run resume` starts from the commit recorded when
    /// it was queued, with the old run's conversation. Otherwise from the pushed commit.
    func startPoint(_ run: RunRecord, barePath: String, log: @Sendable (RunEvent) -> Void) -> StartPoint {
        let id = run.id!
        let fallback = run.startCommit ?? run.base
        // A commit the bare repository cannot show (never written, or removed by hand) is not a start.
        func usable(_ commit: String?) -> String? {
            guard let commit, (try? ResultWriter(bareRepository: barePath).tree(ofCommit: commit)) != nil else { return nil }
            return commit
        }
        if let saved = try? env.runs.checkpoint(runID: id) {
            let commit = usable(saved.commit) ?? usable(fallback) ?? run.base
            log(RunEvent(.info, "resuming after a restart from \(commit.prefix(12)), as after turn \(saved.turns)"))
            return StartPoint(
                commit: commit, resume: AgentResume(reason: .interrupted, conversation: saved.conversation), lastCheckpoint: saved.commit)
        }
        if let from = run.resumedFrom {
            let old = try? env.runs.run(id: from)
            let saved = try? env.runs.checkpoint(runID: from)
            let stopped = old.map(Self.howItStopped) ?? "its record is gone"
            let commit = usable(fallback) ?? run.base
            log(RunEvent(.info, "continuing run \(from) from \(commit.prefix(12))" + (saved?.conversation == nil ? " (no saved conversation)" : "")))
            return StartPoint(
                commit: commit,
                resume: AgentResume(
                    reason: .continued(run: from, stopped: stopped, instructions: run.resumeInstructions), conversation: saved?.conversation),
                lastCheckpoint: nil)
        }
        return StartPoint(commit: run.base, resume: nil, lastCheckpoint: nil)
    }

    /// How a finished run ended, in a few words for the agent: "limit: turns", "failed: ...".
    static func howItStopped(_ run: RunRecord) -> String {
        if let limit = run.limitHit { return "\(run.status.rawValue), limit: \(limit)" }
        if let error = run.error { return "\(run.status.rawValue): \(error.prefix(300))" }
        return run.status.rawValue
    }
}
