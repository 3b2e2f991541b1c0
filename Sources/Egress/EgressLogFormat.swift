// Egress: the access log line squid writes for each request (a `logformat`), and its parser for hostile lines.

import Foundation

/// The one log format: squid writes it (`SquidConfiguration`), `parse` reads it. Fields are
/// separated by one space; the fields the client controls (method, host) come last, so the
/// fixed fields are read by position whatever the client sent:
///
///     E1 START UP DOWN PORT STATUS SQUIDSTATUS SERVER REASON METHOD HOST
///
/// REASON is the transaction's `reason` annotation (set by the deny rules with
/// `annotate_transaction`): `notlisted`, `port`, `method`, `blocked:KIND:CIDR`, or `-`.
package enum EgressLogFormat {
    package static let name = "patchd_egress"
    /// A version tag: a line without it is not ours.
    package static let tag = "E1"
    /// The `logformat` directive's format.
    package static let format = "\(tag) %tS %>st %<st %>rP %>Hs %Ss %<a %{reason}note %rm %>rd"
    /// Longer lines are not parsed (squid's own limit on a URL is 8 KiB; a host is at most 255).
    package static let maxLineBytes = 16 * 1024

    /// The connection a line records, or nil when the line is not one (garbled, truncated,
    /// not ours, or a connection that sent no request). Never traps, whatever the bytes.
    package static func parse<Line: StringProtocol>(_ line: Line) -> EgressConnection? {
        guard line.utf8.count <= maxLineBytes else { return nil }
        let fields = line.split(separator: " ", maxSplits: 10, omittingEmptySubsequences: false)
        guard fields.count == 11, fields[0] == tag else { return nil }
        // A connection that closed before sending a request (the readiness probe, a port scan) names no destination.
        if fields[9] == "-" && fields[10] == "-" { return nil }
        guard let start = Double(fields[1]), start.isFinite, start >= 0, start < 1e11 else { return nil }
        guard let up = count(fields[2]), let down = count(fields[3]) else { return nil }
        let port = fields[4] == "-" ? 0 : Int(fields[4]).flatMap { (0...65535).contains($0) ? $0 : nil }
        guard let port else { return nil }
        let status = Int(fields[5]).flatMap { (0...999).contains($0) ? $0 : nil } ?? 0
        let squidStatus = fields[6]
        let server = fields[7] == "-" ? nil : printable(fields[7], limit: 64)
        let refusal: EgressRefusal?
        switch fields[8] {
        case "-": refusal = squidStatus.hasPrefix("TCP_DENIED") ? .refusedByProxy : nil
        case "notlisted": refusal = .notOnAllowlist
        case "port": refusal = .portNotAllowed
        case "method": refusal = .methodNotAllowed
        default:
            // blocked:KIND:CIDR (the CIDR may hold colons).
            let parts = fields[8].split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "blocked" else { return nil }
            refusal = .privateAddress(range: printable(parts[2], limit: 64), kind: printable(parts[1], limit: 32))
        }
        return EgressConnection(
            time: Date(timeIntervalSince1970: start), method: printable(fields[9], limit: 32),
            host: printable(percentDecoded(fields[10]), limit: 255), port: port,
            bytesUp: up, bytesDown: down, status: status, serverAddress: server, refusal: refusal)
    }

    /// A byte count (`-` is 0); nil when not a plain non-negative number.
    private static func count<S: StringProtocol>(_ text: S) -> Int? {
        if text == "-" { return 0 }
        guard text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// %XX sequences decoded (squid escapes the host); anything else kept as it is.
    static func percentDecoded<S: StringProtocol>(_ text: S) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: return b - 0x30
            case 0x41...0x46: return b - 0x41 + 10
            case 0x61...0x66: return b - 0x61 + 10
            default: return nil
            }
        }
        while i < bytes.count {
            if bytes[i] == 0x25, i + 2 < bytes.count, let high = hex(bytes[i + 1]), let low = hex(bytes[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Printable ASCII kept; anything else (controls, escapes, non-ASCII) as \u{...}; cut at `limit` characters.
    static func printable<S: StringProtocol>(_ text: S, limit: Int) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let piece =
                scalar.value >= 0x21 && scalar.value < 0x7f
                ? String(Character(scalar)) : "\\u{" + String(scalar.value, radix: 16) + "}"
            if out.utf8.count + piece.utf8.count > limit {
                out += "..."
                break
            }
            out += piece
        }
        return out
    }
}
