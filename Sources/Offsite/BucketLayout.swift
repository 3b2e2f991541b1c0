// Offsite: the object keys patchd writes under the prefix, and the JSON manifests that list them.

import Foundation
package import PatchdCore

/// What the bucket holds (under `prefix`), readable with any S3 client (docs/OPERATIONS.md):
/// - `repos.json`: the replicated repositories (`RepositoriesIndex`);
/// - `repos/NAME.git/refs.json`: one repository's refs, HEAD and the bundles to apply in order
///   (`RepositoryManifest`);
/// - `repos/NAME.git/bundles/NNNNNN.bundle`: git bundles, each holding the objects new since
///   the previous one (the first, or a consolidation, holds everything);
/// - `db/latest.json` and `db/snapshot-*.sqlite.age`: SQLite online-backup snapshots, age-encrypted;
/// - `host-keys/ssh_host_*_key.age` (age-encrypted) and `host-keys/ssh_host_*_key.pub`.
package enum BucketLayout {
    package static let repositoriesIndex = "repos.json"
    package static let databaseLatest = "db/latest.json"
    package static let hostKeyNames = ["ssh_host_ed25519_key", "ssh_host_rsa_key"]

    package static func manifest(_ name: RepositoryName) -> String { "repos/\(name.value).git/refs.json" }
    package static func bundle(_ name: RepositoryName, _ file: String) -> String { "repos/\(name.value).git/bundles/\(file)" }
    package static func bundleFile(_ seq: Int) -> String { String(format: "%06d.bundle", seq) }
    package static func hostKey(_ file: String) -> String { "host-keys/\(file)" }
    package static func databaseSnapshot(_ stamp: String) -> String { "db/snapshot-\(stamp).sqlite.age" }
    package static let probePrefix = "doctor-probe/"
}

/// `repos.json`.
package struct RepositoriesIndex: Codable, Sendable, Equatable {
    package var format = 1
    package var repositories: [String]
    package var updatedAt: String

    enum CodingKeys: String, CodingKey { case format, repositories, updatedAt = "updated_at" }
}

/// `repos/NAME.git/refs.json`: the state a restore rebuilds.
package struct RepositoryManifest: Codable, Sendable, Equatable {
    package var format = 1
    package var repository: String
    /// Bumped by every upload of this manifest.
    package var seq: Int
    /// File names under `bundles/`, to apply in this order.
    package var bundles: [String]
    /// Where HEAD points (a ref name), if it is symbolic.
    package var head: String?
    /// Every ref (branches, tags, agent/*, refs/patchd/*, notes) and its object id.
    package var refs: [String: String]
    package var updatedAt: String

    enum CodingKeys: String, CodingKey { case format, repository, seq, bundles, head, refs, updatedAt = "updated_at" }
}

/// `db/latest.json`.
package struct DatabaseManifest: Codable, Sendable, Equatable {
    package var format = 1
    package var snapshot: String
    package var takenAt: String
    package var bytes: Int64
    /// The snapshots still in the bucket, newest last (older ones are deleted).
    package var kept: [String]

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
