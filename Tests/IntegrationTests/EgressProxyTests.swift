// IntegrationTests: a run's egress proxy (real squid, real network): what it lets through, what it refuses and records, and that it ends.

import Egress
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("egress proxy (squid)", .serialized)
struct EgressProxyTests {
    /// This machine's first interface address outside loopback (the address other hosts reach it at).
    static let ownAddress: String? = BlockedAddresses.interfaceAddresses()
        .filter { $0.hasSuffix("/32") && !$0.hasPrefix("127.") }
        .map { String($0.dropLast(3)) }.first

    /// A proxy in a fresh 0700 directory (so that, as root, nothing depends on `proxy` reading it),
    /// with `hosts` as its hosts file.
    struct Started {
        let proxy: EgressProxy
        let dir: TempDir
        let live: LockedCollector<EgressConnection>
    }

    static func start(_ policy: EgressPolicy, hosts: String = "127.0.0.1 localhost\n") throws -> Started {
        let dir = TempDir("patchd-egress")
        chmod(dir.path, 0o700)
        let hostsFile = dir.path + "/test-hosts"
        try hosts.write(toFile: hostsFile, atomically: true, encoding: .utf8)
        chmod(hostsFile, 0o600)
        let live = LockedCollector<EgressConnection>()
        let proxy = try EgressProxy(policy: policy, directory: dir.path + "/egress", hostsFile: hostsFile) { live.append($0) }
        return Started(proxy: proxy, dir: dir, live: live)
    }

