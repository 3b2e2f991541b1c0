// PatchdCommands: the `stats` command's figures and their text, JSON and Prometheus renderings (gathered by the daemon).

import Foundation
import PatchdCore

/// One `stats` answer: gathered from the SSH server, the transfer counters and the database.
package struct MetricsSnapshot: Encodable, Sendable {
    package var connectionsAccepted = 0
    package var connectionsRejected = 0
    package var connectionsActive = 0
    package var authFailures = 0
    package var transfers: [String: Int] = [:]  // "git-receive-pack ok" -> count
    package var transferSeconds: [String: Double] = [:]  // "git-receive-pack" -> total seconds
    package var runs: [String: Int] = [:]  // status -> count
    package var queueDepth = 0
    package var runSeconds = 0.0
    package var runsTimed = 0
    package var inputTokens = 0
    package var outputTokens = 0
    package var cacheReadTokens = 0
    package var cacheWriteTokens = 0
    package var costUSD = 0.0
    /// Off-machine replication (nil when `offsite:` is not configured).
    package var offsite: OffsiteLag?

    /// The replication queue as `stats` shows it (gathered from the Offsite target by the daemon).
    package struct OffsiteLag: Encodable, Sendable, Equatable {
        /// Changes not yet in the bucket.
        package var pending: Int
        /// Seconds since the oldest unreplicated change (0 when nothing is pending).
        package var lagSeconds: Double
        /// Changes whose last upload failed, and the newest such error.
        package var failing: Int
        package var lastError: String?
        /// When the last upload finished (Unix seconds), if any.
        package var lastSuccessAt: Double?

        package init(pending: Int, lagSeconds: Double, failing: Int, lastError: String?, lastSuccessAt: Double?) {
            self.pending = pending
            self.lagSeconds = lagSeconds
            self.failing = failing
            self.lastError = lastError
            self.lastSuccessAt = lastSuccessAt
        }
    }

    package init() {}

    /// Prometheus text exposition format (version 0.0.4).
    package var prometheus: String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(Self.format(value))\n" }
        }
        metric("patchd_ssh_connections_total", "counter", "SSH connections accepted.", [("", Double(connectionsAccepted))])
        metric(
            "patchd_ssh_connections_rejected_total", "counter", "Connections closed at once: too many unauthenticated.",
            [("", Double(connectionsRejected))])
        metric("patchd_ssh_connections_active", "gauge", "Open SSH connections.", [("", Double(connectionsActive))])
        metric("patchd_ssh_auth_failures_total", "counter", "Failed public key attempts.", [("", Double(authFailures))])
        metric(
            "patchd_git_transfers_total", "counter", "git upload-pack/receive-pack runs by outcome.",
            transfers.sorted { $0.key < $1.key }.map { key, n in
                let parts = key.split(separator: " ")
                return ("{service=\"\(parts[0])\",result=\"\(parts[1])\"}", Double(n))
            })
        metric(
            "patchd_git_transfer_seconds_total", "counter", "Time spent in git transfers.",
            transferSeconds.sorted { $0.key < $1.key }.map { ("{service=\"\($0.key)\"}", $0.value) })
        metric(
            "patchd_runs", "gauge", "Runs by status.",
            ["queued", "running", "succeeded", "failed", "canceled"].map { ("{status=\"\($0)\"}", Double(runs[$0] ?? 0)) })
        metric("patchd_run_queue_depth", "gauge", "Queued runs.", [("", Double(queueDepth))])
        metric("patchd_run_seconds_total", "counter", "Wall time of finished runs.", [("", runSeconds)])
        metric("patchd_runs_timed_total", "counter", "Finished runs counted in patchd_run_seconds_total.", [("", Double(runsTimed))])
        metric(
            "patchd_tokens_total", "counter", "LLM tokens by kind.",
            [
                ("{kind=\"input\"}", Double(inputTokens)), ("{kind=\"output\"}", Double(outputTokens)),
                ("{kind=\"cache_read\"}", Double(cacheReadTokens)), ("{kind=\"cache_write\"}", Double(cacheWriteTokens)),
            ])
        metric("patchd_cost_usd_total", "counter", "LLM cost in USD.", [("", costUSD)])
        if let offsite {
            metric(
                "patchd_offsite_lag_seconds", "gauge", "Age of the oldest change not yet replicated off the machine (0: none).",
                [("", offsite.lagSeconds)])
            metric("patchd_offsite_pending", "gauge", "Changes queued for off-machine replication.", [("", Double(offsite.pending))])
            metric("patchd_offsite_failing", "gauge", "Queued changes whose last upload failed.", [("", Double(offsite.failing))])
        }
        return out
    }

    package var text: String {
        var lines = [
            "connections  \(connectionsAccepted) accepted, \(connectionsRejected) rejected, \(connectionsActive) open, \(authFailures) auth failures"
        ]
        for (key, n) in transfers.sorted(by: { $0.key < $1.key }) { lines.append("transfers    \(key): \(n)") }
        lines.append(
            "runs         " + ["queued", "running", "succeeded", "failed", "canceled"].map { "\($0) \(runs[$0] ?? 0)" }.joined(separator: ", "))
        lines.append("tokens       \(inputTokens) in, \(outputTokens) out, \(cacheReadTokens) cache read, \(cacheWriteTokens) cache write")
        lines.append(String(format: "cost         $%.4f", costUSD))
        if let offsite {
            lines.append(
                "offsite      lag \(Int(offsite.lagSeconds)) s, \(offsite.pending) pending, \(offsite.failing) failing"
                    + (offsite.lastError.map { "; last error: \(Terminal.sanitize(String($0.prefix(200))))" } ?? ""))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
