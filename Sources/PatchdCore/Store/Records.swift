// PatchdCore: the rows of the users, ssh_keys, repos and collaborators tables.
import Foundation
import GRDB

public struct User: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "users"
    public var id: Int64?
    public var name: String
    public var isAdmin: Bool
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, name
        case isAdmin = "is_admin"
        case createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

public struct SSHKeyRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "ssh_keys"
    public var id: Int64?
    public var userID: Int64
    public var type: String
    public var blob: String
    public var fingerprint: String
    public var comment: String
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, type, blob, fingerprint, comment
        case userID = "user_id"
        case createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

public struct RepoRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "repos"
    public var id: Int64?
    public var name: String
    public var ownerID: Int64?
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, name
        case ownerID = "owner_id"
        case createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

public struct CollaboratorRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "collaborators"
    public var repoID: Int64
    public var userID: Int64
    public var role: String

    enum CodingKeys: String, CodingKey {
        case role
        case repoID = "repo_id"
        case userID = "user_id"
    }
}
