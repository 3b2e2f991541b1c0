// PatchdCore: a run's saved agent state (checkpoint commit, conversation) and `run resume`'s new runs.

package import Foundation
import GRDB

/// The latest state an agent saved for a run: the checkpoint commit the workspace matched (nil:
/// the run's start) and the agent's conversation (opaque JSON, its own format), as of `turns`.
package struct RunCheckpointRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "run_checkpoints"
    package var runID: Int64
    package var commit: String?
    package var turns: Int
    package var conversation: Data?
    package var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case commit, turns, conversation
        case runID = "run_id", updatedAt = "updated_at"
    }
}

extension RunStore {
    /// Records a run's state after a turn, in one transaction: the conversation and the checkpoint
    /// commit it matches (also on the run's row, so `run show` names it while the run works).
    package func saveCheckpoint(runID: Int64, commit: String?, turns: Int, conversation: Data?) throws {
        try db.pool.write { db in
            try RunCheckpointRecord(runID: runID, commit: commit, turns: turns, conversation: conversation, updatedAt: Date())
                .save(db)
            if let commit {
                try db.execute(sql: "UPDATE runs SET checkpoint = ? WHERE id = ?", arguments: [commit, runID])
            }
        }
    }

    /// The run's saved state, if its agent saved any.
    package func checkpoint(runID: Int64) throws -> RunCheckpointRecord? {
        try db.pool.read { try RunCheckpointRecord.fetchOne($0, key: runID) }
    }

    /// Queues a run that continues `old` (`run resume`): same repository, branch, base and agent,
    /// `spec` with the new budgets, its workspace starting from `startCommit`'s tree and its agent
    /// from `old`'s saved conversation plus `instructions`.
    package func enqueueResume(
        of old: RunRecord, spec: TaskSpec, startCommit: String, instructions: String?, requestedBy: Int64?
    ) throws -> RunRecord {
        let json = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        var record = RunRecord(
            id: nil, repo: old.repo, branch: old.branch, base: old.base, status: .queued,
            agent: old.agent, model: old.model ?? spec.model, title: old.title, spec: json,
            taskSource: "resume", requestedBy: requestedBy, result: nil, changed: nil,
            checkStatus: nil, limitHit: nil, error: nil, summary: nil, attempts: 0, inputTokens: 0,
            outputTokens: 0, costUSD: 0, createdAt: Date(), startedAt: nil, finishedAt: nil)
        record.resumedFrom = old.id
        record.resumeInstructions = instructions
        record.startCommit = startCommit
        return try db.pool.write { db in
            let inserted = try record.inserted(db)
            try RunEventRecord(
                id: nil, runID: inserted.id!, at: Date(), kind: "info",
                text: "queued: resumes run \(old.id!) on \(old.repo) \(old.branch) from \(startCommit.prefix(12)) (agent \(old.agent))"
            ).insert(db)
            return inserted
        }
    }
}
