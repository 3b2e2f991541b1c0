// UnitTests: squid's access log lines as egress records: real lines, refusal reasons, and garbage that must never trap.

import Foundation
import Testing

@testable import Egress

@Suite("egress log lines")
struct EgressLogFormatTests {
    @Test("an allowed tunnel, and each kind of refusal, as squid writes them")
    func realLines() throws {
        let tunnel = try #require(EgressLogFormat.parse("E1 1796473672.353 889 85685 443 200 TCP_TUNNEL 203.0.113.80 - CONNECT pypi.org"))
        #expect(tunnel.allowed && tunnel.reason == nil)
        #expect(tunnel.method == "CONNECT" && tunnel.host == "pypi.org" && tunnel.port == 443)
        #expect(tunnel.bytesUp == 889 && tunnel.bytesDown == 85685 && tunnel.status == 200)
        #expect(tunnel.serverAddress == "203.0.113.80")
        #expect(abs(tunnel.time.timeIntervalSince1970 - 1796473672.353) < 0.001)
        #expect(tunnel.description == "CONNECT pypi.org:443 allowed (200), 889 bytes up, 85685 down")

        let notListed = try #require(EgressLogFormat.parse("E1 1796473672.467 114 3386 443 403 TCP_DENIED - notlisted CONNECT example.com"))
        #expect(!notListed.allowed && notListed.refusal == .notOnAllowlist && notListed.reason == "not on the allowlist")
        #expect(notListed.description == "CONNECT example.com:443 refused: not on the allowlist")

        let port = try #require(EgressLogFormat.parse("E1 1796473672.518 110 3370 8443 403 TCP_DENIED - port CONNECT pypi.org"))
        #expect(port.reason == "port not allowed")

        let method = try #require(EgressLogFormat.parse("E1 1796473672.518 110 3370 80 403 TCP_DENIED - method TRACE pypi.org"))
        #expect(method.refusal == .methodNotAllowed)

        let metadata = try #require(
            EgressLogFormat.parse("E1 1796473672.482 137 3402 80 403 TCP_DENIED - blocked:link-local:169.254.0.0/16 GET 169.254.169.254"))
        #expect(metadata.refusal == .privateAddress(range: "169.254.0.0/16", kind: "link-local"))
        #expect(metadata.reason == "private or local address (169.254.0.0/16, link-local)")

        let six = try #require(EgressLogFormat.parse("E1 1796473672.566 102 3374 443 403 TCP_DENIED - blocked:loopback:::1/128 CONNECT %5B::1%5D"))
        #expect(six.host == "[::1]")
        #expect(six.reason == "private or local address (::1, loopback)")

        let own = try #require(EgressLogFormat.parse("E1 1.5 1 2 443 403 TCP_DENIED - blocked:this-server:192.0.2.2/32 CONNECT self.example"))
        #expect(own.reason == "private or local address (192.0.2.2, this-server)")

