// PatchdCore: where everything lives under the data directory.
import Foundation

/// The data directory's layout (SPEC §3).
public struct DataLayout: Sendable {
    public let root: String
    public var database: String { root + "/patchd.sqlite" }
    public var repos: String { root + "/repos" }
    public var work: String { root + "/work" }
    /// HOME for git processes: empty, patchd's own.
    public var home: String { root + "/home" }

    public init(root path: String) throws {
        let fm = FileManager.default
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        root = absolute
        for dir in [absolute, absolute + "/repos", absolute + "/work", absolute + "/home"] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        // The data dir holds keys and the database: nobody else may read it.
        chmod(absolute, 0o700)
    }
}
