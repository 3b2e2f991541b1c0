// Offsite: DATA/offsite.sqlite: the durable queue of unreplicated changes and what each repository has in the bucket.

import Foundation
package import GRDB
import PatchdCore

/// A separate database from patchd.sqlite, so the queue's own writes never count as a change
/// to replicate, and a restored data dir does not inherit another machine's queue.
///
/// `queue`: one row per thing to upload (`kind` repo/database/hostkeys, `target` the repository
/// name or ""), coalesced: another change to a queued thing bumps `generation` and keeps the
/// oldest `enqueued_at`, which is the replication lag. A row is removed only when its upload
/// finished and no change came meanwhile (same generation), so a crash or an outage at any
/// point leaves it queued. `repos`: per repository, the manifest last uploaded.
package final class OffsiteState: Sendable {
    package let pool: DatabasePool

    package enum Kind: String, Sendable { case repo, database, hostkeys }

    package struct Item: Sendable, Equatable {
        package let kind: Kind
        package let target: String
        package let generation: Int
        package let enqueuedAt: Double
        package let attempts: Int
        package let lastError: String?
    }

    package init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        pool = try DatabasePool(path: path, configuration: config)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: queue and replicated repositories") { db in
            try db.execute(
                sql: """
                    CREATE TABLE queue (
                        kind TEXT NOT NULL, target TEXT NOT NULL,
                        generation INTEGER NOT NULL DEFAULT 1,
                        enqueued_at DOUBLE NOT NULL, next_attempt_at DOUBLE NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                        PRIMARY KEY (kind, target));
                    CREATE TABLE repos (name TEXT PRIMARY KEY, manifest TEXT NOT NULL);
                    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    """)
        }
        try migrator.migrate(pool)
    }

    /// Opens DATA/offsite.sqlite only if it exists (doctor, stats: no file, nothing queued).
    package static func openIfPresent(dataDir: String) -> OffsiteState? {
        let path = DataLayout(root: dataDir).offsiteQueue
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try? OffsiteState(path: path)
    }

    static var now: Double { Date().timeIntervalSince1970 }

    /// Queues `kind`/`target`, due after `notBefore` (a database snapshot waits for its interval).
    package func enqueue(_ kind: Kind, _ target: String = "", notBefore: Double = 0) throws {
        let now = Self.now
        try pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO queue(kind, target, enqueued_at, next_attempt_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(kind, target) DO UPDATE SET generation = generation + 1
                    """, arguments: [kind.rawValue, target, now, max(now, notBefore)])
        }
    }

    /// The due item to work on next: host keys, then repositories, then the database, oldest first.
    package func nextDue() throws -> Item? {
        try pool.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT * FROM queue WHERE next_attempt_at <= ?
                    ORDER BY CASE kind WHEN 'hostkeys' THEN 0 WHEN 'repo' THEN 1 ELSE 2 END, enqueued_at LIMIT 1
                    """, arguments: [Self.now]
            ).map(Self.item)
        }
    }

    static func item(_ row: Row) -> Item {
        Item(
            kind: Kind(rawValue: row["kind"]) ?? .repo, target: row["target"], generation: row["generation"],
            enqueuedAt: row["enqueued_at"], attempts: row["attempts"], lastError: row["last_error"])
    }

    /// Seconds until the earliest queued item is due (nil: nothing queued).
    package func secondsUntilNextDue() throws -> Double? {
        try pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MIN(next_attempt_at) FROM queue").map { max(0, $0 - Self.now) }
        }
    }

    /// The upload of `item` finished: the row goes, unless a change came meanwhile; then it
    /// stays, due now, its lag counted from when this attempt started.
    package func finished(_ item: Item, startedAt: Double) throws {
        try pool.write { db in
            try db.execute(
                sql: "DELETE FROM queue WHERE kind = ? AND target = ? AND generation = ?",
                arguments: [item.kind.rawValue, item.target, item.generation])
            try db.execute(
                sql: """
                    UPDATE queue SET enqueued_at = MAX(enqueued_at, ?), attempts = 0, last_error = NULL
                    WHERE kind = ? AND target = ?
                    """, arguments: [startedAt, item.kind.rawValue, item.target])
        }
    }

    /// The upload failed: retry after an exponential backoff (2 s doubling, at most 5 minutes).
    package func failed(_ item: Item, error: String, notBefore: Double? = nil) throws -> Double {
        let delay = notBefore.map { max(0, $0 - Self.now) } ?? min(300, 2 * pow(2, Double(min(item.attempts, 10))))
        try pool.write { db in
            try db.execute(
                sql: """
                    UPDATE queue SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE kind = ? AND target = ?
                    """, arguments: [String(error.prefix(1000)), Self.now + delay, item.kind.rawValue, item.target])
        }
        return delay
    }

    /// Makes every queued item due now (the store is back, or a test asks).
    package func retryNow() throws {
        try pool.write { db in try db.execute(sql: "UPDATE queue SET next_attempt_at = MIN(next_attempt_at, ?)", arguments: [Self.now]) }
    }

    // MARK: - What the bucket holds

    package func manifest(_ name: String) throws -> RepositoryManifest? {
        try pool.read { db in
            try String.fetchOne(db, sql: "SELECT manifest FROM repos WHERE name = ?", arguments: [name])
        }.flatMap { try? JSONDecoder().decode(RepositoryManifest.self, from: Data($0.utf8)) }
    }

    package func setManifest(_ manifest: RepositoryManifest) throws {
        let text = String(decoding: try JSONEncoder().encode(manifest), as: UTF8.self)
        try pool.write { db in
            try db.execute(
                sql: "INSERT INTO repos(name, manifest) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET manifest = excluded.manifest",
                arguments: [manifest.repository, text])
        }
    }

    package func removeManifest(_ name: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM repos WHERE name = ?", arguments: [name]) }
    }

    package func replicatedNames() throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM repos ORDER BY name") }
    }

    package func meta(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    package func setMeta(_ key: String, _ value: String) throws {
        try pool.write { db in
            try db.execute(
                sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                arguments: [key, value])
        }
    }

    // MARK: - Lag

    /// What `stats` and `doctor` show.
    package struct Status: Sendable, Equatable, Codable {
        /// Queued items (changes not yet in the bucket).
        package var pending: Int
        /// Seconds since the oldest unreplicated change (0 when nothing is pending).
        package var lagSeconds: Double
        /// Items whose last attempt failed, and the newest such error.
        package var failing: Int
        package var lastError: String?
        /// When the last upload finished (Unix seconds), if any.
        package var lastSuccessAt: Double?
    }

    package func status() throws -> Status {
        let now = Self.now
        return try pool.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) AS n, MIN(enqueued_at) AS oldest, SUM(attempts > 0) AS failing FROM queue
                    """)
            let lastError = try String.fetchOne(
                db, sql: "SELECT last_error FROM queue WHERE last_error IS NOT NULL ORDER BY next_attempt_at DESC LIMIT 1")
            let last = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'last_success_at'").flatMap(Double.init)
            let oldest: Double? = row?["oldest"]
            return Status(
                pending: row?["n"] ?? 0, lagSeconds: oldest.map { max(0, now - $0) } ?? 0,
                failing: row?["failing"] ?? 0, lastError: lastError, lastSuccessAt: last)
        }
    }
}
