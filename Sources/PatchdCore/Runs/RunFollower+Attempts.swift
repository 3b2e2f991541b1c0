// PatchdCore: follows a group of attempts (push -o wait, run start --wait) until it is decided, and sums it up.

import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

extension RunFollower {
    /// Follows each attempt in turn (they run side by side; the events of one that is ahead
    /// come at once), each line tagged `[attempt N/M]`, then waits for the group's decision.
    /// Returns the attempts' final records, or nil once the reader is gone.
    package func followGroup(_ attempts: [RunRecord], prefix: String, write: (String) -> Bool) -> [RunRecord]? {
        guard let group = attempts.first?.attemptGroup else { return nil }
        for run in attempts {
            let tag = "[attempt \(run.attemptNumber ?? 0)/\(run.attemptOf ?? attempts.count)] "
            guard follow(runID: run.id!, prefix: prefix + tag, write: write) != nil else { return nil }
        }
        // The decision follows the last attempt's record within moments (the scheduler's sweep
        // at the latest, about a second); past a minute the records are shown as they are.
        let deadline = MonotonicClock.now + 60
        while true {
            let current = (try? runs.attempts(inGroup: group)) ?? attempts
            if current.allSatisfy({ $0.attemptReason != nil }) || MonotonicClock.now > deadline { return current }
            usleep(pollInterval * 4)
        }
    }

    /// How a group ended, for people: one line per attempt, then the winner and why, or that none won.
    package static func groupSummary(_ attempts: [RunRecord]) -> [String] {
        guard let first = attempts.first else { return [] }
        var lines = ["best of \(attempts.count) (group \(first.attemptGroup ?? first.id ?? 0)):"]
        for run in attempts {
            var line = "  attempt \(run.attemptNumber ?? 0) (run \(run.id!)): \(run.status.rawValue)"
            if let check = run.checkStatus { line += ", check \(check)" }
            if let model = run.model, !model.isEmpty, run.agent != AgentKind.command.rawValue { line += ", model \(model)" }
            if let lines = run.diffLines {
                line += ", \(lines) line\(lines == 1 ? "" : "s") changed"
            } else if run.changed == false {
                line += ", no changes"
            }
            if run.id == run.attemptWinner { line += "  <- winner" }
            lines.append(Terminal.sanitize(line))
        }
        if let winner = attempts.first(where: { $0.id != nil && $0.id == $0.attemptWinner }) {
            lines.append("winner: attempt \(winner.attemptNumber ?? 0) (run \(winner.id!)): \(Terminal.sanitize(winner.attemptReason ?? ""))")
        } else if let reason = first.attemptReason {
            lines.append("no attempt won: \(Terminal.sanitize(reason)); agent/\(Terminal.sanitize(first.branch)) did not move")
        } else {
            lines.append("the group is not decided yet; see run show \(first.id!)")
        }
        return lines
    }
}
