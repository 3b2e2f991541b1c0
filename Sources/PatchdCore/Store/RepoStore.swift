// PatchdCore: repository rows, ownership and collaborators, and the role a user has on a repo.

import Foundation
import GRDB

package struct RepoStore: Sendable {
    let db: PatchdDatabase

    package init(db: PatchdDatabase) { self.db = db }

    package func repo(named name: RepositoryName) throws -> RepoRecord? {
        try db.pool.read { try RepoRecord.filter(Column("name") == name.value).fetchOne($0) }
    }

    /// The role of `userID` on the repository (which may not exist: then only admins have one).
    package func role(userID: Int64, repo: RepoRecord?) throws -> RepoRole {
        try db.pool.read { db in
            if let user = try User.fetchOne(db, key: userID), user.isAdmin { return .admin }
            guard let repo, let repoID = repo.id else { return .none }
            if repo.ownerID == userID { return .owner }
            let collab =
                try CollaboratorRecord
                .filter(Column("repo_id") == repoID && Column("user_id") == userID).fetchOne(db)
            switch collab?.role {
            case "write": return .write
            case "read": return .read
            default: return .none
            }
        }
    }

    /// Inserts the row for a new repository. Returns nil if the name is taken (a
    /// concurrent first push won): the caller then treats the repository as existing.
    package func insert(name: RepositoryName, ownerID: Int64) throws -> RepoRecord? {
        try db.pool.write { db in
            if try RepoRecord.filter(Column("name") == name.value).fetchOne(db) != nil { return nil }
            return try RepoRecord(id: nil, name: name.value, ownerID: ownerID, createdAt: Date()).inserted(db)
        }
    }

    package func delete(name: RepositoryName) throws {
        _ = try db.pool.write { try RepoRecord.filter(Column("name") == name.value).deleteAll($0) }
    }

    package func all() throws -> [RepoRecord] {
        try db.pool.read { try RepoRecord.order(Column("name")).fetchAll($0) }
    }
}

extension RepoStore {
    /// A repository's settings (`repo config`), by key; keys not set are absent.
    package func settings(repoID: Int64) throws -> [String: String] {
        try db.pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT key, value FROM repo_settings WHERE repo_id = ?", arguments: [repoID])
            return Dictionary(rows.map { (row: Row) in (row["key"] as String, row["value"] as String) }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// Sets `key` to `value`, or removes it when `value` is nil.
    package func setSetting(repoID: Int64, key: String, value: String?) throws {
        try db.pool.write { db in
            if let value {
                try db.execute(
                    sql:
                        "INSERT INTO repo_settings (repo_id, key, value) VALUES (?, ?, ?) ON CONFLICT(repo_id, key) DO UPDATE SET value = excluded.value",
                    arguments: [repoID, key, value])
            } else {
                try db.execute(sql: "DELETE FROM repo_settings WHERE repo_id = ? AND key = ?", arguments: [repoID, key])
            }
        }
    }

    /// Repositories `userID` may read, with the role they have on each.
    package func visible(userID: Int64) throws -> [(RepoRecord, RepoRole)] {
        try all().compactMap { repo in
            let role = try role(userID: userID, repo: repo)
            return role.canRead ? (repo, role) : nil
        }
    }

    package func collaborators(repoID: Int64) throws -> [(User, String)] {
        try db.pool.read { db in
            try CollaboratorRecord.filter(Column("repo_id") == repoID).fetchAll(db).compactMap { c in
                try User.fetchOne(db, key: c.userID).map { ($0, c.role) }
            }.sorted { $0.0.name < $1.0.name }
        }
    }

    package func setCollaborator(repoID: Int64, userID: Int64, role: String) throws {
        try db.pool.write { try CollaboratorRecord(repoID: repoID, userID: userID, role: role).save($0) }
    }

    @discardableResult
    package func removeCollaborator(repoID: Int64, userID: Int64) throws -> Bool {
        try db.pool.write {
            try CollaboratorRecord.filter(Column("repo_id") == repoID && Column("user_id") == userID).deleteAll($0) > 0
        }
    }
}
