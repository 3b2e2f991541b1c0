// PatchdServer: transfer counters, and gathering the `stats` command's figures (MetricsSnapshot, in PatchdCommands).

import Foundation
import GRDB
import Offsite
import PatchdCommands
import PatchdCore
import SSHServer
import Synchronization

/// In-process counters that the database does not hold (git transfers).
final class TransferCounters: Sendable {
    private let values = Mutex<[String: Double]>([:])

    func record(service: String, status: Int32, seconds: Double) {
        values.withLock { v in
            v["\(service)|\(status == 0 ? "ok" : "error")", default: 0] += 1
            v["\(service)|seconds", default: 0] += seconds
        }
    }

    var snapshot: [String: Double] { values.withLock { $0 } }
}

extension MetricsSnapshot {
    /// One `stats` answer: gathered from the SSH server, the transfer counters and the database.
    static func gather(
        ssh: SSHStatistics, transfers: TransferCounters, db: PatchdDatabase,
        offsite: OffsiteState.Status? = nil
    ) throws -> MetricsSnapshot {
        var m = MetricsSnapshot()
        m.offsite = offsite.map {
            MetricsSnapshot.OffsiteLag(
                pending: $0.pending, lagSeconds: $0.lagSeconds, failing: $0.failing,
                lastError: $0.lastError, lastSuccessAt: $0.lastSuccessAt)
        }
        m.connectionsAccepted = ssh.accepted
        m.connectionsRejected = ssh.rejected
        m.connectionsActive = ssh.active
        m.authFailures = ssh.authFailures
        for (key, value) in transfers.snapshot {
            let parts = key.split(separator: "|").map(String.init)
            if parts[1] == "seconds" { m.transferSeconds[parts[0]] = value } else { m.transfers[parts[0] + " " + parts[1]] = Int(value) }
        }
        try db.pool.read { db in
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM runs GROUP BY status") {
                m.runs[row["status"]] = row["n"]
            }
            m.queueDepth = m.runs["queued"] ?? 0
            if let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(SUM(input_tokens),0) AS i, COALESCE(SUM(output_tokens),0) AS o,
                           COALESCE(SUM(cache_read_tokens),0) AS cr, COALESCE(SUM(cache_write_tokens),0) AS cw,
                           COALESCE(SUM(cost_usd),0) AS c,
                           COALESCE(SUM((julianday(finished_at) - julianday(started_at)) * 86400.0), 0) AS secs,
                           COUNT(finished_at) AS timed
                    FROM runs WHERE started_at IS NOT NULL
                    """)
            {
                m.inputTokens = row["i"]; m.outputTokens = row["o"]
                m.cacheReadTokens = row["cr"]; m.cacheWriteTokens = row["cw"]
                m.costUSD = row["c"]; m.runSeconds = row["secs"]; m.runsTimed = row["timed"]
            }
        }
        return m
    }
}
