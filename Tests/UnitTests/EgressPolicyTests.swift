// UnitTests: the egress allowlist: parsing hostile entries, wildcard and port matching, presets, squid's rules.

import Testing

@testable import Egress

@Suite("egress policy")
struct EgressPolicyTests {
    @Test("host names, wildcards, ports and presets parse into entries")
    func parsesEntries() throws {
        let policy = try EgressPolicy.parse(
            ["pypi.org", "  PyPI.org.  ", "*.pythonhosted.org", "pypi.org:8443", "Preset:Registries", "xn--bcher-kva.example"],
            source: "test")
        #expect(policy.entries.first == EgressPolicy.Entry(name: "pypi.org"))
        #expect(policy.entries.filter { $0 == EgressPolicy.Entry(name: "pypi.org") }.count == 1, "duplicates are dropped")
        #expect(policy.entries.contains(EgressPolicy.Entry(name: "pythonhosted.org", subdomainsOnly: true)))
        #expect(policy.entries.contains(EgressPolicy.Entry(name: "pypi.org", port: 8443)))
        #expect(policy.entries.contains(EgressPolicy.Entry(name: "registry.npmjs.org")))
        #expect(policy.entries.contains(EgressPolicy.Entry(name: "xn--bcher-kva.example")))
        #expect(policy.entries.map(\.description).contains("*.pythonhosted.org"))
        #expect(policy.entries.map(\.description).contains("pypi.org:8443"))
        #expect(try EgressPolicy.parse([], source: "test").isEmpty)
    }

    /// Each refused entry, and a word its message must carry.
    static let refusals: [(entry: String, says: String)] = [
        ("", "is empty"),
        ("   ", "is empty"),
        ("https://pypi.org/simple", "write only the host: 'pypi.org'"),
        ("http://pypi.org", "has a scheme"),
        ("pypi.org/simple", "has a path"),
        ("user:pw@pypi.org", "user information"),
        ("pypi.org?x", "query"),
        ("1.2.3.4", "IP address"),
        ("127.1", "IP address"),
        ("10.0.0.5:8080", "IP address"),
        ("[::1]", "IP address"),
        ("::1", "IP address"),
        ("fe80::1", "IP address"),
        ("*", "allows every host"),
        ("*.", "allows every host"),
        ("*.org", "too broad"),
        ("foo.*.org", "whole first label"),
        ("a*.example.org", "whole first label"),
        ("**.example.org", "whole first label"),
        ("a..b.org", "empty label"),
        (".pypi.org", "empty label"),
        ("pypi.org..", "empty label"),
        ("pypi.org:", "empty port"),
        ("pypi.org:0", "out of range"),
        ("pypi.org:65536", "out of range"),
        ("pypi.org:99999999", "not a number"),
        ("pypi.org:8a", "not a number"),
        ("pypi.org:+80", "not a number"),
        ("pypi.org:-1", "not a number"),
        ("pypí.org", "non-ASCII"),
        ("pypi.org\u{202E}", "non-ASCII"),
        ("registries", "write preset:registries"),
        ("localhost", "single-label"),
        ("preset:nope", "known presets: preset:registries"),
        ("-a.example.org", "starts or ends with '-'"),
        ("a-.example.org", "starts or ends with '-'"),
        ("a_b.example.org", "'_'"),
        ("a b.org", "whitespace"),
        ("pypi.org\u{0}", "whitespace or control"),
        ("pypi.org\nevil.com", "whitespace or control"),
        ("http_access allow all", "whitespace"),
        (String(repeating: "a", count: 64) + ".org", "over 63"),
        ((0..<52).map { _ in "abcd" }.joined(separator: "."), "over-long"),
        (String(repeating: "a", count: 300), "over-long"),
    ]

    @Test("bad entries are refused with what, where and how to fix", arguments: refusals)
    func refuses(_ refusal: (entry: String, says: String)) {
        do {
            let policy = try EgressPolicy.parse(["pypi.org", refusal.entry], source: "task file network.allow")
            Issue.record("accepted '\(refusal.entry)' as \(policy.entries)")
        } catch {
            #expect(error.description.contains(refusal.says), "\(error)")
            #expect(error.description.hasPrefix("task file network.allow, entry 2: '"), "\(error)")
            #expect(error.position == 2)
            #expect(!error.fix.isEmpty)
            // The message is one printable line, whatever the entry held.
            #expect(error.description.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7f }, "\(error)")
            #expect(error.description.count < 400)
        }
    }

