// PatchdCore: where everything lives under the data directory (paths only; `create()` makes them).

import Foundation

/// The data directory's layout (docs/OPERATIONS.md lists what each part holds). Every path
/// patchd uses under DATA is spelled here and nowhere else.
package struct DataLayout: Sendable {
    package let root: String
    /// The SQLite database (WAL): users, keys, repositories, collaborators, runs, events.
    package var database: String { root + "/patchd.sqlite" }
    /// Bare repositories, `NAME.git` (names may have one level of folder).
    package var repos: String { root + "/repos" }
    /// Run workspaces, `run-ID`, removed when the run ends.
    package var work: String { root + "/work" }
    /// Cached environments (`REPO-ID/KEY`) and package download caches (`REPO-ID/packages`);
    /// left out of backups: every file in it can be rebuilt by running setup again.
    package var environments: String { root + "/environments" }
    /// The key that seals setup's secrets in the database (0600); kept apart from the database.
    package var secretsKey: String { root + "/secrets.key" }
    /// HOME for git processes: empty, patchd's own.
    package var home: String { root + "/home" }
    /// The scheduler's wake-up datagram socket (hooks send one byte after queueing a run).
    package var wakeSocket: String { root + "/wake.sock" }
    /// Off-machine replication: its durable queue (SQLite, apart from the main database so its own
    /// writes never count as a change to replicate), the hooks' notification socket, scratch files.
    package var offsiteQueue: String { root + "/offsite.sqlite" }
    package var offsiteSocket: String { root + "/offsite.sock" }
    package var offsiteScratch: String { root + "/offsite-tmp" }
    /// The SSH host keys, as OpenSSH names them (private keys 0600, `.pub` beside each).
    package static let hostKeyNames = ["ssh_host_ed25519_key", "ssh_host_rsa_key"]
    package var hostKeys: [String] { Self.hostKeyNames.map { root + "/" + $0 } }

    /// The layout of the data directory at `path` (made absolute); nothing is touched on disk.
    package init(root path: String) {
        root = URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// Creates the directories that are missing, all 0700: the data dir holds keys and the
    /// database, and nobody else may read it. - Throws: the file system's error.
    package func create() throws {
        for dir in [root, repos, work, home] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        chmod(root, 0o700)
    }

    /// `text` with the data directory's absolute path replaced by `DATA` (as the docs name it),
    /// for messages a user sees: a server path tells a client nothing it needs and too much.
    package func scrub(_ text: String) -> String {
        text.replacingOccurrences(of: root, with: "DATA")
    }
}
