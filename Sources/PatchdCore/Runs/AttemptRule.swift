// PatchdCore: best of N: which attempt of a group wins, and why (the rule README "Best of N" documents).

import Foundation

/// The rule is patchd's own. An attempt can win when it succeeded (with a `check:`, that means
/// its check passed) and changed something. With a check the group waits for all its attempts
/// and the smallest diff (lines added + removed against the base) wins, ties to the one that
/// finished first; with `attempts_cancel_rest`, or without a check, the first that can win wins
/// at once.
package enum AttemptRule {
    package struct Decision: Sendable, Equatable {
        /// The winning attempt's run id; nil: none won.
        package let winner: Int64?
        package let reason: String
    }

    /// The decision for `attempts` (every attempt of one group), or nil while the rule must wait
    /// for attempts still queued or running.
    package static func decide(_ attempts: [RunRecord], hasCheck: Bool, cancelRest: Bool) -> Decision? {
        let finished = attempts.filter(\.status.isFinished).sorted(by: finishedFirst)
        let allFinished = finished.count == attempts.count
        func canWin(_ run: RunRecord) -> Bool {
            run.status == .succeeded && run.result != nil && (!hasCheck || run.checkStatus == "passed")
        }
        func lines(_ run: RunRecord) -> String { run.diffLines.map { "\($0) line\($0 == 1 ? "" : "s")" } ?? "size unknown" }
        if !hasCheck || cancelRest {
            if let first = finished.first(where: canWin) {
                let what = hasCheck ? "first to pass its check" : "first to succeed"
                let rest = cancelRest && !allFinished ? "; the unfinished attempts are canceled (attempts_cancel_rest)" : ""
                return Decision(winner: first.id, reason: "\(what) (\(lines(first)))\(rest)")
            }
        } else if allFinished {
            let passed = finished.filter(canWin)
            if let best = passed.min(by: { smaller($0, $1) }) {
                if passed.count == 1 { return Decision(winner: best.id, reason: "the only attempt whose check passed (\(lines(best)))") }
                let tied = passed.filter { $0.diffLines == best.diffLines }.count
                let tie = tied > 1 ? ", finished first of the \(tied) that size" : ""
                return Decision(winner: best.id, reason: "check passed, smallest diff (\(lines(best))) of the \(passed.count) that passed\(tie)")
            }
        }
        guard allFinished else { return nil }
        let outcomes = attempts.sorted { ($0.attemptNumber ?? 0) < ($1.attemptNumber ?? 0) }
            .map { "\($0.attemptNumber ?? 0): \(outcome($0))" }.joined(separator: "; ")
        return Decision(winner: nil, reason: (hasCheck ? "no attempt passed its check" : "no attempt succeeded with a change") + " (\(outcomes))")
    }

    /// How one attempt ended, in a few words.
    static func outcome(_ run: RunRecord) -> String {
        switch run.status {
        case .succeeded: return run.result == nil ? "succeeded without changes" : "succeeded"
        case .canceled: return "canceled"
        case .failed:
            if run.checkStatus == "failed" { return "check failed" }
            if let limit = run.limitHit { return "failed (\(limit))" }
            return "failed"
        case .queued, .running: return run.status.rawValue
        }
    }

    static func finishedFirst(_ a: RunRecord, _ b: RunRecord) -> Bool {
        let (x, y) = (a.finishedAt ?? .distantFuture, b.finishedAt ?? .distantFuture)
        return x != y ? x < y : (a.id ?? 0) < (b.id ?? 0)
    }

    /// Smaller diff first; a diff of unknown size counts as the largest; then finished first.
    static func smaller(_ a: RunRecord, _ b: RunRecord) -> Bool {
        let (x, y) = (a.diffLines ?? Int.max, b.diffLines ?? Int.max)
        return x != y ? x < y : finishedFirst(a, b)
    }
}
