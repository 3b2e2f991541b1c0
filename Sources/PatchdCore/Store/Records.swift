// PatchdCore: the rows of the users, ssh_keys, repos and collaborators tables.

package import Foundation
package import GRDB

package struct User: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "users"
    package var id: Int64?
    package var name: String
    package var isAdmin: Bool
    package var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, name
        case isAdmin = "is_admin"
        case createdAt = "created_at"
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

package struct SSHKeyRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "ssh_keys"
    package var id: Int64?
    package var userID: Int64
    package var type: String
    package var blob: String
    package var fingerprint: String
    package var comment: String
    package var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, type, blob, fingerprint, comment
        case userID = "user_id"
        case createdAt = "created_at"
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

package struct RepoRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "repos"
    package var id: Int64?
    package var name: String
    package var ownerID: Int64?
    package var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, name
        case ownerID = "owner_id"
        case createdAt = "created_at"
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

package struct CollaboratorRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "collaborators"
    package var repoID: Int64
    package var userID: Int64
    package var role: String

    enum CodingKeys: String, CodingKey {
        case role
        case repoID = "repo_id"
        case userID = "user_id"
    }
}
