// Egress: reading allowlist entries that users wrote (task files, repository and server config): hostile text.

import Foundation

extension EgressPolicy {
    /// More entries than this in one list is refused (a task file is hostile input; squid's rules grow with it).
    package static let maxEntries = 1000
    /// Longer text than this for one entry is refused before it is looked at (253 for the name, a port, a `*.`).
    static let maxEntryLength = 270

    /// The policy `items` describe, each one entry as the type's doc comment says (`pypi.org`,
    /// `*.pythonhosted.org`, `pypi.org:8443`, `preset:registries`). Surrounding whitespace is ignored;
    /// one trailing dot is dropped (`pypi.org.` is `pypi.org`).
    /// - Parameter source: where the list comes from, for the error (`task file network.allow`).
    /// - Throws: `EgressPolicyError` for the first entry refused: IP literals, schemes, paths,
    ///   user information, empty labels, `*` alone or not as the whole first label, a wildcard
    ///   over a top-level domain, single-label names (and a bare preset name), ports out of
    ///   1...65535, non-ASCII, names over 253 characters or labels over 63, more than `maxEntries`.
    package static func parse(_ items: [String], source: String) throws(EgressPolicyError) -> EgressPolicy {
        if items.count > maxEntries {
            throw EgressPolicyError(
                source: source, position: maxEntries + 1, entry: items[maxEntries],
                problem: "is one entry too many (at most \(maxEntries))",
                fix: "allow a domain's subdomains with one *.example.org entry instead of listing each host")
        }
        var entries: [Entry] = []
        for (index, item) in items.enumerated() {
            entries += try parseEntry(item, source: source, position: index + 1)
        }
        return EgressPolicy(entries)
    }

    /// One entry's text as entries (a preset gives several).
    package static func parseEntry(_ raw: String, source: String, position: Int) throws(EgressPolicyError) -> [Entry] {
        func refuse(_ problem: String, _ fix: String) -> EgressPolicyError {
            EgressPolicyError(source: source, position: position, entry: raw, problem: problem, fix: fix)
        }
        let example = "write a host name such as pypi.org, *.pythonhosted.org or pypi.org:8443"
        guard raw.utf8.count <= maxEntryLength else {
            throw refuse("is over-long (\(raw.utf8.count) bytes)", "a host name has at most 253 characters; \(example)")
        }
        guard raw.unicodeScalars.allSatisfy({ $0.isASCII }) else {
            throw refuse(
                "contains non-ASCII characters",
                "write an internationalised name in its ASCII form (xn--..., as `idn2` prints it)")
        }
        let text = trimmed(raw)
        guard !text.isEmpty else { throw refuse("is empty", "remove it, or \(example)") }
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f }) else {
            throw refuse("contains whitespace or control characters", "write one host per entry; \(example)")
        }
        if let range = text.range(of: "://") {
            let rest = text[range.upperBound...]
            let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            throw refuse("has a scheme (\(text[..<range.lowerBound])://)", "write only the host: '\(host)'")
        }
        if text.lowercased().hasPrefix("preset:") {
            let name = String(text.dropFirst("preset:".count)).lowercased()
            guard let preset = Preset(rawValue: name) else {
                throw refuse("names no preset", "known presets: " + Preset.allCases.map { "preset:\($0.rawValue)" }.joined(separator: ", "))
            }
            return preset.entries
        }
        if let slash = text.firstIndex(of: "/") {
            throw refuse("has a path", "the allowlist is by host: write '\(text[..<slash])'")
        }
        if text.contains("@") {
            throw refuse("has user information (@)", "write only the host; credentials never belong in an allowlist")
        }
        if text.contains("?") || text.contains("#") {
            throw refuse("has a query or fragment", example)
        }
        let ipFix = "allow host names only: the proxy resolves names itself and refuses private and local addresses"
        let colons = text.filter { $0 == ":" }.count
        if text.hasPrefix("[") || colons > 1 { throw refuse("is an IP address", ipFix) }

        var hostText = Substring(text)
        var port: Int?
        if let colon = text.firstIndex(of: ":") {
            hostText = text[..<colon]
            let portText = text[text.index(after: colon)...]
            guard !portText.isEmpty else { throw refuse("has an empty port after ':'", "write pypi.org or pypi.org:8443") }
            guard portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(portText) else {
                throw refuse("has a port that is not a number from 1 to 65535", "write the port in digits: pypi.org:8443")
            }
            guard (1...65535).contains(value) else {
                throw refuse("has port \(value), out of range", "a port is 1 to 65535")
            }
            port = value
        }
        var host = hostText.lowercased()
        if host.hasSuffix(".") && host.count > 1 { host.removeLast() }

        if host == "*" || host == "*." {
            throw refuse("allows every host", "name the hosts, or a domain's subdomains as *.example.org")
        }
        var subdomainsOnly = false
        if host.hasPrefix("*.") {
            subdomainsOnly = true
            host.removeFirst(2)
        }
        if host.contains("*") {
            throw refuse("has a * that is not the whole first label", "a wildcard is written *.example.org (its subdomains)")
        }
        guard host.utf8.count <= 253 else {
            throw refuse("is over-long (a name has at most 253 characters)", example)
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            if label.isEmpty { throw refuse("has an empty label (a leading dot or '..')", example) }
            if label.utf8.count > 63 { throw refuse("has a label over 63 characters", "a DNS label has at most 63 characters") }
            if let bad = label.first(where: { !(($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-") }) {
                throw refuse("has '\(bad)', which a host name cannot hold", "a host name is letters, digits, '-' and dots")
            }
            if label.hasPrefix("-") || label.hasSuffix("-") {
                throw refuse("has a label that starts or ends with '-'", example)
            }
        }
        if let last = labels.last, last.allSatisfy({ $0.isNumber }) {
            throw refuse("is an IP address (no top-level domain is all digits)", ipFix)
        }
        if labels.count < 2 {
            if subdomainsOnly {
                throw refuse("is too broad (every name under a top-level domain)", "name a domain: *.example.org")
            }
            if let preset = Preset(rawValue: host) {
                throw refuse("is a preset's name, not a host", "write preset:\(preset.rawValue)")
            }
            throw refuse(
                "is a single-label name",
                "write the full name (pypi.org): a single label would resolve through the server's search domains")
        }
        return [Entry(name: host, subdomainsOnly: subdomainsOnly, port: port)]
    }

    /// `text` without leading and trailing spaces, tabs and line ends.
    private static func trimmed(_ text: String) -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = text.firstIndex(where: { !blank($0) }), let last = text.lastIndex(where: { !blank($0) }) else { return "" }
        return String(text[first...last])
    }
}
