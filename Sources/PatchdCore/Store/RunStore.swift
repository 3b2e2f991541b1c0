// PatchdCore: runs and their events in SQLite: the queue, the records, the logs.

package import Foundation
package import GRDB

package enum RunStatus: String, Sendable, Codable {
    case queued, running, succeeded, failed, canceled
    package var isFinished: Bool { self == .succeeded || self == .failed || self == .canceled }
}

package struct RunRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "runs"
    package var id: Int64?
    package var repo: String
    package var branch: String
    package var base: String
    package var status: RunStatus
    package var agent: String
    package var model: String?
    package var title: String
    package var spec: String
    package var taskSource: String
    package var requestedBy: Int64?
    package var result: String?
    package var changed: Bool?
    package var checkStatus: String?
    package var limitHit: String?
    package var error: String?
    package var summary: String?
    package var attempts: Int
    package var inputTokens: Int
    package var outputTokens: Int
    package var cacheReadTokens: Int = 0
    package var cacheWriteTokens: Int = 0
    package var costUSD: Double
    package var createdAt: Date
    package var startedAt: Date?
    package var finishedAt: Date?
    /// The run's egress: its mode, allowlist and every connection (`RunNetworkRecord` as JSON); nil before setup.
    package var network: String? = nil
    /// The run whose result this run continues (a follow-up); nil for a fresh task.
    package var follows: Int64? = nil
    /// The run's cached environment: key, hit, setup time (`RunEnvironmentRecord` as JSON); nil: no setup.
    package var environment: String? = nil
    /// The run this one continues (`run resume`), whose conversation and work it starts from.
    package var resumedFrom: Int64? = nil
    /// The user's extra instructions given with `run resume` (`-- TEXT`).
    package var resumeInstructions: String? = nil
    /// The commit whose tree the workspace starts from when it is not `base` (a resume).
    package var startCommit: String? = nil
    /// The latest checkpoint commit (the tip of `refs/patchd/checkpoints/ID`).
    package var checkpoint: String? = nil
    /// Best of N: the group (its first attempt's id), this attempt's number (1...attemptOf), the
    /// winner once decided (nil: none won, or not decided yet) and why (nil until decided).
    /// All nil for a single run. `attempts` above is something else: how often the run was claimed.
    package var attemptGroup: Int64? = nil
    package var attemptNumber: Int? = nil
    package var attemptOf: Int? = nil
    package var attemptWinner: Int64? = nil
    package var attemptReason: String? = nil
    /// Lines added + removed against the base (set for attempts with a result: the winner rule's measure).
    package var diffLines: Int? = nil

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, repo, branch, base, status, agent, model, title, spec, result, changed, error, summary, attempts, network, follows
        case environment, checkpoint
        case resumedFrom = "resumed_from", resumeInstructions = "resume_instructions", startCommit = "start_commit"
        case attemptGroup = "attempt_group", attemptNumber = "attempt", attemptOf = "attempt_of"
        case attemptWinner = "attempt_winner", attemptReason = "attempt_reason", diffLines = "diff_lines"
        case taskSource = "task_source", requestedBy = "requested_by", checkStatus = "check_status"
        case limitHit = "limit_hit", inputTokens = "input_tokens", outputTokens = "output_tokens"
        case cacheReadTokens = "cache_read_tokens", cacheWriteTokens = "cache_write_tokens"
        case costUSD = "cost_usd", createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    static let decisionColumns: Set<String> = [CodingKeys.attemptWinner.rawValue, CodingKeys.attemptReason.rawValue]
    static let columnsBesidesDecision = Set(CodingKeys.allCases.map(\.rawValue)).subtracting(decisionColumns)

    package var taskSpec: TaskSpec? { try? JSONDecoder().decode(TaskSpec.self, from: Data(spec.utf8)) }
    package var networkRecord: RunNetworkRecord? {
        network.flatMap { try? JSONDecoder().decode(RunNetworkRecord.self, from: Data($0.utf8)) }
    }
    package var environmentRecord: RunEnvironmentRecord? {
        environment.flatMap { try? JSONDecoder().decode(RunEnvironmentRecord.self, from: Data($0.utf8)) }
    }
    package var resultRef: String? { result == nil ? nil : "refs/patchd/runs/\(id ?? 0)" }
}

