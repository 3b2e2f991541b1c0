// PatchdCore: best of N in the run store: queueing a group of attempts, deciding its winner under the write lock.

import Foundation
import GRDB

extension RunStore {
    /// How many attempts a task asks for and how they are spread over models.
    package struct AttemptPlan: Sendable, Equatable {
        /// The attempts to queue, at most the server's cap.
        package var count: Int
        /// What the task (or push option) asked for, before the cap.
        package var requested: Int
        /// Models given round-robin to the attempts (empty: every attempt gets the task's model).
        package var models: [String]

        /// `option` (git push -o attempts=N, run start --attempts N) wins over the task's `attempts:`;
        /// without either, `models:` asks for one attempt per model.
        package init(spec: TaskSpec, option: Int?, cap: Int) {
            models = spec.models ?? []
            requested = option ?? spec.attempts ?? max(models.count, 1)
            count = min(requested, max(cap, 1))
        }

        package var capped: Bool { requested > count }

        /// The server's `max_attempts` when its config names none.
        package static let defaultCap = 4

        /// The run log's (and the pusher's) line when the cap cut the attempts, else nil.
        package var capNote: String? {
            capped ? "attempts: \(requested) asked for, \(count) run: the server runs at most \(count) (its max_attempts)" : nil
        }

        /// What the pusher (or `run start`) is told about the queued runs of one request.
        package func queuedLines(_ runs: [RunRecord]) -> [String] {
            guard let first = runs.first else { return [] }
            let branch = Terminal.sanitize(first.branch)
            var lines: [String] = []
            if runs.count == 1 {
                lines.append("run \(first.id!) queued for \(branch) (agent \(first.agent)); result: agent/\(branch)")
            } else {
                let ids = runs.compactMap(\.id).map(String.init).joined(separator: ", ")
                lines.append(
                    "runs \(ids) queued for \(branch): best of \(runs.count) (agent \(first.agent)), group \(first.attemptGroup ?? first.id!); "
                        + "the winner's result: agent/\(branch)")
            }
            if let capNote { lines.append(capNote) }
            return lines
        }

        /// The model of attempt `number` (1-based), or nil for the task's own.
        package func model(of number: Int) -> String? { models.isEmpty ? nil : models[(number - 1) % models.count] }
    }

    /// Queues one request: a single run when the plan has one attempt, else a group.
    package func enqueue(_ new: NewRun, plan: AttemptPlan) throws -> [RunRecord] {
        guard plan.count > 1 else {
            var single = new
            if let model = plan.model(of: 1) { single.spec.model = model }
            let run = try enqueue(single)
            if let note = plan.capNote { addEvent(runID: run.id!, RunEvent(.info, note)) }
            return [run]
        }
        return try enqueueAttempts(new, plan: plan, capNote: plan.capNote)
    }

    /// Queues `plan.count` attempts of `new` from one base as one group (its id: the first
    /// attempt's), in one transaction, so the scheduler never sees half a group.
    package func enqueueAttempts(_ new: NewRun, plan: AttemptPlan, capNote: String? = nil) throws -> [RunRecord] {
        try db.pool.write { db in
            var queued: [RunRecord] = []
            for number in 1...max(plan.count, 1) {
                var spec = new.spec
                if let model = plan.model(of: number) { spec.model = model }
                let json = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
                var record = RunRecord(
                    id: nil, repo: new.repo, branch: new.branch, base: new.base, status: .queued,
                    agent: new.agent.rawValue, model: spec.model,
                    title: spec.title.isEmpty ? ScriptSummary.firstLine(spec.run ?? "") : spec.title, spec: json,
                    taskSource: new.source, requestedBy: new.requestedBy, result: nil, changed: nil,
                    checkStatus: nil, limitHit: nil, error: nil, summary: nil, attempts: 0, inputTokens: 0,
                    outputTokens: 0, costUSD: 0, createdAt: Date(), startedAt: nil, finishedAt: nil, follows: new.follows)
                record.attemptGroup = queued.first?.id
                record.attemptNumber = number
                record.attemptOf = plan.count
                var inserted = try record.inserted(db)
                if number == 1 {
                    inserted.attemptGroup = inserted.id
                    try inserted.update(db)
                }
                let model = plan.model(of: number).map { ", model \($0)" } ?? ""
                try RunEventRecord(
                    id: nil, runID: inserted.id!, at: Date(), kind: "info",
                    text: "queued: \(new.repo) \(new.branch) at \(new.base.prefix(12)) (agent \(new.agent.rawValue)\(model)), "
                        + "attempt \(number) of \(plan.count) in group \(inserted.attemptGroup!)"
                        + (new.follows.map { ", following run \($0)" } ?? "")
                ).insert(db)
                if let capNote {
                    try RunEventRecord(id: nil, runID: inserted.id!, at: Date(), kind: "info", text: capNote).insert(db)
                }
                queued.append(inserted)
            }
            return queued
        }
    }

