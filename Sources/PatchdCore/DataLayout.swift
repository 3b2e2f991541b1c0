// PatchdCore: where everything lives under the data directory.
import Foundation

/// The data directory's layout (docs/OPERATIONS.md lists what each part holds).
public struct DataLayout: Sendable {
    public let root: String
    public var database: String { root + "/patchd.sqlite" }
    public var repos: String { root + "/repos" }
    public var work: String { root + "/work" }
    /// HOME for git processes: empty, patchd's own.
    public var home: String { root + "/home" }

    /// `text` with the data directory's absolute path replaced by `DATA` (as the docs name it),
    /// for messages a user sees: a server path tells a client nothing it needs and too much.
    public func scrub(_ text: String) -> String {
        text.replacingOccurrences(of: root, with: "DATA")
    }

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
