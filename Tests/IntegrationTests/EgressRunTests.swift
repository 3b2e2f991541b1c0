// IntegrationTests: a run's network through the real server: setup installs from the real PyPI through squid, the agent under `setup` cannot connect, refusals are named, every connection is on the record.
import Foundation
import Testing

@Suite("run egress", .serialized)
struct EgressRunTests {
    /// The connections of run `id` (run show --json's network.connections).
    static func connections(_ json: [String: Any]) -> [[String: Any]] {
        ((json["network"] as? [String: Any])?["connections"] as? [[String: Any]]) ?? []
    }

    /// squid and socat processes whose command line names a path under `dataDir` (the run's).
    static func proxyProcesses(under dataDir: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { $0.allSatisfy(\.isNumber) } ?? []
        return pids.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let program = argv.first, program.hasSuffix("squid") || program.hasSuffix("socat"),
                argv.contains(where: { $0.contains(dataDir) })
            else { return nil }
            return "\(pid) " + argv.joined(separator: " ")
        }
    }

    /// The README's example, as the bug report had it: setup makes a venv and installs from
    /// PyPI through the proxy, run edits calc.py (and finds no way out), check runs pytest from
    /// setup's venv. The result holds the agent's edit alone; the record lists the connections.
    @Test("the README's Python example: setup installs from PyPI through the proxy, the agent cannot connect, check runs pytest")
    func pythonExampleWithPyPI() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "calc", commits: 1)
        try server.write(work, "calc.py", "def add(a, b):\n    return a - b\n")
        try server.write(work, "test_calc.py", "import calc\n\ndef test_add():\n    assert calc.add(2, 3) == 5\n")
        try server.write(work, "requirements.txt", "iniconfig\n")
        try server.write(
            work, ".patchd/task.md",
            """
            ---
            agent: command
            setup: |
              python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -q -r requirements.txt pytest
            run: |
              sed -i 's/a - b/a + b/' calc.py
              if curl -sS --max-time 10 -o /dev/null https://pypi.org/simple/ 2>/dev/null; then echo AGENT-""REACHED-PYPI; else echo agent has no ""way out; fi
              if curl -sS --noproxy '*' --max-time 10 -o /dev/null https://pypi.org/simple/ 2>/dev/null; then echo AGENT-""REACHED-DIRECT; fi
            check: |
              /tmp/venv/bin/pytest -q
            ---
            Fix add.
            """)
        try server.commitAll(work, "python task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "\(json)\n\(push.output)")
        #expect(json["check"] as? String == "passed", "\(json)")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("agent has no way out"), "\(logs)")
        #expect(!logs.contains("AGENT-REACHED"), "\(logs)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let changed = try expectOK(server.git(["diff", "--name-only", "HEAD", "FETCH_HEAD"], in: work)).stdout
        #expect(changed == "calc.py\n", "the result holds only the agent's edit: \(changed)")

        let network = json["network"] as? [String: Any]
        #expect(network?["mode"] as? String == "setup", "\(json)")
        let connections = Self.connections(json)
        let pypi = connections.filter { ($0["host"] as? String) == "pypi.org" && ($0["allowed"] as? Bool) == true }
        #expect(!pypi.isEmpty, "pip's connections to pypi.org are on the record: \(connections)")
        #expect(pypi.allSatisfy { ($0["phase"] as? String) == "setup" }, "\(pypi)")
        // Every key is present, null included (scripts rely on the shape).
        #expect(pypi.allSatisfy { $0.keys.contains("reason") && ($0["status"] as? Int) == 200 }, "\(pypi)")
        let down = connections.compactMap { $0["bytes_down"] as? Int }.reduce(0, +)
        #expect(down > 100_000, "pytest's wheels came through the proxy: \(down) bytes")
        #expect(connections.contains { ($0["host"] as? String) == "files.pythonhosted.org" }, "\(connections)")
        // The agent's curl went nowhere: the proxy saw nothing from the agent phase.
        #expect(!connections.contains { ($0["phase"] as? String) == "agent" }, "\(connections)")
        // Nothing of the proxy is left: no squid, no socat of this run.
        #expect(Self.proxyProcesses(under: server.dataDir).isEmpty, "\(Self.proxyProcesses(under: server.dataDir))")
    }

    /// Refusals by name, by port, by IP and by a name that resolves to a private or local
    /// address, each named in the log as it happens and on the record with its reason.
    @Test("refused: a host off the allowlist, a port, loopback, the server's SSH port, cloud metadata, a private address, by IP and by name")
    func refusals() throws {
        let hosts = FileManager.default.temporaryDirectory.appendingPathComponent("egress-hosts-\(UUID().uuidString)").path
        try "127.0.0.1 loop.evil.example\n169.254.169.254 meta.evil.example\n10.0.0.5 lan.evil.example\n"
            .write(toFile: hosts, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: hosts) }
        let server = try TestServer(config: "network: on\negress_hosts_file: \(hosts)\n")
        let work = try server.makeWorkTree("work", repo: "refuse", commits: 1)
        let port = server.port
        try server.write(
            work, ".patchd/task.md",
            """
            ---
            agent: command
            network: on
            allowed_domains: [loop.evil.example, meta.evil.example, lan.evil.example, "pypi.org"]
            run: |
              for url in https://example.com/ https://pypi.org:8443/ http://127.0.0.1:\(port)/ https://127.0.0.1:\(port)/ \\
                  http://169.254.169.254/latest/meta-data/ http://10.1.2.3/ \\
                  https://loop.evil.example/ http://meta.evil.example/ https://lan.evil.example/; do
                curl -sf --noproxy '' --max-time 10 -o /dev/null "$url" && echo "REACH""ED $url" || echo "refused $url"
              done
              curl -sS --max-time 20 -o /dev/null -w 'pypi %{http_code}\\n' https://pypi.org/simple/iniconfig/
            ---
            Probe.
            """)
        try server.commitAll(work, "probe")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 180))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(!logs.contains("REACHED"), "\(logs)")
        #expect(logs.contains("pypi 200"), "an allowed host still works under on: \(logs)")
        // -o wait printed the refusals as they happened, naming the host and how to allow it.
        #expect(push.output.contains("network: refused CONNECT example.com:443 in agent: not on the allowlist"), "\(push.output)")
        #expect(push.output.contains("allowed_domains: [example.com]"), "\(push.output)")
        #expect(push.output.contains("allowed_domains: [pypi.org:8443]"), "\(push.output)")
        let refused = Self.connections(json).filter { ($0["allowed"] as? Bool) == false }
        func reason(_ host: String) -> String? { refused.first { ($0["host"] as? String) == host }?["reason"] as? String }
        #expect(reason("example.com") == "not on the allowlist", "\(refused)")
        #expect(reason("pypi.org") == "port not allowed", "\(refused)")
        for host in ["127.0.0.1", "169.254.169.254", "10.1.2.3", "loop.evil.example", "meta.evil.example", "lan.evil.example"] {
            #expect(reason(host)?.hasPrefix("private or local address") == true, "\(host): \(refused)")
        }
    }

    /// `network: none` sets no proxy and opens no bridge: setup finds no way out at all.
    @Test("network: none lets nothing out, and the record says so")
    func networkNone() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "offline", commits: 1)
        try server.write(
            work, ".patchd/task.md",
            """
            ---
            agent: command
            network: none
            setup: |
              env | grep -i _proxy || echo no proxy ""set
              curl -s --max-time 10 -o /dev/null https://pypi.org/simple/ && echo SETUP-""REACHED || echo setup ""offline
            run: |
              echo done > DONE
            ---
            Offline.
            """)
        try server.commitAll(work, "offline")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("no proxy set") && logs.contains("setup offline") && !logs.contains("REACHED"), "\(logs)")
        #expect((json["network"] as? [String: Any])?["mode"] as? String == "none", "\(json)")
        #expect(Self.connections(json).isEmpty)
    }

    /// The repository's default and the server's cap: an owner sets `network on`, the task names
    /// none, the server caps at setup: the agent phase has no way out.
    @Test("repo config network: owners set it, the server's cap wins, bad values are refused with the fix")
    func repositoryDefaultAndCap() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "capped", commits: 1)
        try expectOK(server.ssh(nil, ["repo", "create", "capped"]))
        let empty = try expectOK(server.ssh(nil, ["repo", "config", "capped", "--json"])).stdout
        let unset = try JSONSerialization.jsonObject(with: Data(empty.utf8)) as? [String: Any]
        #expect(unset?.keys.sorted() == ["allowed_domains", "network"], "both keys, null when not set: \(empty)")
        try expectOK(server.ssh(nil, ["repo", "config", "capped", "network", "on"]))
        let bad = try server.ssh(nil, ["repo", "config", "capped", "allowed-domains", "http://x.org/path"])
        #expect(bad.status != 0 && bad.stderr.contains("allowed-domains"), "\(bad.output)")
        try expectOK(server.ssh(nil, ["repo", "config", "capped", "allowed-domains", "example.org,*.example.net"]))
        let shown = try expectOK(server.ssh(nil, ["repo", "config", "capped", "--json"])).stdout
        let settings = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any]
        #expect(settings?["network"] as? String == "on", "\(shown)")
        #expect(settings?["allowed_domains"] as? [String] == ["example.org", "*.example.net"], "\(shown)")
        try server.write(work, ".patchd/task.md", "---\nagent: command\nrun: echo hi > HI\n---\nHi.\n")
        try server.commitAll(work, "capped")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.output.contains("network: on was asked; this server allows at most setup"), "\(push.output)")
        let json = try server.runJSON(1)
        let network = json["network"] as? [String: Any]
        #expect(network?["mode"] as? String == "setup", "\(json)")
        #expect((network?["allowlist"] as? [String])?.contains("*.example.net") == true, "\(json)")
        // A bad entry in a task file is refused at push time, naming the line.
        try server.write(work, ".patchd/task.md", "---\nagent: command\nallowed_domains: [\"10.0.0.1\"]\nrun: echo\n---\nX.\n")
        try server.commitAll(work, "bad domain")
        let refused = try server.git(["push", "origin", "main"], in: work)
        #expect(refused.status != 0 && refused.output.contains(".patchd/task.md:3"), "\(refused.output)")
    }
}
