// PatchdCore: the cached environments' rows (size, created, last used, hits) per repository, and the least recently used order eviction follows.

package import Foundation
import GRDB

/// One cached environment of a repository (its files: DATA/environments/REPO-ID/KEY).
package struct EnvironmentEntry: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "environments"
    package var repoID: Int64
    package var key: String
    package var sizeBytes: Int64
    package var createdAt: Date
    package var lastUsedAt: Date
    package var hits: Int

    enum CodingKeys: String, CodingKey {
        case key, hits
        case repoID = "repo_id", sizeBytes = "size_bytes", createdAt = "created_at", lastUsedAt = "last_used_at"
    }

    package init(repoID: Int64, key: String, sizeBytes: Int64, createdAt: Date, lastUsedAt: Date, hits: Int) {
        self.repoID = repoID
        self.key = key
        self.sizeBytes = sizeBytes
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.hits = hits
    }
}

/// The rows and the files (DATA/environments): an entry is `REPO-ID/KEY/` with a `lock` file a run
/// holds shared while its sandbox uses the entry (overlay lower layers must not change under a
/// mount); removal takes it exclusively, and an entry in use is moved to `.trash-*` and deleted by
/// a later sweep once nobody holds it.
package struct EnvironmentStore: Sendable {
    let db: PatchdDatabase
    package let root: String

    package init(db: PatchdDatabase, root: String) {
        self.db = db
        self.root = root
    }

    package func directory(repoID: Int64) -> String { "\(root)/\(repoID)" }
    package func directory(repoID: Int64, key: String) -> String { "\(root)/\(repoID)/\(key)" }
    /// The repository's package manager download caches (pip, uv, npm, go).
    package func packages(repoID: Int64) -> String { "\(root)/\(repoID)/packages" }

    /// Removes an entry's row and files (files in use go to the trash, swept later).
    package func delete(repoID: Int64, key: String) throws {
        try remove(repoID: repoID, key: key)
        discard(directory(repoID: repoID, key: key))
    }

    /// Moves `dir` out of the way at once and deletes it if no run holds its lock.
    package func discard(_ dir: String) {
        guard FileManager.default.fileExists(atPath: dir) else { return }
        let trash = "\(root)/.trash-\(UInt64.random(in: 0...UInt64.max))"
        guard rename(dir, trash) == 0 else { return }
        sweep()
    }

    /// Deletes every trashed entry nobody holds.
    package func sweep() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for name in names where name.hasPrefix(".trash-") || name.hasPrefix(".staging-") {
            let dir = root + "/" + name
            if name.hasPrefix(".staging-") {
                // A staging directory older than a day belongs to a run that died while saving.
                let modified = (try? FileManager.default.attributesOfItem(atPath: dir))?[.modificationDate] as? Date ?? Date()
                if -modified.timeIntervalSinceNow < 86400 { continue }
            }
            if let lock = Self.lock(dir, exclusive: true, wait: false) {
                try? FileManager.default.removeItem(atPath: dir)
                close(lock)
            } else if !FileManager.default.fileExists(atPath: dir + "/lock") {
                try? FileManager.default.removeItem(atPath: dir)
            }
        }
    }

    /// Takes the entry's lock (shared: a run uses it; exclusive: removing it); nil if the entry
    /// has no lock file or, without `wait`, someone else holds it. Close the fd to release.
    package static func lock(_ dir: String, exclusive: Bool, wait: Bool) -> Int32? {
        let fd = open(dir + "/lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        if flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    package func entry(repoID: Int64, key: String) throws -> EnvironmentEntry? {
        try db.pool.read { try EnvironmentEntry.filter(Column("repo_id") == repoID && Column("key") == key).fetchOne($0) }
    }

    /// A repository's entries, most recently used first.
    package func entries(repoID: Int64) throws -> [EnvironmentEntry] {
        try db.pool.read { try EnvironmentEntry.filter(Column("repo_id") == repoID).order(Column("last_used_at").desc).fetchAll($0) }
    }

    /// Every entry of the server, least recently used first (the eviction order).
    package func leastRecentlyUsed() throws -> [EnvironmentEntry] {
        try db.pool.read { try EnvironmentEntry.order(Column("last_used_at").asc, Column("created_at").asc).fetchAll($0) }
    }

    package func save(_ entry: EnvironmentEntry) throws {
        try db.pool.write { try entry.save($0) }
    }

    /// Counts a hit and moves the entry to the front of the LRU order.
    package func recordHit(repoID: Int64, key: String, at: Date = Date()) throws {
        try db.pool.write { db in
            try db.execute(
                sql: "UPDATE environments SET hits = hits + 1, last_used_at = ? WHERE repo_id = ? AND key = ?",
                arguments: [at, repoID, key])
        }
    }

    package func remove(repoID: Int64, key: String) throws {
        _ = try db.pool.write { try EnvironmentEntry.filter(Column("repo_id") == repoID && Column("key") == key).deleteAll($0) }
    }
}