    /// curl through the proxy: the HTTP status it reports (000 when the proxy refused the tunnel) and its stderr.
    static func curl(_ proxy: EgressProxy, _ url: String, _ extra: [String] = []) throws -> (code: String, stderr: String) {
        let r = try run(
            "/usr/bin/curl",
            ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "--proxy", "http://127.0.0.1:\(proxy.port)"] + extra + [url],
            timeout: 60)
        return (r.stdout, r.stderr)
    }

    /// Sends `request` as it is to the proxy and returns its status line.
    static func raw(_ proxy: EgressProxy, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        addr.sin_port = UInt16(proxy.port).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestFailure("connect to the proxy failed") }
        try writeAll(fd, request)
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
    }

    /// Whether `condition` holds within 10 s (polled every 20 ms).
    static func eventually(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// Waits (up to 10 s) for the record of `host`:`port` (squid logs a tunnel when it closes).
    static func record(_ proxy: EgressProxy, host: String, port: Int) throws -> EgressConnection {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let found = proxy.connections.last(where: { $0.host == host && $0.port == port }) { return found }
            usleep(20_000)
        }
        throw TestFailure("no record of \(host):\(port); records: \(proxy.connections.map(\.description))")
    }

    @Test("an allowlisted host fetches through the proxy; a host off the list is refused, live, with a reason naming it")
    func allowedAndRefused() throws {
        let started = try Self.start(.preset(.registries))
        defer { started.proxy.stop() }
        let proxy = started.proxy
        #expect(proxy.startupSeconds < 5)
        print("egress proxy: squid ready in \(Int(proxy.startupSeconds * 1000)) ms on 127.0.0.1:\(proxy.port)")

        let allowed = try Self.curl(proxy, "https://pypi.org/simple/pip/")
        #expect(allowed.code == "200", "\(allowed)")
        let pypi = try Self.record(proxy, host: "pypi.org", port: 443)
        #expect(pypi.allowed && pypi.reason == nil && pypi.method == "CONNECT" && pypi.status == 200)
        #expect(pypi.bytesUp > 500 && pypi.bytesDown > 10_000, "tunnel bytes: \(pypi)")
        #expect(pypi.serverAddress != nil)

        let refused = try Self.curl(proxy, "https://example.com/")
        #expect(refused.code == "000" && refused.stderr.contains("403"), "\(refused)")
        let example = try Self.record(proxy, host: "example.com", port: 443)
        #expect(!example.allowed)
        #expect(example.refusal == .notOnAllowlist)
        #expect(example.reason == "not on the allowlist")
        #expect(example.description == "CONNECT example.com:443 refused: not on the allowlist")
        // Handed over while squid runs (`-o wait` prints refusals as they happen), not only at stop.
        #expect(started.live.all.contains(example))
        #expect(proxy.isRunning)

        // Plain HTTP to a host off the list: refused too, and the record says GET.
        let plain = try Self.curl(proxy, "http://example.org/x")
        #expect(plain.code == "403")
        #expect(try Self.record(proxy, host: "example.org", port: 80).method == "GET")

        // The poll gives what came after a position, once.
        let (all, next) = proxy.connections(from: 0)
        #expect(all.count == next && next >= 3)
        #expect(proxy.connections(from: next).records.isEmpty)

        // The proxy's own files are in the directory; its logs are patchd's copies.
        let files = try FileManager.default.contentsOfDirectory(atPath: proxy.directory)
        #expect(Set(["squid.conf", "hosts", "access.log", "cache.log"]).isSubset(of: Set(files)), "\(files)")
        let accessLog = try String(contentsOfFile: proxy.directory + "/access.log", encoding: .utf8)
        #expect(accessLog.contains("notlisted CONNECT example.com"))
    }

    @Test("loopback, this server, cloud metadata and private addresses are refused when the client names them")
    func refusedByAddress() throws {
        let started = try Self.start(.preset(.registries))
        defer { started.proxy.stop() }
        let proxy = started.proxy
        var targets: [(url: String, host: String, port: Int, kind: String)] = [
            ("https://127.0.0.1/", "127.0.0.1", 443, "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", 80, "link-local"),
            ("https://10.1.2.3/", "10.1.2.3", 443, "private"),
            ("https://[::1]/", "[::1]", 443, "loopback"),
        ]
        let own = try #require(Self.ownAddress, "this machine has no non-loopback IPv4 address")
        targets.append(("https://\(own)/", own, 443, "this-server"))
        for target in targets {
            let result = try Self.curl(proxy, target.url)
            #expect(result.code == "000" || result.code == "403", "\(target.url): \(result)")
            let record = try Self.record(proxy, host: target.host, port: target.port)
            guard case .privateAddress(_, let kind) = record.refusal else {
                Issue.record("\(target.url): \(record)")
                continue
            }
            #expect(kind == target.kind, "\(record)")
            #expect(record.reason?.hasPrefix("private or local address (") == true)
        }
        let own32 = try Self.record(proxy, host: own, port: 443)
        #expect(own32.reason == "private or local address (\(own), this-server)")

        // Other spellings of loopback: IPv4-mapped IPv6, short and decimal forms. Refused, whatever the reason.
        for request in [
            "CONNECT [::ffff:127.0.0.1]:443 HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:443\r\n\r\n",
            "CONNECT 127.1:22 HTTP/1.1\r\nHost: 127.1:22\r\n\r\n",
            "CONNECT 2130706433:443 HTTP/1.1\r\nHost: 2130706433:443\r\n\r\n",
            "CONNECT 0x7f000001:443 HTTP/1.1\r\nHost: 0x7f000001:443\r\n\r\n",
            "GET http://0/ HTTP/1.1\r\nHost: 0\r\n\r\n",
        ] {
            let status = try Self.raw(proxy, request)
            #expect(status.contains(" 403 ") || status.contains(" 400 "), "\(request): \(status)")
        }
        let log = (try? String(contentsOfFile: proxy.directory + "/access.log", encoding: .utf8)) ?? ""
        #expect(proxy.connections.allSatisfy { !$0.allowed }, "\(proxy.connections.map(\.description))\n\(log)")
    }

    @Test("an allowlisted name that resolves to loopback, metadata, private or this server's address is refused")
    func refusedByResolvedName() throws {
        let own = try #require(Self.ownAddress)
        let hosts = """
            127.0.0.1 localhost
            127.0.0.1 evil.example
            169.254.169.254 metadata.evil.example
            10.0.0.5 private.evil.example
            \(own) self.evil.example
            ::1 six.evil.example
            203.0.113.80 mixed.evil.example
            127.0.0.1 mixed.evil.example

            """
        let policy = try EgressPolicy.parse(["evil.example", "*.evil.example", "evil.example:8080"], source: "test")
        let started = try Self.start(policy, hosts: hosts)
        defer { started.proxy.stop() }
        let proxy = started.proxy
        for (host, port, kind) in [
            ("evil.example", 443, "loopback"), ("metadata.evil.example", 443, "link-local"), ("private.evil.example", 443, "private"),
            ("self.evil.example", 443, "this-server"), ("six.evil.example", 443, "loopback"), ("evil.example", 8080, "loopback"),
            // One public and one loopback address: refused for the loopback one, whichever squid would try first.
            ("mixed.evil.example", 443, "loopback"),
        ] {
            let url = port == 8080 ? "http://\(host):8080/" : "https://\(host)/"
            let result = try Self.curl(proxy, url)
            #expect(result.code == "000" || result.code == "403", "\(url): \(result)")
            let record = try Self.record(proxy, host: host, port: port)
            guard case .privateAddress(_, let found) = record.refusal else {
                Issue.record("\(url) was not refused for its address: \(record)")
                continue
            }
            #expect(found == kind, "\(record)")
        }
        // The metadata name over plain HTTP, as a cloud SDK would ask.
        let metadata = try Self.curl(proxy, "http://metadata.evil.example/latest/meta-data/")
        #expect(metadata.code == "403")
    }

    @Test("a port or method the allowlist does not give is refused; wildcards allow subdomains, not the apex")
    func portsMethodsWildcards() throws {
        let policy = try EgressPolicy.parse(["pypi.org", "*.pythonhosted.org"], source: "test")
        let started = try Self.start(policy)
        defer { started.proxy.stop() }
        let proxy = started.proxy

        _ = try Self.curl(proxy, "https://pypi.org:8443/")
        #expect(try Self.record(proxy, host: "pypi.org", port: 8443).refusal == .portNotAllowed)
        // Plain HTTP to the CONNECT port, and CONNECT to the plain port: neither is given.
        #expect(try Self.curl(proxy, "http://pypi.org:443/").code == "403")
        #expect(try Self.record(proxy, host: "pypi.org", port: 443).refusal == .portNotAllowed)
        #expect(try Self.raw(proxy, "CONNECT pypi.org:80 HTTP/1.1\r\nHost: pypi.org:80\r\n\r\n").contains(" 403 "))
        #expect(try Self.curl(proxy, "http://pypi.org/", ["-X", "TRACE"]).code == "403")
        // squid logs after it answers: wait for the record as `record` does.
        #expect(Self.eventually { proxy.connections.contains { $0.method == "TRACE" && $0.refusal == .methodNotAllowed } })

        let files = try Self.curl(proxy, "https://files.pythonhosted.org/")
        #expect(files.code != "000", "\(files)")
        #expect(try Self.record(proxy, host: "files.pythonhosted.org", port: 443).allowed)
        _ = try Self.curl(proxy, "https://pythonhosted.org/")
        #expect(try Self.record(proxy, host: "pythonhosted.org", port: 443).refusal == .notOnAllowlist)
        _ = try Self.curl(proxy, "https://evilpythonhosted.org/")
        #expect(try Self.record(proxy, host: "evilpythonhosted.org", port: 443).refusal == .notOnAllowlist)
        // The cache manager is nobody's.
        #expect(try Self.raw(proxy, "GET cache_object://127.0.0.1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").contains(" 403 "))
    }

    @Test("an empty allowlist lets nothing out")
    func emptyPolicy() throws {
        let started = try Self.start(.none)
        defer { started.proxy.stop() }
        #expect(try Self.curl(started.proxy, "https://pypi.org/simple/pip/").code == "000")
        #expect(try Self.record(started.proxy, host: "pypi.org", port: 443).refusal == .notOnAllowlist)
    }

    @Test("stop ends squid and leaves no process, no shared memory; a tunnel still open at stop is recorded")
    func stopLeavesNothing() throws {
        let started = try Self.start(.preset(.registries))
        let proxy = started.proxy
        let pid = proxy.pid
        let cmdline = try #require(readSmallFile("/proc/\(pid)/cmdline"), "squid is not running")
        let service = try #require(cmdline.split(separator: "\0").drop { $0 != "-n" }.dropFirst().first.map(String.init))
        #expect(service.hasPrefix("patchd\(getpid())x"))
        #expect(Self.squidProcesses(mentioning: proxy.directory).count == 1)

        // A tunnel held open (a slow download) while stop is called.
        let slow = try ChildProcess(
            executable: "/usr/bin/curl",
            arguments: ["-sS", "-o", "/dev/null", "--limit-rate", "1k", "--proxy", "http://127.0.0.1:\(proxy.port)", "https://pypi.org/simple/pip/"],
            environment: clientEnvironment(), stdout: .null, stderr: .null)
        defer { slow.signalGroup(SIGKILL) }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !FileManager.default.fileExists(atPath: "/proc/\(pid)") { usleep(10_000) }
        usleep(1_500_000)
        let began = Date()
        let records = proxy.stop()
        let took = Date().timeIntervalSince(began)
        print("egress proxy: stop took \(Int(took * 1000)) ms")
        #expect(took < 5)
        #expect(records.contains { $0.host == "pypi.org" && $0.allowed }, "\(records.map(\.description))")
        #expect(!proxy.isRunning)
        #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)"))
        #expect(Self.squidProcesses(mentioning: proxy.directory).isEmpty)
        let shm = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        #expect(!shm.contains { $0.hasPrefix(service) }, "\(shm)")
        proxy.stop()  // idempotent
    }

    @Test("a proxy dropped without stop, or stopped with no grace, is killed and cleaned up")
    func killedWithoutGrace() throws {
        var pid: Int32 = 0
        var directory = ""
        do {
            let started = try Self.start(.none)
            pid = started.proxy.pid
            directory = started.proxy.directory
            started.proxy.stop(grace: 0)
            #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)"))
        }
        #expect(Self.squidProcesses(mentioning: directory).isEmpty)
        do {
            let started = try Self.start(.none)
            pid = started.proxy.pid
            directory = started.proxy.directory
        }
        #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)"))
        #expect(Self.squidProcesses(mentioning: directory).isEmpty)
        let shm = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        #expect(!shm.contains { $0.hasPrefix("patchd\(getpid())x") }, "\(shm)")
    }

    @Test("a squid that fails or never listens: a clear error with its own words, and nothing left running")
    func startFailures() throws {
        let dir = TempDir("patchd-egress-fail")
        let failing = dir.path + "/failing-squid"
        try "#!/bin/sh\necho '2026/12/05 12:00:00| FATAL: a test squid refuses to start' >&2\nexit 1\n"
            .write(toFile: failing, atomically: true, encoding: .utf8)
        let silent = dir.path + "/silent-squid"
        try "#!/bin/sh\necho 'squid: thinking' >&2\nsleep 987.25 &\nwait\n".write(toFile: silent, atomically: true, encoding: .utf8)
        chmod(failing, 0o755)
        chmod(silent, 0o755)
        do {
            _ = try EgressProxy(policy: .none, directory: dir.path + "/a", squidPath: failing)
            Issue.record("a failing squid started")
        } catch {
            #expect(error.description.contains("squid exited (status 1) before listening"), "\(error)")
            #expect(error.description.contains("FATAL: a test squid refuses to start"), "\(error)")
            #expect(error.log.contains { $0.contains("FATAL") })
        }
        let began = Date()
        do {
            _ = try EgressProxy(policy: .none, directory: dir.path + "/b", readyTimeout: 0.5, squidPath: silent)
            Issue.record("a silent squid started")
        } catch {
            #expect(error.description.contains("did not listen on 127.0.0.1:"), "\(error)")
            #expect(error.description.contains("squid: thinking"), "\(error)")
        }
        #expect(Date().timeIntervalSince(began) < 5)
        // Neither the script nor the child it started outlives the failed start.
        #expect(Self.processes(mentioning: silent).isEmpty, "the silent squid is still running")
        #expect(Self.processes(mentioning: "987.25").isEmpty, "the silent squid's child is still running")
        do {
            _ = try EgressProxy(policy: .none, directory: dir.path + "/c", squidPath: dir.path + "/no-such-squid")
            Issue.record("started a squid that does not exist")
        } catch {
            #expect(error.description.contains("install Debian's squid"), "\(error)")
        }
    }

    @Test("figures: start-to-ready over 10 starts, squid's resident memory, a graceful stop (docs/PERFORMANCE.md)")
    func figures() throws {
        var ready: [Double] = []
        var resident: [Int] = []
        for _ in 0..<10 {
            let started = try Self.start(.preset(.registries))
            ready.append(started.proxy.startupSeconds)
            let status = readSmallFile("/proc/\(started.proxy.pid)/status") ?? ""
            if let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
            {
                resident.append(kib)
            }
            started.proxy.stop(grace: 0)
        }
        ready.sort()
        let started = try Self.start(.preset(.registries))
        let began = Date()
        started.proxy.stop()
        let stop = Date().timeIntervalSince(began)
        let ms = { (seconds: Double) in String(format: "%.1f", seconds * 1000) }
        print(
            "egress proxy figures: start-to-ready median \(ms(ready[ready.count / 2])) ms, min \(ms(ready[0])) ms, max \(ms(ready[ready.count - 1])) ms;"
                + " squid VmRSS \(resident.max() ?? 0) KiB; graceful stop \(ms(stop)) ms")
        #expect(ready[ready.count / 2] < 1.0, "squid took \(ready) s to listen")
        #expect(resident.count == 10)
    }

    @Test("the generated configuration parses cleanly in squid for a policy with every kind of entry")
    func configurationParses() throws {
        let policy = try EgressPolicy.parse(["preset:registries", "*.example.org", "a.example.net:8443", "b.example.net:8443"], source: "test")
        let dir = TempDir("patchd-egress-conf")
        let config = SquidConfiguration(
            policy: policy, port: 3128, blocked: BlockedAddresses.current(), effectiveUser: geteuid() == 0 ? "proxy" : nil)
        try config.render().write(toFile: dir.path + "/squid.conf", atomically: true, encoding: .utf8)
        let squid = try Executable.find("squid", path: "/usr/sbin:/usr/bin:/sbin:/bin")
        let r = try run(squid, ["-k", "parse", "-f", dir.path + "/squid.conf"])
        #expect(r.status == 0, "\(r.output)")
        let complaints = r.output.split(separator: "\n").filter {
            ($0.contains("WARNING") || $0.contains("ERROR") || $0.contains("FATAL")) && !$0.contains("HTTP requires the use of Via")
        }
        #expect(complaints.isEmpty, "\(complaints)")
    }

    /// Live processes whose command line mentions `text`.
    static func processes(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil && (readSmallFile("/proc/\($0)/cmdline")?.contains(text) ?? false) }
    }

    /// Live processes whose command line mentions `text` (the proxy's directory is in squid's -f argument).
    static func squidProcesses(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.compactMap { entry in
            guard let cmdline = readSmallFile("/proc/\(entry)/cmdline"), cmdline.contains(text),
                cmdline.hasPrefix("squid") || cmdline.contains("/squid\0")
            else { return nil }
            return entry
        }
    }
}
