// SSHServer: the listening TCP socket (owned here, so port 0 can be read back) and accept.

import CPatchdSystem
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// A bound, listening socket. Closed at deinit.
final class Listener: Sendable {
    let fd: Int32
    let boundHost: String
    let boundPort: Int

    init(host: String, port: Int) throws(SystemError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let gai = getaddrinfo(host == "*" ? nil : host, String(port), &hints, &result)
        guard gai == 0, let first = result else {
            throw SystemError("getaddrinfo", errno: EINVAL, context: "\(host): \(String(cString: gai_strerror(gai)))")
        }
        defer { freeaddrinfo(result) }
        let ai = first.pointee
        let sock = try checked("socket") { socket(ai.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        do {
            try checked("bind", "\(host):\(port)") { Glibc.bind(sock, ai.ai_addr, ai.ai_addrlen) }
            try checked("listen") { Glibc.listen(sock, 512) }
        } catch {
            Glibc.close(sock)
            throw error
        }
        fd = sock
        let (h, p) = Listener.localAddress(sock)
        boundHost = h
        boundPort = p
    }

    static func localAddress(_ fd: Int32) -> (String, Int) {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return describe(&storage)
    }

    static func describe(_ storage: inout sockaddr_storage) -> (String, Int) {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        let hostText = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let servText = String(decoding: serv.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (hostText, Int(servText) ?? 0)
    }

    /// Waits up to `timeoutMs` for a connection; nil on timeout.
    func accept(timeoutMs: Int32) -> (fd: Int32, client: ClientAddress)? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return nil }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let conn = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { patchd_accept_cloexec(fd, $0, &len) }
        }
        guard conn >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(conn, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let (h, p) = Listener.describe(&storage)
        return (conn, ClientAddress(host: h, port: p))
    }

    deinit { Glibc.close(fd) }
}