    /// The attempts of `group`, in attempt order.
    package func attempts(inGroup group: Int64) throws -> [RunRecord] {
        try db.pool.read { db in
            try RunRecord.filter(Column("attempt_group") == group).order(Column("attempt"), Column("id")).fetchAll(db)
        }
    }

    /// Decides `group` if the rule can (`AttemptRule`), under SQLite's write lock: two attempts
    /// finishing together cannot both win, and a group is decided once. `apply` runs inside the
    /// lock with the decision (it moves agent/BRANCH) and returns a note to add to the reason
    /// (why the branch could not move), or nil. With `cancelRest` and a winner, attempts still
    /// queued are canceled here; running ones are the scheduler's (`attemptsToStop`). Returns the
    /// decision and the group's records after it, or nil when nothing was decided now.
    package func decideAttempts(
        group: Int64, cancelRest: Bool, apply: (AttemptRule.Decision, [RunRecord]) -> String?
    ) throws -> (decision: AttemptRule.Decision, attempts: [RunRecord])? {
        try db.pool.write { db in
            var attempts = try RunRecord.filter(Column("attempt_group") == group).order(Column("attempt"), Column("id")).fetchAll(db)
            guard !attempts.isEmpty, attempts.allSatisfy({ $0.attemptReason == nil }) else { return nil }
            let hasCheck = !(attempts[0].taskSpec?.check ?? "").allSatisfy(\.isWhitespace)
            guard var decision = AttemptRule.decide(attempts, hasCheck: hasCheck, cancelRest: cancelRest) else { return nil }
            if let note = apply(decision, attempts) {
                decision = AttemptRule.Decision(winner: decision.winner, reason: decision.reason + "; " + note)
            }
            let winner = attempts.first { $0.id == decision.winner }
            let headline =
                winner.map { "best of \(attempts.count): attempt \($0.attemptNumber ?? 0) (run \($0.id!)) won: \(decision.reason)" }
                ?? "best of \(attempts.count): no attempt won: \(decision.reason); agent/\(attempts[0].branch) did not move"
            for index in attempts.indices {
                attempts[index].attemptWinner = decision.winner
                attempts[index].attemptReason = decision.reason
                // A running attempt's executor owns the rest of its row: only the decision is written to it.
                var columns = RunRecord.decisionColumns
                if cancelRest, let winner, attempts[index].status == .queued {
                    attempts[index].status = .canceled
                    attempts[index].limitHit = "canceled"
                    attempts[index].error = "canceled before it started: attempt \(winner.attemptNumber ?? 0) (run \(winner.id!)) already won"
                    attempts[index].finishedAt = Date()
                    columns.formUnion(["status", "limit_hit", "error", "finished_at"])
                }
                try attempts[index].update(db, columns: columns)
                try RunEventRecord(id: nil, runID: attempts[index].id!, at: Date(), kind: "info", text: headline).insert(db)
            }
            return (decision, attempts)
        }
    }

    /// Groups with a finished attempt and no decision yet: the scheduler settles them (a queued
    /// attempt canceled by `run cancel`, or a crash between an attempt's end and the decision).
    package func undecidedAttemptGroups() throws -> [Int64] {
        try db.pool.read { db in
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT attempt_group FROM runs WHERE attempt_group IS NOT NULL AND attempt_reason IS NULL
                    AND status IN ('succeeded', 'failed', 'canceled')
                    """)
        }
    }

    /// Running attempts of groups another attempt has won (to cancel under `attempts_cancel_rest`).
    package func attemptsToStop() throws -> [Int64] {
        try db.pool.read { db in
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM runs WHERE status = 'running' AND attempt_group IS NOT NULL
                    AND attempt_winner IS NOT NULL AND attempt_winner != id
                    """)
        }
    }
}
