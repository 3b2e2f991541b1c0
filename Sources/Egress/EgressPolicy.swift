// Egress: the allowlist a run's network traffic is held to: host names (exact or `*.` subdomains) and ports.

/// Where a run may connect through the egress proxy. Entries are names, never addresses: the
/// proxy resolves them itself and refuses private and local addresses whatever the list says.
///
/// Written as text (task file, repository config, server config), each entry is one of
/// - `pypi.org`: that name exactly (not its subdomains);
/// - `*.pythonhosted.org`: every subdomain at any depth (`files.pythonhosted.org`,
///   `a.b.pythonhosted.org`), not the apex `pythonhosted.org` itself;
/// - either with `:PORT` (`pypi.org:8443`): only that port, for both CONNECT and plain HTTP;
///   without a port, CONNECT (HTTPS) to 443 and plain HTTP to 80;
/// - `preset:NAME` (`preset:registries`): the hosts of a named preset, see `Preset`.
/// `EgressPolicy.parse` reads that text; a bare preset name (`registries`) is refused with a hint,
/// as single-label names are.
package struct EgressPolicy: Sendable, Hashable {
    /// One allowed host pattern and its port.
    package struct Entry: Sendable, Hashable, CustomStringConvertible {
        /// Lowercase ASCII name, validated: labels of [a-z0-9-], at least two of them.
        package let name: String
        /// True for `*.name`: subdomains of `name`, not `name` itself.
        package let subdomainsOnly: Bool
        /// nil: 443 for CONNECT and 80 for plain HTTP.
        package let port: Int?

        /// An entry from already-valid parts (the presets, tests); user text goes through `EgressPolicy.parse`.
        package init(name: String, subdomainsOnly: Bool = false, port: Int? = nil) {
            self.name = name
            self.subdomainsOnly = subdomainsOnly
            self.port = port
        }

        package var description: String {
            (subdomainsOnly ? "*." : "") + name + (port.map { ":\($0)" } ?? "")
        }

        /// Whether `host` (as a client names it, case ignored) is this entry's host. A trailing dot
        /// (`pypi.org.`) does not match, as it does not in the proxy's rules.
        package func matches(host: String) -> Bool {
            let host = host.lowercased()
            if subdomainsOnly { return host.hasSuffix("." + name) && host.count > name.count + 1 }
            return host == name
        }

        /// Whether this entry allows `port` for a CONNECT (`tunnel`) or a plain HTTP request.
        package func allows(port requested: Int, tunnel: Bool) -> Bool {
            if let port { return requested == port }
            return requested == (tunnel ? 443 : 80)
        }
    }

    /// In the order given, duplicates removed.
    package private(set) var entries: [Entry]

    package init(_ entries: [Entry] = []) {
        var seen = Set<Entry>()
        self.entries = entries.filter { seen.insert($0).inserted }
    }

    /// Nothing is allowed.
    package static let none = EgressPolicy()

    package var isEmpty: Bool { entries.isEmpty }

    /// Both lists (server, repository and task entries add up).
    package func union(_ other: EgressPolicy) -> EgressPolicy {
        EgressPolicy(entries + other.entries)
    }

    /// Whether some entry names `host`, whatever the port.
    package func listsHost(_ host: String) -> Bool {
        entries.contains { $0.matches(host: host) }
    }

    /// What the proxy decides by name alone (it also refuses private addresses, which only it sees).
    package func allows(host: String, port: Int, tunnel: Bool) -> Bool {
        entries.contains { $0.matches(host: host) && $0.allows(port: port, tunnel: tunnel) }
    }
}
