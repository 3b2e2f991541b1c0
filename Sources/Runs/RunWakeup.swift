// Runs: how hooks (other processes) wake the scheduler at once: a datagram on DATA/wake.sock.

import Foundation
import PatchdCore
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// A unix datagram socket the scheduler waits on. Any process that queued a run sends
/// one byte; a lost datagram only delays the run to the next periodic check (1 s).
package final class RunWakeup: Sendable {
    let fd: Int32
    let path: String

    package init(dataDir: String) throws {
        path = DataLayout(root: dataDir).wakeSocket
        fd = try UnixSocket.bind(.datagram, path: path)
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Waits up to `timeoutMs` for a wake-up; drains any others queued meanwhile.
    func wait(timeoutMs: Int32) {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return }
        var byte: UInt8 = 0
        while recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) > 0 {}
    }

    /// Wakes the scheduler of the daemon using `dataDir` (from any process).
    static func notify(dataDir: String) {
        UnixSocket.sendDatagram([1], to: DataLayout(root: dataDir).wakeSocket)
    }
}
