// Egress: the destination addresses the proxy refuses whatever the allowlist says: local, private, this server's own.

#if canImport(Glibc)
import Glibc
#endif

/// Address ranges (CIDR) a run must never reach through the proxy, checked by squid against the
/// address a client names and against every address an allowed name resolves to.
package enum BlockedAddresses {
    /// One refused range and why, as the refusal reason shows it.
    package struct Range: Sendable, Hashable {
        /// CIDR as squid reads it (`10.0.0.0/8`, `fe80::/10`, `192.0.2.2/32`).
        package let cidr: String
        /// What it is, one word (it is written into squid's rules and log): `loopback`, `private`,
        /// `link-local` (cloud metadata services live at 169.254.169.254), `this-server`...
        package let label: String

        package init(_ cidr: String, _ label: String) {
            self.cidr = cidr
            self.label = label
        }
    }

    /// Loopback, unspecified, link-local (cloud metadata at 169.254.169.254), RFC 1918, CGNAT,
    /// multicast, reserved (and broadcast), unique-local. The documentation ranges (192.0.2.0/24,
    /// 198.51.100.0/24, 203.0.113.0/24) are deliberately absent: on the build machines the real
    /// registries resolve into them behind a re-signing TLS proxy. IPv4-mapped IPv6 addresses
    /// (`::ffff:127.0.0.1`) are matched by the IPv4 ranges, as squid keeps IPv4 in that form.
    package static let fixed: [Range] = [
        Range("0.0.0.0/8", "unspecified"),
        Range("10.0.0.0/8", "private"),
        Range("100.64.0.0/10", "cgnat"),
        Range("127.0.0.0/8", "loopback"),
        Range("169.254.0.0/16", "link-local"),
        Range("172.16.0.0/12", "private"),
        Range("192.168.0.0/16", "private"),
        Range("224.0.0.0/4", "multicast"),
        Range("240.0.0.0/4", "reserved"),
        Range("::/128", "unspecified"),
        Range("::1/128", "loopback"),
        Range("fe80::/10", "link-local"),
        Range("fc00::/7", "unique-local"),
        Range("ff00::/8", "multicast"),
    ]

    /// `fixed` and every address of this machine's interfaces (as single-address ranges): the
    /// server's own services listen there, whatever range the address is in.
    package static func current() -> [Range] {
        var ranges = fixed
        for address in interfaceAddresses() where !ranges.contains(where: { $0.cidr == address }) {
            ranges.append(Range(address, "this-server"))
        }
        return ranges
    }

    /// The IPv4 and IPv6 addresses of every interface (getifaddrs), as `a.b.c.d/32` and `x::y/128`, no scope.
    package static func interfaceAddresses() -> [String] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var out: [String] = []
        var node: UnsafeMutablePointer<ifaddrs>? = first
        while let current = node {
            defer { node = current.pointee.ifa_next }
            guard let addr = current.pointee.ifa_addr else { continue }
            let family = Int32(addr.pointee.sa_family)
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            var text: String?
            if family == AF_INET {
                addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var raw = sin.pointee.sin_addr
                    if inet_ntop(AF_INET, &raw, &buffer, socklen_t(buffer.count)) != nil {
                        text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/32"
                    }
                }
            } else if family == AF_INET6 {
                addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var raw = sin6.pointee.sin6_addr
                    if inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count)) != nil {
                        text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/128"
                    }
                }
            }
            if let text, !out.contains(text) { out.append(text) }
        }
        return out
    }
}
