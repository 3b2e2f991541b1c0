// PatchdServer: counters and the `stats` command's figures, as text, JSON or Prometheus exposition format.
import Foundation
import GRDB
import SSHServer
import Synchronization
import PatchdCore
import Offsite

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

/// One `stats` answer: gathered from the SSH server, the transfer counters and the database.
struct MetricsSnapshot: Encodable {
    var connectionsAccepted = 0
    var connectionsRejected = 0
    var connectionsActive = 0
    var authFailures = 0
    var transfers: [String: Int] = [:]          // "git-receive-pack ok" -> count
    var transferSeconds: [String: Double] = [:]  // "git-receive-pack" -> total seconds
    var runs: [String: Int] = [:]               // status -> count
    var queueDepth = 0
    var runSeconds = 0.0
    var runsTimed = 0
    var inputTokens = 0
    var outputTokens = 0
    var cacheReadTokens = 0
    var cacheWriteTokens = 0
    var costUSD = 0.0
    /// Off-machine replication (nil when `offsite:` is not configured): changes not yet in
    /// the bucket, the age of the oldest, how many are failing, and the newest error.
    var offsite: OffsiteState.Status?

    static func gather(ssh: SSHStatistics, transfers: TransferCounters, db: PatchdDatabase,
                       offsite: OffsiteState.Status? = nil) throws -> MetricsSnapshot {
        var m = MetricsSnapshot()
        m.offsite = offsite
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
            if let row = try Row.fetchOne(db, sql: """
                SELECT COALESCE(SUM(input_tokens),0) AS i, COALESCE(SUM(output_tokens),0) AS o,
                       COALESCE(SUM(cache_read_tokens),0) AS cr, COALESCE(SUM(cache_write_tokens),0) AS cw,
                       COALESCE(SUM(cost_usd),0) AS c,
                       COALESCE(SUM((julianday(finished_at) - julianday(started_at)) * 86400.0), 0) AS secs,
                       COUNT(finished_at) AS timed
                FROM runs WHERE started_at IS NOT NULL
                """) {
                m.inputTokens = row["i"]; m.outputTokens = row["o"]
                m.cacheReadTokens = row["cr"]; m.cacheWriteTokens = row["cw"]
                m.costUSD = row["c"]; m.runSeconds = row["secs"]; m.runsTimed = row["timed"]
            }
        }
        return m
    }

    /// Prometheus text exposition format (version 0.0.4).
    var prometheus: String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(Self.format(value))\n" }
        }
        metric("patchd_ssh_connections_total", "counter", "SSH connections accepted.", [("", Double(connectionsAccepted))])
        metric("patchd_ssh_connections_rejected_total", "counter", "Connections closed at once: too many unauthenticated.", [("", Double(connectionsRejected))])
        metric("patchd_ssh_connections_active", "gauge", "Open SSH connections.", [("", Double(connectionsActive))])
        metric("patchd_ssh_auth_failures_total", "counter", "Failed public key attempts.", [("", Double(authFailures))])
        metric("patchd_git_transfers_total", "counter", "git upload-pack/receive-pack runs by outcome.",
               transfers.sorted { $0.key < $1.key }.map { key, n in
                   let parts = key.split(separator: " ")
                   return ("{service=\"\(parts[0])\",result=\"\(parts[1])\"}", Double(n))
               })
        metric("patchd_git_transfer_seconds_total", "counter", "Time spent in git transfers.",
               transferSeconds.sorted { $0.key < $1.key }.map { ("{service=\"\($0.key)\"}", $0.value) })
        metric("patchd_runs", "gauge", "Runs by status.",
               ["queued", "running", "succeeded", "failed", "canceled"].map { ("{status=\"\($0)\"}", Double(runs[$0] ?? 0)) })
        metric("patchd_run_queue_depth", "gauge", "Queued runs.", [("", Double(queueDepth))])
        metric("patchd_run_seconds_total", "counter", "Wall time of finished runs.", [("", runSeconds)])
        metric("patchd_runs_timed_total", "counter", "Finished runs counted in patchd_run_seconds_total.", [("", Double(runsTimed))])
        metric("patchd_tokens_total", "counter", "LLM tokens by kind.", [
            ("{kind=\"input\"}", Double(inputTokens)), ("{kind=\"output\"}", Double(outputTokens)),
            ("{kind=\"cache_read\"}", Double(cacheReadTokens)), ("{kind=\"cache_write\"}", Double(cacheWriteTokens)),
        ])
        metric("patchd_cost_usd_total", "counter", "LLM cost in USD.", [("", costUSD)])
        if let offsite {
            metric("patchd_offsite_lag_seconds", "gauge", "Age of the oldest change not yet replicated off the machine (0: none).", [("", offsite.lagSeconds)])
            metric("patchd_offsite_pending", "gauge", "Changes queued for off-machine replication.", [("", Double(offsite.pending))])
            metric("patchd_offsite_failing", "gauge", "Queued changes whose last upload failed.", [("", Double(offsite.failing))])
        }
        return out
    }

    var text: String {
        var lines = [
            "connections  \(connectionsAccepted) accepted, \(connectionsRejected) rejected, \(connectionsActive) open, \(authFailures) auth failures",
        ]
        for (key, n) in transfers.sorted(by: { $0.key < $1.key }) { lines.append("transfers    \(key): \(n)") }
        lines.append("runs         " + ["queued", "running", "succeeded", "failed", "canceled"].map { "\($0) \(runs[$0] ?? 0)" }.joined(separator: ", "))
        lines.append("tokens       \(inputTokens) in, \(outputTokens) out, \(cacheReadTokens) cache read, \(cacheWriteTokens) cache write")
        lines.append(String(format: "cost         $%.4f", costUSD))
        if let offsite {
            lines.append("offsite      lag \(Int(offsite.lagSeconds)) s, \(offsite.pending) pending, \(offsite.failing) failing"
                         + (offsite.lastError.map { "; last error: \($0.prefix(200))" } ?? ""))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