        // Denied by squid for another reason (no annotation): refused, not allowed.
        let other = try #require(EgressLogFormat.parse("E1 1.5 1 2 - 403 TCP_DENIED - - GET -"))
        #expect(other.refusal == .refusedByProxy && other.port == 0)
        // Allowed by policy, failed upstream: allowed, with the status.
        let failed = try #require(EgressLogFormat.parse("E1 1.5 116 0 443 503 NONE_NONE - - CONNECT gone.example.org"))
        #expect(failed.allowed && failed.status == 503 && failed.bytesDown == 0)
    }

    @Test("the host is as the client sent it, made printable and bounded")
    func hostileHost() throws {
        let escaped = try #require(EgressLogFormat.parse("E1 1.0 1 1 443 403 TCP_DENIED - notlisted CONNECT evil%1B%5B31m.example%0A"))
        #expect(escaped.host == "evil\\u{1b}[31m.example\\u{a}")
        let spaced = try #require(EgressLogFormat.parse("E1 1.0 1 1 443 403 TCP_DENIED - notlisted CONNECT a b c"))
        #expect(spaced.host == "a\\u{20}b\\u{20}c")
        let long = try #require(EgressLogFormat.parse("E1 1.0 1 1 443 403 TCP_DENIED - notlisted CONNECT " + String(repeating: "a", count: 5000)))
        #expect(long.host.count == 258 && long.host.hasSuffix("..."))
        let unicode = try #require(EgressLogFormat.parse("E1 1.0 1 1 443 403 TCP_DENIED - notlisted CONNECT p%C3%BF%FF%FE"))
        #expect(unicode.host.unicodeScalars.allSatisfy { $0.isASCII })
    }

    @Test(
        "lines that are not a record are ignored",
        arguments: [
            "", " ", "\n", "E1", "E2 1.0 1 1 443 403 TCP_DENIED - notlisted CONNECT a.org",
            "2026/12/05 12:29:21| Starting Squid Cache version 5.7",
            "E1 x 1 1 443 403 TCP_DENIED - notlisted CONNECT a.org", "E1 1.0 -1 1 443 403 TCP_DENIED - notlisted CONNECT a.org",
            "E1 1.0 1 99999999999999999999999 443 403 TCP_DENIED - notlisted CONNECT a.org",
            "E1 1.0 1 1 70000 403 TCP_DENIED - notlisted CONNECT a.org", "E1 1.0 1 1 443 403 TCP_DENIED - weird CONNECT a.org",
            "E1 1.0 1 1 443 403 TCP_DENIED - blocked:x CONNECT a.org", "E1 nan 1 1 443 403 TCP_DENIED - - CONNECT a.org",
            "E1 inf 1 1 443 403 TCP_DENIED - - CONNECT a.org", "E1 1e300 1 1 443 403 TCP_DENIED - - CONNECT a.org",
            "E1  1.0 1 1 443 403 TCP_DENIED - - CONNECT a.org", "E1 1.0 1 1 443 403 TCP_DENIED - - CONNECT",
            // A connection that sent nothing (the readiness probe).
            "E1 1796474476.604 0 0 - 0 NONE_NONE - - - -",
        ])
    func garbage(_ line: String) {
        #expect(EgressLogFormat.parse(line) == nil, "\(line)")
    }

    @Test("fuzz: random bytes and mutated real lines never trap, and what parses is bounded and printable")
    func fuzz() {
        var rng = SplitMix64(seed: 0x5eed_e9e5)
        let seeds = [
            "E1 1796473672.353 889 85685 443 200 TCP_TUNNEL 203.0.113.80 - CONNECT pypi.org",
            "E1 1796473672.482 137 3402 80 403 TCP_DENIED - blocked:link-local:169.254.0.0/16 GET 169.254.169.254",
            "E1 1796473672.566 102 3374 443 403 TCP_DENIED - blocked:loopback:::1/128 CONNECT %5B::1%5D",
        ]
        let alphabet: [UInt8] = Array(" E1-:%/.0123456789abcdefTCP_\u{0}\u{1b}\n\r\t".utf8) + [0xff, 0xc3, 0x80, 0xe2]
        var parsed = 0
        for iteration in 0..<30_000 {
            var bytes: [UInt8]
            if iteration % 3 == 0 {
                bytes = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                bytes = Array(seeds[Int(rng.next() % UInt64(seeds.count))].utf8)
                for _ in 0..<Int(rng.next() % 6) + 1 {
                    let at = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
                    switch rng.next() % 4 {
                    case 0 where !bytes.isEmpty: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    case 1 where !bytes.isEmpty: bytes.remove(at: at)
                    case 2: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                    default: bytes.insert(contentsOf: Array(repeating: UInt8(ascii: "%"), count: Int(rng.next() % 4)), at: at)
                    }
                }
            }
            let line = String(decoding: bytes, as: UTF8.self)
            guard let record = EgressLogFormat.parse(line) else { continue }
            parsed += 1
            for text in [record.host, record.method, record.reason ?? "", record.serverAddress ?? "", record.description] {
                #expect(text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7f }, "\(line.debugDescription)")
            }
            #expect(record.host.count <= 258 && record.method.count <= 35)
            #expect(record.bytesUp >= 0 && record.bytesDown >= 0 && (0...65535).contains(record.port))
        }
        // The mutations leave many lines whole: the fuzz reaches the parser's far end, not only its first guard.
        #expect(parsed > 1000)
    }
}

/// A small deterministic generator, so a failing fuzz case repeats.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
