// PatchdServer: users and their SSH keys; the admin keys given at start.
import Foundation
import GRDB
import SSHServer

/// Users and keys in the database.
public struct UserStore: Sendable {
    let db: PatchdDatabase

    public init(db: PatchdDatabase) { self.db = db }

    /// The user owning exactly this key blob, if any.
    public func identity(for key: PublicKey) -> SSHIdentity? {
        try? db.pool.read { db -> SSHIdentity? in
            guard let record = try SSHKeyRecord.filter(Column("fingerprint") == key.fingerprint).fetchOne(db),
                  record.type == key.type, record.blob == key.base64,
                  let user = try User.fetchOne(db, key: record.userID), let id = user.id else { return nil }
            return SSHIdentity(userID: id, userName: user.name, keyFingerprint: key.fingerprint)
        }
    }

    public func user(id: Int64) throws -> User? { try db.pool.read { try User.fetchOne($0, key: id) } }

    public func user(named name: String) throws -> User? {
        try db.pool.read { try User.filter(Column("name") == name).fetchOne($0) }
    }

    /// Makes `keys` belong to the admin user `admin` (created if missing). A key that
    /// belonged to someone else moves to admin: whoever holds it is the operator.
    public func ensureAdmin(keys: [PublicKey]) throws {
        try db.pool.write { db in
            var admin = try User.filter(Column("name") == "admin").fetchOne(db)
                ?? User(id: nil, name: "admin", isAdmin: true, createdAt: Date())
            admin.isAdmin = true
            admin = try admin.saved(db)
            for key in keys {
                try SSHKeyRecord.filter(Column("fingerprint") == key.fingerprint).deleteAll(db)
                let record = SSHKeyRecord(id: nil, userID: admin.id!, type: key.type, blob: key.base64,
                                          fingerprint: key.fingerprint, comment: key.comment, createdAt: Date())
                try record.insert(db)
            }
        }
    }
}
