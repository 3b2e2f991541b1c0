// Offsite: the post-receive hook's one call: tell the daemon's replicator which repository changed.

import PatchdCore
import PatchdSystem

/// A datagram with the repository's name on DATA/offsite.sock: no database, no network, so a
/// push waits for nothing. A lost datagram (no daemon, full buffer) is caught by the
/// replicator's periodic ref scan, so it delays replication and loses nothing.
package enum OffsiteNotify {
    /// From the hook's environment: PATCHD_DATA_DIR and PATCHD_REPO. Does nothing when
    /// replication is off (nothing listens on the socket).
    package static func pushed(environment env: [String: String]) {
        guard let dataDir = env["PATCHD_DATA_DIR"], let repo = env["PATCHD_REPO"], !repo.isEmpty, repo.utf8.count <= 200 else { return }
        UnixSocket.sendDatagram(Array(repo.utf8), to: DataLayout(root: dataDir).offsiteSocket)
    }
}
