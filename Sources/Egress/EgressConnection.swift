// Egress: one connection a run asked the proxy for, allowed or refused and why, read from squid's access log.

package import Foundation

/// Why the proxy refused a connection.
package enum EgressRefusal: Sendable, Hashable, CustomStringConvertible {
    /// No allowlist entry names the host.
    case notOnAllowlist
    /// An entry names the host, but not on this port.
    case portNotAllowed
    /// A plain request with a method other than GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or
    /// for another scheme than http:// (ftp://...).
    case methodNotAllowed
    /// The address named, or one the name resolves to, is in `range` (a CIDR) of kind `kind`
    /// (`loopback`, `private`, `link-local`, `this-server`...: `BlockedAddresses`).
    case privateAddress(range: String, kind: String)
    /// Refused by squid itself (a malformed request, the cache manager), not by the allowlist.
    case refusedByProxy

    package var description: String {
        switch self {
        case .notOnAllowlist: return "not on the allowlist"
        case .portNotAllowed: return "port not allowed"
        case .methodNotAllowed: return "method or scheme not allowed"
        case .privateAddress(let range, let kind):
            let shown = range.hasSuffix("/32") || range.hasSuffix("/128") ? String(range.prefix { $0 != "/" }) : range
            return "private or local address (\(shown), \(kind))"
        case .refusedByProxy: return "refused by the proxy"
        }
    }
}

/// One request to the proxy: a CONNECT tunnel or a plain HTTP request. Squid logs a tunnel when
/// it closes, so `bytesUp`/`bytesDown` are the tunnel's totals.
package struct EgressConnection: Sendable, Hashable, CustomStringConvertible {
    /// When the request reached the proxy.
    package let time: Date
    /// `CONNECT`, `GET`, ... (as the client sent it; made printable).
    package let method: String
    /// As the client named it (percent-decoded, made printable, at most 255 characters).
    package let host: String
    /// 0 when the request carried none the proxy could read.
    package let port: Int
    /// Bytes from the client (request and tunnel), and to it (reply and tunnel).
    package let bytesUp: Int
    package let bytesDown: Int
    /// The HTTP status the proxy answered (200 for an open tunnel, 403 refused, 503 unreachable); 0 if none.
    package let status: Int
    /// Where squid connected, when it did.
    package let serverAddress: String?
    /// Nil when allowed (the destination may still have failed: see `status`).
    package let refusal: EgressRefusal?

    package init(
        time: Date, method: String, host: String, port: Int, bytesUp: Int, bytesDown: Int, status: Int,
        serverAddress: String?, refusal: EgressRefusal?
    ) {
        self.time = time
        self.method = method
        self.host = host
        self.port = port
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.status = status
        self.serverAddress = serverAddress
        self.refusal = refusal
    }

    package var allowed: Bool { refusal == nil }
    /// Why it was refused, as a user reads it (`not on the allowlist`); nil when allowed.
    package var reason: String? { refusal?.description }

    /// One line naming the host: `CONNECT example.com:443 refused: not on the allowlist`.
    package var description: String {
        let target = "\(method) \(host):\(port)"
        if let reason { return "\(target) refused: \(reason)" }
        return "\(target) allowed (\(status)), \(bytesUp) bytes up, \(bytesDown) down"
    }
}
