// PatchdCore: the SQLite database (GRDB, WAL) and its migrations.

import Foundation
package import GRDB

/// DATA/patchd.sqlite. A `DatabasePool` (WAL) so the daemon and its git hooks can
/// read and write concurrently from separate processes.
package final class PatchdDatabase: Sendable {
    package let pool: DatabasePool

    package init(path: String) throws {
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
        migrator.registerMigration("v2: runs and their events") { db in
            try db.create(table: "runs") { t in
                // AUTOINCREMENT: ids only ever grow, even after deletes (run ids are increasing and unique).
                t.autoIncrementedPrimaryKey("id")
                t.column("repo", .text).notNull().indexed()
                t.column("branch", .text).notNull()
                t.column("base", .text).notNull()
                t.column("status", .text).notNull().indexed()
                t.column("agent", .text).notNull()
                t.column("model", .text)
                t.column("title", .text).notNull().defaults(to: "")
                t.column("spec", .text).notNull()  // TaskSpec as JSON
                t.column("task_source", .text).notNull()  // file | option | command | retry
                t.column("requested_by", .integer).references("users", onDelete: .setNull)
                t.column("result", .text)
                t.column("changed", .boolean)
                t.column("check_status", .text)
                t.column("limit_hit", .text)
                t.column("error", .text)
                t.column("summary", .text)
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("input_tokens", .integer).notNull().defaults(to: 0)
                t.column("output_tokens", .integer).notNull().defaults(to: 0)
                t.column("cost_usd", .double).notNull().defaults(to: 0)
                t.column("created_at", .datetime).notNull()
                t.column("started_at", .datetime)
                t.column("finished_at", .datetime)
            }
            try db.create(table: "run_events") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("run_id", .integer).notNull().references("runs", onDelete: .cascade)
                t.column("at", .datetime).notNull()
                t.column("kind", .text).notNull()
                t.column("text", .text).notNull()
            }
            try db.create(index: "run_events_by_run", on: "run_events", columns: ["run_id", "id"])
        }
        migrator.registerMigration("v3: cache token usage") { db in
            try db.alter(table: "runs") { t in
                t.add(column: "cache_read_tokens", .integer).notNull().defaults(to: 0)
                t.add(column: "cache_write_tokens", .integer).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("v4: repository settings, a run's network record") { db in
            try db.create(table: "repo_settings") { t in
                t.column("repo_id", .integer).notNull().references("repos", onDelete: .cascade)
                t.column("key", .text).notNull()
                t.column("value", .text).notNull()
                t.primaryKey(["repo_id", "key"])
            }
            try db.alter(table: "runs") { t in
                t.add(column: "network", .text)  // RunNetworkRecord as JSON
            }
        }
        migrator.registerMigration("v5: environment cache and secrets") { db in
            // Cached environments (their files live in DATA/environments/REPO-ID/KEY).
            try db.create(table: "environments") { t in
                t.column("repo_id", .integer).notNull().references("repos", onDelete: .cascade)
                t.column("key", .text).notNull()
                t.column("size_bytes", .integer).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("last_used_at", .datetime).notNull()
                t.column("hits", .integer).notNull().defaults(to: 0)
                t.primaryKey(["repo_id", "key"])
            }
            // Setup's secrets, encrypted with DATA/secrets.key (never stored in here in the clear).
            try db.create(table: "repo_secrets") { t in
                t.column("repo_id", .integer).notNull().references("repos", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("sealed", .blob).notNull()
                t.column("created_at", .datetime).notNull()
                t.primaryKey(["repo_id", "name"])
            }
            try db.alter(table: "runs") { t in
                t.add(column: "environment", .text)  // RunEnvironmentRecord as JSON
            }
        }
        migrator.registerMigration("v6: checkpoints and resume") { db in
            try db.alter(table: "runs") { t in
                t.add(column: "resumed_from", .integer).references("runs", onDelete: .setNull)
                t.add(column: "resume_instructions", .text)
                t.add(column: "start_commit", .text)  // the tree a resumed run's workspace starts from
                t.add(column: "checkpoint", .text)  // the tip of refs/patchd/checkpoints/ID
            }
            // The latest saved state of a run's agent: one row per run, rewritten at each turn. Apart
            // from runs so that listing runs never reads conversations (they grow to megabytes).
            try db.create(table: "run_checkpoints") { t in
                t.primaryKey("run_id", .integer).references("runs", onDelete: .cascade)
                t.column("commit", .text)  // the checkpoint the conversation matches (nil: the start)
                t.column("turns", .integer).notNull().defaults(to: 0)
                t.column("conversation", .blob)
                t.column("updated_at", .datetime).notNull()
            }
        }
        migrator.registerMigration("v7: follow-ups") { db in
            try db.alter(table: "runs") { t in
                t.add(column: "follows", .integer)  // the run whose result this run continues
            }
        }
        migrator.registerMigration("v8: attempt groups") { db in
            try db.alter(table: "runs") { t in
                t.add(column: "attempt_group", .integer)  // the group's first attempt's id; null for a single run
                t.add(column: "attempt", .integer)  // this attempt's number, 1...attempt_of
                t.add(column: "attempt_of", .integer)  // how many attempts the group has
                t.add(column: "attempt_winner", .integer)  // the winning attempt's id, once decided (null: none won)
                t.add(column: "attempt_reason", .text)  // why it won or none did; null until the group is decided
                t.add(column: "diff_lines", .integer)  // lines added + removed against the base (attempts with a result)
            }
            // Only undecided attempts: the scheduler's sweep for groups to settle reads this, not every run.
            try db.execute(
                sql: "CREATE INDEX runs_undecided_attempts ON runs(attempt_group) WHERE attempt_group IS NOT NULL AND attempt_reason IS NULL")
        }
        return migrator
    }
}