    @Test("fuzz: random entries never trap, and whatever is accepted is a name squid's rules can hold as it is")
    func fuzzEntries() {
        var rng = SplitMix64(seed: 0xa110_7115)
        let alphabet = Array("abcxyz019-.*:/@[]% _\u{0}\n\\\"#;éÅ\u{202E}")
        let seeds = ["pypi.org", "*.pythonhosted.org", "pypi.org:8443", "preset:registries", "a-b.c-d.example"]
        var accepted = 0
        for iteration in 0..<20_000 {
            var text = Array(seeds[Int(rng.next() % UInt64(seeds.count))])
            if iteration % 4 == 0 { text = (0..<Int(rng.next() % 40)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] } }
            for _ in 0..<Int(rng.next() % 4) {
                let at = text.isEmpty ? 0 : Int(rng.next() % UInt64(text.count))
                if rng.next() % 2 == 0 && !text.isEmpty {
                    text.remove(at: at)
                } else {
                    text.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                }
            }
            guard let policy = try? EgressPolicy.parse([String(text)], source: "fuzz") else { continue }
            accepted += 1
            for entry in policy.entries {
                #expect(entry.name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e })
                #expect(entry.name.contains(".") && !entry.name.hasPrefix(".") && !entry.name.hasSuffix(".") && !entry.name.contains(".."))
                #expect(entry.port.map { (1...65535).contains($0) } ?? true)
            }
        }
        #expect(accepted > 1000)
    }

    @Test("more than the maximum number of entries is refused")
    func tooMany() {
        let items = (0...EgressPolicy.maxEntries).map { "h\($0).example.org" }
        #expect(throws: EgressPolicyError.self) { try EgressPolicy.parse(items, source: "test") }
        #expect((try? EgressPolicy.parse(Array(items.dropLast()), source: "test"))?.entries.count == EgressPolicy.maxEntries)
    }

    @Test("a wildcard matches subdomains at any depth, not the apex nor a name that merely ends the same")
    func wildcardMatching() {
        let wild = EgressPolicy.Entry(name: "pythonhosted.org", subdomainsOnly: true)
        #expect(wild.matches(host: "files.pythonhosted.org"))
        #expect(wild.matches(host: "a.b.pythonhosted.org"))
        #expect(wild.matches(host: "FILES.PythonHosted.org"))
        #expect(!wild.matches(host: "pythonhosted.org"))
        #expect(!wild.matches(host: "evilpythonhosted.org"))
        #expect(!wild.matches(host: "files.pythonhosted.org.evil.com"))
        #expect(!wild.matches(host: ".pythonhosted.org"))
        let exact = EgressPolicy.Entry(name: "pypi.org")
        #expect(exact.matches(host: "pypi.org") && exact.matches(host: "PYPI.ORG"))
        #expect(!exact.matches(host: "www.pypi.org") && !exact.matches(host: "pypi.org.") && !exact.matches(host: "pypi.or"))
    }

    @Test("default ports: 443 for CONNECT, 80 for plain HTTP; an explicit port is the only one, for both")
    func ports() {
        let policy = EgressPolicy([EgressPolicy.Entry(name: "pypi.org"), EgressPolicy.Entry(name: "mirror.example.org", port: 8443)])
        #expect(policy.allows(host: "pypi.org", port: 443, tunnel: true))
        #expect(policy.allows(host: "pypi.org", port: 80, tunnel: false))
        #expect(!policy.allows(host: "pypi.org", port: 80, tunnel: true))
        #expect(!policy.allows(host: "pypi.org", port: 443, tunnel: false))
        #expect(!policy.allows(host: "pypi.org", port: 22, tunnel: true))
        #expect(policy.allows(host: "mirror.example.org", port: 8443, tunnel: true))
        #expect(policy.allows(host: "mirror.example.org", port: 8443, tunnel: false))
        #expect(!policy.allows(host: "mirror.example.org", port: 443, tunnel: true))
        #expect(policy.listsHost("mirror.example.org") && !policy.listsHost("example.org"))
        #expect(!EgressPolicy.none.allows(host: "pypi.org", port: 443, tunnel: true))
    }

    @Test("the registries preset names each registry's hosts, each one a valid entry")
    func registriesPreset() throws {
        let hosts = EgressPolicy.Preset.registries.hosts
        for host in [
            "pypi.org", "files.pythonhosted.org", "registry.npmjs.org", "crates.io", "static.crates.io", "index.crates.io",
            "proxy.golang.org", "sum.golang.org", "rubygems.org", "index.rubygems.org", "repo.maven.apache.org", "repo1.maven.org",
            "deb.debian.org", "security.debian.org", "archive.ubuntu.com", "security.ubuntu.com", "github.com", "codeload.github.com",
            "objects.githubusercontent.com",
        ] {
            #expect(hosts.contains(host), "\(host)")
        }
        #expect(Set(hosts).count == hosts.count)
        // Every preset host is one a user could have written.
        let written = try EgressPolicy.parse(hosts, source: "preset")
        #expect(written == .preset(.registries))
        #expect(EgressPolicy.preset(.registries).entries.allSatisfy { $0.port == nil && !$0.subdomainsOnly })
    }

    @Test("union adds lists up without duplicates")
    func union() {
        let a = EgressPolicy([EgressPolicy.Entry(name: "pypi.org"), EgressPolicy.Entry(name: "a.example.org")])
        let b = EgressPolicy([EgressPolicy.Entry(name: "a.example.org"), EgressPolicy.Entry(name: "b.example.org", port: 81)])
        #expect(a.union(b).entries.map(\.description) == ["pypi.org", "a.example.org", "b.example.org:81"])
    }
}

