// PatchdServer: the SQLite database (GRDB, WAL) and its migrations.
import Foundation
import GRDB

/// DATA/patchd.sqlite. A `DatabasePool` (WAL) so the daemon and its git hooks can
/// read and write concurrently from separate processes.
public final class PatchdDatabase: Sendable {
    public let pool: DatabasePool

    public init(path: String) throws {
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            // synchronous=NORMAL with WAL: durable across process crashes, fast commits.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: users, keys, repos, collaborators") { db in
            try db.create(table: "users") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull().unique()
                t.column("is_admin", .boolean).notNull().defaults(to: false)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "ssh_keys") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("user_id", .integer).notNull().indexed().references("users", onDelete: .cascade)
                t.column("type", .text).notNull()
                t.column("blob", .text).notNull()
                t.column("fingerprint", .text).notNull().unique()
                t.column("comment", .text).notNull().defaults(to: "")
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "repos") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull().unique()
                t.column("owner_id", .integer).indexed().references("users", onDelete: .setNull)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "collaborators") { t in
                t.column("repo_id", .integer).notNull().references("repos", onDelete: .cascade)
                t.column("user_id", .integer).notNull().indexed().references("users", onDelete: .cascade)
                t.column("role", .text).notNull().check { ["read", "write"].contains($0) }
                t.primaryKey(["repo_id", "user_id"])
            }
        }
        return migrator
    }
}
