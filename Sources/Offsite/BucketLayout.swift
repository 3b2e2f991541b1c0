// Offsite: the object keys patchd writes under the prefix, and the JSON manifests that list them.
import Foundation
import PatchdCore

/// What the bucket holds (under `prefix`), readable with any S3 client (docs/OPERATIONS.md):
/// - `repos.json`: the replicated repositories (`RepositoriesIndex`);
/// - `repos/NAME.git/refs.json`: one repository's refs, HEAD and the bundles to apply in order
///   (`RepositoryManifest`);
/// - `repos/NAME.git/bundles/NNNNNN.bundle`: git bundles, each holding the objects new since
///   the previous one (the first, or a consolidation, holds everything);
/// - `db/latest.json` and `db/snapshot-*.sqlite.age`: SQLite online-backup snapshots, age-encrypted;
/// - `host-keys/ssh_host_*_key.age` (age-encrypted) and `host-keys/ssh_host_*_key.pub`.
public enum BucketLayout {
    public static let repositoriesIndex = "repos.json"
    public static let databaseLatest = "db/latest.json"
    public static let hostKeyNames = ["ssh_host_ed25519_key", "ssh_host_rsa_key"]

    public static func manifest(_ name: RepositoryName) -> String { "repos/\(name.value).git/refs.json" }
    public static func bundle(_ name: RepositoryName, _ file: String) -> String { "repos/\(name.value).git/bundles/\(file)" }
    public static func bundleFile(_ seq: Int) -> String { String(format: "%06d.bundle", seq) }
    public static func hostKey(_ file: String) -> String { "host-keys/\(file)" }
    public static func databaseSnapshot(_ stamp: String) -> String { "db/snapshot-\(stamp).sqlite.age" }
    public static let probePrefix = "doctor-probe/"
}

/// `repos.json`.
public struct RepositoriesIndex: Codable, Sendable, Equatable {
    public var format = 1
    public var repositories: [String]
    public var updatedAt: String

    enum CodingKeys: String, CodingKey { case format, repositories, updatedAt = "updated_at" }
}

/// `repos/NAME.git/refs.json`: the state a restore rebuilds.
public struct RepositoryManifest: Codable, Sendable, Equatable {
    public var format = 1
    public var repository: String
    /// Bumped by every upload of this manifest.
    public var seq: Int
    /// File names under `bundles/`, to apply in this order.
    public var bundles: [String]
    /// Where HEAD points (a ref name), if it is symbolic.
    public var head: String?
    /// Every ref (branches, tags, agent/*, refs/patchd/*, notes) and its object id.
    public var refs: [String: String]
    public var updatedAt: String

    enum CodingKeys: String, CodingKey { case format, repository, seq, bundles, head, refs, updatedAt = "updated_at" }
}

/// `db/latest.json`.
public struct DatabaseManifest: Codable, Sendable, Equatable {
    public var format = 1
    public var snapshot: String
    public var takenAt: String
    public var bytes: Int64
    /// The snapshots still in the bucket, newest last (older ones are deleted).
    public var kept: [String]

    enum CodingKeys: String, CodingKey { case format, snapshot, takenAt = "taken_at", bytes, kept }
}

enum JSONCoding {
    static func encode<T: Encodable>(_ value: T) throws(OffsiteError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { return Array(try encoder.encode(value)) + [0x0a] } catch { throw .local("cannot encode \(T.self): \(error)") }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws(OffsiteError) -> T {
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
            throw .bucket("\(what) is not a manifest patchd can read: \(error)")
        }
    }

    static var now: String { Date().formatted(.iso8601) }
}