@Suite("egress squid configuration")
struct SquidConfigurationTests {
    let blocked = BlockedAddresses.fixed + [BlockedAddresses.Range("192.0.2.2/32", "this-server")]

    @Test("loopback only, no cache, no other listener, no identifying headers, logs through pipes")
    func directives() {
        let text = SquidConfiguration(policy: .preset(.registries), port: 40123, blocked: blocked, effectiveUser: "proxy").render()
        let lines = Set(text.split(separator: "\n").map(String.init))
        for directive in [
            "http_port 127.0.0.1:40123", "pid_filename none", "cache deny all", "cache_mem 0 MB", "icp_port 0", "htcp_port 0",
            "snmp_port 0", "via off", "forwarded_for delete", "pinger_enable off", "ident_lookup_access deny all",
            "access_log stdio:/dev/stdout logformat=patchd_egress", "cache_log /dev/stderr", "hosts_file /dev/stdin",
            "cache_effective_user proxy", "http_access deny manager", "http_access deny all",
        ] {
            #expect(lines.contains(directive), "missing: \(directive)")
        }
        #expect(!text.contains("cache_dir"))
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("http_port") }.count == 1)
        #expect(!SquidConfiguration(policy: .none, port: 1, blocked: blocked, effectiveUser: nil).render().contains("cache_effective_user"))
    }

    @Test("the rules: blocked literals first, then unlisted names (no DNS), then ports, then resolved addresses, then allow")
    func ruleOrder() throws {
        let policy = try EgressPolicy.parse(["pypi.org", "*.pythonhosted.org", "mirror.example.org:8443"], source: "test")
        let access = SquidConfiguration(policy: policy, port: 1, blocked: blocked, effectiveUser: nil).rules().filter { $0.hasPrefix("http_access") }
        let literal = try #require(access.firstIndex { $0.hasPrefix("http_access deny eg_literal eg_dst0 ") })
        let notListed = try #require(access.firstIndex(of: "http_access deny !eg_listed eg_why_notlisted"))
        let port = try #require(access.firstIndex(of: "http_access deny !eg_ok eg_why_port"))
        let resolved = try #require(access.firstIndex { $0.hasPrefix("http_access deny eg_dst0 ") })
        let allow = try #require(access.firstIndex(of: "http_access allow eg_ok"))
        #expect(literal < notListed && notListed < port && port < resolved && resolved < allow)
        #expect(access.last == "http_access deny all")
        let acl = SquidConfiguration(policy: policy, port: 1, blocked: blocked, effectiveUser: nil).rules()
        #expect(acl.contains("acl eg_g0_exact dstdomain -n pypi.org"))
        #expect(acl.contains(#"acl eg_g0_wild dstdom_regex -n -i \.pythonhosted\.org$"#))
        #expect(acl.contains("acl eg_g1_tport port 8443") && acl.contains("acl eg_g1_pport port 8443"))
        #expect(acl.contains("acl eg_g0_tport port 443") && acl.contains("acl eg_g0_pport port 80"))
        #expect(acl.contains("acl eg_why_dst\(blocked.count - 1) annotate_transaction reason=blocked:this-server:192.0.2.2/32"))
        // No documentation range is blocked (the registries resolve there on the build machines).
        #expect(!acl.contains { $0.contains("203.0.113.") || $0.contains("198.51.100.") || $0.contains("192.0.2.0") })
    }

    @Test("an empty policy refuses everything as not on the allowlist")
    func emptyPolicy() {
        let access = SquidConfiguration(policy: .none, port: 1, blocked: blocked, effectiveUser: nil).rules().filter { $0.hasPrefix("http_access") }
        #expect(access.last == "http_access deny all eg_why_notlisted")
        #expect(!access.contains { $0.hasPrefix("http_access allow") })
    }

    @Test("the blocked ranges hold loopback, metadata, RFC 1918, CGNAT, ULA, multicast; the interfaces are this server's")
    func blockedRanges() {
        let cidrs = Set(BlockedAddresses.fixed.map(\.cidr))
        for cidr in [
            "127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128", "169.254.0.0/16", "fe80::/10", "10.0.0.0/8", "172.16.0.0/12",
            "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "224.0.0.0/4", "ff00::/8",
        ] {
            #expect(cidrs.contains(cidr), "\(cidr)")
        }
        let interfaces = BlockedAddresses.interfaceAddresses()
        #expect(interfaces.contains("127.0.0.1/32"))
        #expect(interfaces.allSatisfy { $0.hasSuffix("/32") || $0.hasSuffix("/128") })
        #expect(!interfaces.contains { $0.contains("%") })
        let current = BlockedAddresses.current()
        for address in interfaces where !cidrs.contains(address) {
            #expect(current.contains(BlockedAddresses.Range(address, "this-server")), "\(address)")
        }
    }
}
