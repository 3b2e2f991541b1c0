// PatchdSystem: unix-domain sockets bound to a path (the scheduler's wake-up socket, the API proxy's socket).

#if canImport(Glibc)
package import Glibc
#endif

/// The one place patchd builds a `sockaddr_un` and binds or sends to a socket path.
package enum UnixSocket {
    package enum Kind: Sendable {
        case stream, datagram
        var rawValue: Int32 { self == .stream ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue) }
    }

    /// A socket of `kind` bound to `path` (any stale file there is removed first), mode 0600;
    /// a stream socket also listens with `backlog`. The caller owns the returned fd (close-on-exec).
    /// - Throws: `SystemError` from socket/bind/listen, or ENAMETOOLONG when `path` does not fit `sun_path`.
    package static func bind(_ kind: Kind, path: String, backlog: Int32 = 16) throws(SystemError) -> Int32 {
        var addr = try address(path)
        unlink(path)
        let fd = try checked("socket") { socket(AF_UNIX, kind.rawValue | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try checked("bind", path) {
                withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
            if kind == .stream { try checked("listen", path) { listen(fd, backlog) } }
        } catch {
            close(fd)
            throw error
        }
        chmod(path, 0o600)
        return fd
    }

    /// Sends one datagram to the socket bound at `path`, without blocking. False if nothing listens there.
    @discardableResult
    package static func sendDatagram(_ bytes: [UInt8], to path: String) -> Bool {
        guard var addr = try? address(path) else { return false }
        let sock = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard sock >= 0 else { return false }
        defer { close(sock) }
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(sock, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return sent == bytes.count
    }

    /// `path` as a `sockaddr_un`. - Throws: ENAMETOOLONG when it does not fit (108 bytes on Linux).
    package static func address(_ path: String) throws(SystemError) -> sockaddr_un {
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
