// PatchdCore: users and their SSH keys; the admin keys given at start.

import Foundation
import GRDB
package import SSHKeys

/// Users and keys in the database.
package struct UserStore: Sendable {
    let db: PatchdDatabase

    package init(db: PatchdDatabase) { self.db = db }

    /// The user owning exactly this key blob, if any.
    package func identity(for key: PublicKey) -> SSHIdentity? {
        try? db.pool.read { db -> SSHIdentity? in
            guard let record = try SSHKeyRecord.filter(Column("fingerprint") == key.fingerprint).fetchOne(db),
                record.type == key.type, record.blob == key.base64,
                let user = try User.fetchOne(db, key: record.userID), let id = user.id
            else { return nil }
            return SSHIdentity(userID: id, userName: user.name, keyFingerprint: key.fingerprint)
        }
    }

    package func user(id: Int64) throws -> User? { try db.pool.read { try User.fetchOne($0, key: id) } }

    package func user(named name: String) throws -> User? {
        try db.pool.read { try User.filter(Column("name") == name).fetchOne($0) }
    }

    /// Makes `keys` belong to the admin user `admin` (created if missing). A key that
    /// belonged to someone else moves to admin: whoever holds it is the operator.
    package func ensureAdmin(keys: [PublicKey]) throws {
        try db.pool.write { db in
            var admin =
                try User.filter(Column("name") == "admin").fetchOne(db)
                ?? User(id: nil, name: "admin", isAdmin: true, createdAt: Date())
            admin.isAdmin = true
            admin = try admin.saved(db)
            for key in keys {
                try SSHKeyRecord.filter(Column("fingerprint") == key.fingerprint).deleteAll(db)
                let record = SSHKeyRecord(
                    id: nil, userID: admin.id!, type: key.type, blob: key.base64,
                    fingerprint: key.fingerprint, comment: key.comment, createdAt: Date())
                try record.insert(db)
            }
        }
    }
}

/// What user and key commands can go wrong with, in words for the user.
package struct StoreError: Error, CustomStringConvertible {
    package let description: String
    package init(_ d: String) { description = d }
}

extension UserStore {
    /// User names: lower-case letters, digits, '_' and '-', starting with a letter, at most 32.
    package static func validName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first), name.count <= 32 else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
    }

    package func allUsers() throws -> [User] {
        try db.pool.read { try User.order(Column("name")).fetchAll($0) }
    }

    package func keyCounts() throws -> [Int64: Int] {
        try db.pool.read { db in
            var counts: [Int64: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT user_id, COUNT(*) AS n FROM ssh_keys GROUP BY user_id") {
                counts[row["user_id"]] = row["n"]
            }
            return counts
        }
    }

    package func createUser(name: String, key: PublicKey, admin: Bool) throws -> User {
        guard Self.validName(name) else {
            throw StoreError(
                "invalid user name '\(Terminal.sanitize(String(name.prefix(40))))': use lower-case letters, digits, '_' and '-', starting with a letter, at most 32"
            )
        }
        return try db.pool.write { db in
            if try User.filter(Column("name") == name).fetchOne(db) != nil { throw StoreError("user '\(name)' already exists") }
            if try SSHKeyRecord.filter(Column("fingerprint") == key.fingerprint).fetchOne(db) != nil {
                throw StoreError("that key already belongs to a user; each key identifies one user")
            }
            let user = try User(id: nil, name: name, isAdmin: admin, createdAt: Date()).inserted(db)
            try SSHKeyRecord(
                id: nil, userID: user.id!, type: key.type, blob: key.base64, fingerprint: key.fingerprint,
                comment: key.comment, createdAt: Date()
            ).insert(db)
            return user
        }
    }

    /// Deletes a user (their keys go; their repositories lose their owner and stay for admins).
    package func deleteUser(name: String) throws {
        try db.pool.write { db in
            guard let user = try User.filter(Column("name") == name).fetchOne(db) else { throw StoreError("no user '\(name)'") }
            if user.isAdmin, try User.filter(Column("is_admin") == true).fetchCount(db) <= 1 {
                throw StoreError("'\(name)' is the last admin; make another admin first")
            }
            try user.delete(db)
        }
    }

    package func keys(userID: Int64) throws -> [SSHKeyRecord] {
        try db.pool.read { try SSHKeyRecord.filter(Column("user_id") == userID).order(Column("id")).fetchAll($0) }
    }

    package func addKey(userID: Int64, key: PublicKey) throws {
        try db.pool.write { db in
            if let existing = try SSHKeyRecord.filter(Column("fingerprint") == key.fingerprint).fetchOne(db) {
                throw StoreError(
                    existing.userID == userID ? "you already have that key" : "that key already belongs to a user; each key identifies one user")
            }
            try SSHKeyRecord(
                id: nil, userID: userID, type: key.type, blob: key.base64, fingerprint: key.fingerprint,
                comment: key.comment, createdAt: Date()
            ).insert(db)
        }
    }

    /// Removes one of `userID`'s keys. The last key only with `allowLast` (then the user cannot log in).
    package func removeKey(userID: Int64, fingerprint: String, allowLast: Bool) throws {
        try db.pool.write { db in
            let keys = try SSHKeyRecord.filter(Column("user_id") == userID).fetchAll(db)
            guard let key = keys.first(where: { $0.fingerprint == fingerprint }) else {
                throw StoreError("no key with fingerprint \(Terminal.sanitize(String(fingerprint.prefix(80)))); 'key list' shows yours")
            }
            if keys.count == 1 && !allowLast {
                throw StoreError("that is the last key: removing it locks the account out; an admin can do it with --yes")
            }
            try key.delete(db)
        }
    }
}
