// PatchdServer: how hooks (other processes) wake the scheduler at once: a datagram on DATA/wake.sock.
import Foundation
import PatchdSystem
#if canImport(Glibc)
import Glibc
#endif

/// A unix datagram socket the scheduler waits on. Any process that queued a run sends
/// one byte; a lost datagram only delays the run to the next periodic check (1 s).
final class RunWakeup: Sendable {
    let fd: Int32
    let path: String

    init(dataDir: String) throws {
        path = dataDir + "/wake.sock"
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var addr = try Self.address(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw SystemError("bind", errno: errno, context: path)
        }
        chmod(path, 0o600)
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
        guard let addrValue = try? address(dataDir + "/wake.sock") else { return }
        var addr = addrValue
        let sock = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard sock >= 0 else { return }
        defer { close(sock) }
        var byte: UInt8 = 1
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(sock, &byte, 1, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SystemError("bind", errno: ENAMETOOLONG, context: "\(path) (use a shorter --data-dir)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return addr
    }
}