package struct RunEventRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "run_events"
    package var id: Int64?
    package var runID: Int64
    package var at: Date
    package var kind: String
    package var text: String

    enum CodingKeys: String, CodingKey {
        case id, at, kind, text
        case runID = "run_id"
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// The run queue and records. Both the daemon and its hooks (separate processes) use it;
/// SQLite WAL and short transactions keep them from blocking each other.
package struct RunStore: Sendable {
    let db: PatchdDatabase

    package init(db: PatchdDatabase) { self.db = db }

    package struct NewRun: Sendable {
        package var repo: String
        package var branch: String
        package var base: String
        package var agent: AgentKind
        package var spec: TaskSpec
        package var source: String
        package var requestedBy: Int64?
        /// The run whose result `base` is (or descends from): a follow-up.
        package var follows: Int64?
        package init(
            repo: String, branch: String, base: String, agent: AgentKind, spec: TaskSpec, source: String, requestedBy: Int64?,
            follows: Int64? = nil
        ) {
            self.repo = repo; self.branch = branch; self.base = base; self.agent = agent
            self.spec = spec; self.source = source; self.requestedBy = requestedBy; self.follows = follows
        }
    }

    package func enqueue(_ new: NewRun) throws -> RunRecord {
        let json = String(decoding: try JSONEncoder().encode(new.spec), as: UTF8.self)
        let record = RunRecord(
            id: nil, repo: new.repo, branch: new.branch, base: new.base, status: .queued,
            agent: new.agent.rawValue, model: new.spec.model,
            title: new.spec.title.isEmpty ? ScriptSummary.firstLine(new.spec.run ?? "") : new.spec.title, spec: json,
            taskSource: new.source, requestedBy: new.requestedBy, result: nil, changed: nil,
            checkStatus: nil, limitHit: nil, error: nil, summary: nil, attempts: 0, inputTokens: 0,
            outputTokens: 0, costUSD: 0, createdAt: Date(), startedAt: nil, finishedAt: nil, follows: new.follows)
        return try db.pool.write { db in
            let inserted = try record.inserted(db)
            try RunEventRecord(
                id: nil, runID: inserted.id!, at: Date(), kind: "info",
                text: "queued: \(new.repo) \(new.branch) at \(new.base.prefix(12)) (agent \(new.agent.rawValue))"
                    + (new.follows.map { ", following run \($0)" } ?? "")
            ).insert(db)
            return inserted
        }
    }

    package func run(id: Int64) throws -> RunRecord? { try db.pool.read { try RunRecord.fetchOne($0, key: id) } }

    /// The run of `repo` whose result is the first of `commits` that is one (commits in the order
    /// given: nearest first), or nil. Only patchd writes `result`, so a commit message cannot
    /// claim another run (or another repository's).
    package func runWithResult(repo: String, among commits: [String]) throws -> RunRecord? {
        guard !commits.isEmpty else { return nil }
        let found = try db.pool.read { db in
            try RunRecord.filter(Column("repo") == repo && commits.contains(Column("result"))).order(Column("id").desc).fetchAll(db)
        }
        let byResult = Dictionary(found.compactMap { run in run.result.map { ($0, run) } }, uniquingKeysWith: { newer, _ in newer })
        return commits.lazy.compactMap { byResult[$0] }.first
    }

    /// The runs `run` follows, nearest first (at most `limit`).
    package func followChain(of run: RunRecord, limit: Int = 20) throws -> [Int64] {
        var chain: [Int64] = []
        var next = run.follows
        while let id = next, chain.count < limit, !chain.contains(id) {
            chain.append(id)
            next = try self.run(id: id)?.follows
        }
        return chain
    }

    /// The newest runs, optionally of one repository, of one status, and only of the repositories
    /// in `repos` (the ones a user may read; nil: all). Every filter is applied before `limit`.
    package func list(repo: String? = nil, status: RunStatus? = nil, repos: Set<String>? = nil, limit: Int = 50) throws -> [RunRecord] {
        try db.pool.read { db in
            var request = RunRecord.order(Column("id").desc).limit(limit)
            if let repo { request = request.filter(Column("repo") == repo) }
            if let repos { request = request.filter(repos.sorted().contains(Column("repo"))) }
            if let status { request = request.filter(Column("status") == status.rawValue) }
            return try request.fetchAll(db)
        }
    }

    /// Claims the next runnable run: the oldest queued run of a repo+branch that has no
    /// running run, so runs of one branch go in push order and others in parallel (and the
    /// attempts of one group in parallel with each other).
    package func claimNext() throws -> RunRecord? {
        try db.pool.write { db in
            // Attempts of one group (best of N) do not wait for each other: they run side by side.
            let sql = """
                SELECT * FROM runs AS r WHERE r.status = 'queued'
                AND NOT EXISTS (SELECT 1 FROM runs AS o WHERE o.repo = r.repo AND o.branch = r.branch
                                AND (o.status = 'running' OR (o.status = 'queued' AND o.id < r.id))
                                AND (r.attempt_group IS NULL OR o.attempt_group IS NOT r.attempt_group))
                ORDER BY r.id LIMIT 1
                """
            guard var run = try RunRecord.fetchOne(db, sql: sql) else { return nil }
            run.status = .running
            run.attempts += 1
            run.startedAt = Date()
            try run.update(db)
            return run
        }
    }

    /// Stores `run`, except the group's decision (`attempt_winner`, `attempt_reason`): only
    /// `decideAttempts` writes it, and an attempt still running holds a copy made before it.
    package func update(_ run: RunRecord) throws {
        try db.pool.write { try run.update($0, columns: RunRecord.columnsBesidesDecision) }
    }

    package func addEvent(runID: Int64, _ event: RunEvent) {
        addEvents(runID: runID, [event])
    }

    /// Several events in one transaction.
    package func addEvents(runID: Int64, _ events: [RunEvent]) {
        let now = Date()
        _ = try? db.pool.write { db in
            for event in events {
                try RunEventRecord(
                    id: nil, runID: runID, at: now, kind: event.kind.rawValue,
                    text: String(event.text.prefix(8192))
                ).insert(db)
            }
        }
    }

    package func events(runID: Int64, after: Int64 = 0, limit: Int = 10_000) throws -> [RunEventRecord] {
        try db.pool.read { db in
            try RunEventRecord.filter(Column("run_id") == runID && Column("id") > after)
                .order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    /// New events and the run's record from one snapshot (a follower never misses the last events).
    package func eventsAndRun(runID: Int64, after: Int64, limit: Int) throws -> ([RunEventRecord], RunRecord?) {
        try db.pool.read { db in
            let events = try RunEventRecord.filter(Column("run_id") == runID && Column("id") > after)
                .order(Column("id")).limit(limit).fetchAll(db)
            return (events, try RunRecord.fetchOne(db, key: runID))
        }
    }

    /// At start: runs a crash left `running` go back to the queue once, then fail.
    package func recoverInterrupted(maxAttempts: Int = 2) throws -> (requeued: [Int64], failed: [Int64]) {
        try db.pool.write { db in
            var requeued: [Int64] = [], failed: [Int64] = []
            for var run in try RunRecord.filter(Column("status") == RunStatus.running.rawValue).fetchAll(db) {
                if run.attempts < maxAttempts {
                    run.status = .queued
                    requeued.append(run.id!)
                    // With a saved state the run goes on from it (RunExecutor), not from the pushed tip.
                    let saved = try RunCheckpointRecord.fetchOne(db, key: run.id!)
                    let how = saved.map { "it resumes from its checkpoint after turn \($0.turns)" } ?? "it starts again"
                    try RunEventRecord(
                        id: nil, runID: run.id!, at: Date(), kind: "info",
                        text: "re-queued: the server stopped while this run was running; \(how)"
                    ).insert(db)
                } else {
                    run.status = .failed
                    run.error = "the server stopped during this run \(run.attempts) times; not retrying"
                    run.finishedAt = Date()
                    failed.append(run.id!)
                    try RunEventRecord(id: nil, runID: run.id!, at: Date(), kind: "error", text: run.error!).insert(db)
                }
                try run.update(db)
            }
            return (requeued, failed)
        }
    }

    /// A clean shutdown puts a running run back without counting the attempt.
    package func requeueForShutdown(id: Int64) throws {
        try db.pool.write { db in
            guard var run = try RunRecord.fetchOne(db, key: id), run.status == .running else { return }
            run.status = .queued
            run.attempts = max(0, run.attempts - 1)
            try run.update(db)
            try RunEventRecord(id: nil, runID: id, at: Date(), kind: "info", text: "re-queued: the server is stopping").insert(db)
        }
    }
}

extension RunStore {
    /// Cancels a run that has not started. Returns false if it is no longer queued.
    package func cancelQueued(id: Int64) throws -> Bool {
        try db.pool.write { db in
            guard var run = try RunRecord.fetchOne(db, key: id), run.status == .queued else { return false }
            run.status = .canceled
            run.limitHit = "canceled"
            run.error = "canceled before it started"
            run.finishedAt = Date()
            try run.update(db)
            try RunEventRecord(id: nil, runID: id, at: Date(), kind: "info", text: "canceled").insert(db)
            return true
        }
    }
}
