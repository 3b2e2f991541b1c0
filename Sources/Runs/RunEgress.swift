// Runs: one run's egress: its network mode and allowlist, the squid proxy while an allowed phase runs, the bridge into the sandbox, and the record of every connection.

package import Egress
import Foundation
package import PatchdCore
import PatchdSystem
package import Sandboxing
import Synchronization

/// What the server decides about egress for every run (config `network`, `allowed_domains`).
package struct EgressSettings: Sendable, Equatable {
    /// The most any repository or task gets.
    package var cap: NetworkMode
    /// The server's allowlist entries (`preset:registries` by default).
    package var allowedDomains: [String]
    /// The hosts file squid reads before DNS (tests give their own).
    package var hostsFile: String

    package static let defaultAllowedDomains = ["preset:registries"]

    package init(cap: NetworkMode = .setup, allowedDomains: [String] = defaultAllowedDomains, hostsFile: String = "/etc/hosts") {
        self.cap = cap
        self.allowedDomains = allowedDomains
        self.hostsFile = hostsFile
    }
}

/// A run's egress, from before setup to the end of the run. The sandbox keeps its own network
/// namespace with no route out; the only way out is 127.0.0.1:3128 inside it, where a socat
/// (started when the sandbox opens, for the whole run) forwards to a unix socket bound in from
/// the run's scratch directory. Outside, a second socat listens on that socket and forwards to
/// squid (`EgressProxy`) on the host's loopback, only while a phase the mode allows runs: when
/// that phase ends the listener goes (and its tunnels with it), so a later phase finds no way
/// out even though the sandbox is the same. squid starts on the first allowed phase that has a
/// command, so runs without setup pay nothing.
package final class RunEgress: Sendable {
    /// The port commands reach the proxy at, inside the sandbox.
    package static let insidePort = 3128
    /// Where the bridge socket's directory is bound inside the sandbox.
    static let insideDirectory = "/patchd/egress"

    package let mode: NetworkMode
    let policy: EgressPolicy
    let entries: [String]
    let scratch: String
    let hostsFile: String
    /// The repository's name, for the hints a refusal prints.
    let repository: String
    let log: @Sendable (RunEvent) -> Void

    private struct State {
        var proxy: EgressProxy?
        var bridge: Bridge?
        var phase: RunPhase = .setup
        var record: RunNetworkRecord
    }
    private let state: Mutex<State>

    /// The run's mode and allowlist, from the task, the repository and the server.
    /// - Throws: `EgressPolicyError` for an entry that is not a host name, a wildcard or a preset,
    ///   naming where it was written.
    package init(
        task: TaskSpec, repository: RepoSettings, server: EgressSettings, scratch: String, repositoryName: String = "REPO",
        log: @escaping @Sendable (RunEvent) -> Void
    ) throws(EgressPolicyError) {
        mode = NetworkMode.effective(task: task.network, repository: repository.network, serverCap: server.cap)
        let serverPolicy = try EgressPolicy.parse(server.allowedDomains, source: "the server's allowed_domains")
        let repoPolicy = try EgressPolicy.parse(repository.allowedDomains ?? [], source: "the repository's allowed-domains")
        let taskPolicy = try EgressPolicy.parse(task.allowedDomains ?? [], source: "the task's allowed_domains")
        policy = serverPolicy.union(repoPolicy).union(taskPolicy)
        entries = policy.entries.map(\.description)
        self.scratch = scratch
        self.hostsFile = server.hostsFile
        self.repository = repositoryName
        self.log = log
        state = Mutex(State(record: RunNetworkRecord(mode: mode.rawValue, allowlist: entries)))
        if let asked = task.network ?? repository.network, asked > server.cap {
            log(
                RunEvent(
                    .network,
                    "network: \(asked.rawValue) was asked; this server allows at most \(server.cap.rawValue) "
                        + "(its admin raises that with `network: \(asked.rawValue)` in the server's config file)"))
        }
    }

    /// The bind of the bridge socket's directory, to declare when the sandbox opens.
    package var bind: SandboxBind { SandboxBind(host: hostDirectory, inside: Self.insideDirectory, writable: false) }
    var hostDirectory: String { scratch + "/egress" }
    var socketPath: String { hostDirectory + "/proxy.sock" }

    /// The variables that point the common tools at the proxy inside the sandbox.
    package var environment: [String: String] {
        let url = "http://127.0.0.1:\(Self.insidePort)"
        var env: [String: String] = [:]
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"] { env[name] = url }
        env["NO_PROXY"] = "localhost,127.0.0.1,::1"
        env["no_proxy"] = env["NO_PROXY"]
        // npm and yarn read their own settings first; cargo and go, pip and git read the above.
        env["npm_config_proxy"] = url
        env["npm_config_https_proxy"] = url
        env["YARN_HTTP_PROXY"] = url
        env["YARN_HTTPS_PROXY"] = url
        env["CARGO_HTTP_PROXY"] = url
        return env
    }

    /// The proxy settings for one phase's command: empty when the mode keeps that phase offline.
    package func environment(for phase: RunPhase) -> [String: String] { mode.allows(phase) ? environment : [:] }

    /// The command that starts the in-sandbox end (run once when the sandbox opens): a socat
    /// in its own session, so it outlives that command and serves every later one. The command
    /// waits until it listens: the command's process group is killed when it ends, and a socat
    /// that had not yet left it would go with it.
    package var insideListenerScript: String {
        let port = String(Self.insidePort, radix: 16, uppercase: true)
        let hexPort = String(repeating: "0", count: max(0, 4 - port.count)) + port
        return """
            setsid socat TCP-LISTEN:\(Self.insidePort),bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:\(Self.insideDirectory)/proxy.sock </dev/null >/dev/null 2>&1 &
            for i in $(seq 500); do grep -q ':\(hexPort) 00000000:0000 0A' /proc/net/tcp && exit 0; sleep 0.01; done
            echo 'socat did not listen on 127.0.0.1:\(Self.insidePort)' >&2; exit 1
            """
    }

    /// Creates the bridge directory (before the sandbox opens: it is bound in).
    package func prepare() throws {
        try FileManager.default.createDirectory(atPath: hostDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    }

    /// Opens the way out when `phase` may use it and closes it otherwise. Returns an error text
    /// when the proxy could not start (the phase then runs without a way out, as under `none`).
    @discardableResult
    package func enter(_ phase: RunPhase) -> String? {
        state.withLock { $0.phase = phase }
        guard mode.allows(phase) else {
            closeBridge()
            return nil
        }
        do {
            try openBridge()
            return nil
        } catch {
            let text = "the egress proxy could not start: \(error)"
            log(RunEvent(.error, "network: \(text); \(phase.rawValue) runs without network"))
            return text
        }
    }

    /// Ends the proxy and the bridge; returns the run's network record (every connection).
    package func finish() -> RunNetworkRecord {
        closeBridge()
        let proxy = state.withLock { s in
            defer { s.proxy = nil }
            return s.proxy
        }
        if let proxy {
            // The bridge is gone, so every tunnel is closed and squid logs each as it notices:
            // wait until its log has been quiet for 30 ms (at most 300 ms), then end it at once.
            // A graceful squid shutdown takes 1-2 s, all of it added to every run.
            let started = MonotonicClock.now
            var seen = proxy.connections(from: 0).next
            var quietSince = started
            while MonotonicClock.now - quietSince < 0.03 && MonotonicClock.now - started < 0.3 {
                usleep(5_000)
                let next = proxy.connections(from: seen).next
                if next != seen { (seen, quietSince) = (next, MonotonicClock.now) }
            }
            proxy.stop(grace: 0)
        }
        return state.withLock { $0.record }
    }

    private func openBridge() throws {
        let (running, bridged) = state.withLock { ($0.proxy, $0.bridge != nil) }
        if bridged { return }
        let proxy: EgressProxy
        if let running {
            proxy = running
        } else {
            proxy = try EgressProxy(
                policy: policy, directory: scratch + "/egress-proxy", hostsFile: hostsFile,
                recordLimit: RunNetworkRecord.maxConnections + 1
            ) { [weak self] connection in self?.observe(connection) }
            state.withLock { $0.proxy = proxy }
            log(RunEvent(.network, "network: proxy ready in \(Int(proxy.startupSeconds * 1000)) ms; allowed: \(entries.joined(separator: " "))"))
        }
        unlink(socketPath)
        let socat = try Executable.find("socat")
        let bridge = try ChildProcess(
            executable: socat,
            arguments: ["UNIX-LISTEN:\(socketPath),fork,mode=0666", "TCP:127.0.0.1:\(proxy.port)"],
            environment: [:], stdin: .null, stdout: .null, stderr: .null)
        // Ready when the socket exists (socat binds before it accepts).
        let deadline = MonotonicClock.now + 5
        while access(socketPath, F_OK) != 0 && MonotonicClock.now < deadline && bridge.poll() == nil { usleep(2000) }
        guard access(socketPath, F_OK) == 0 else {
            bridge.signalGroup(SIGKILL)
            _ = bridge.wait()
            throw SandboxSetupError("socat did not listen on \(socketPath)")
        }
        let held = Bridge(bridge)
        state.withLock { $0.bridge = held }
    }

    private func closeBridge() {
        guard
            let bridge = state.withLock({ s in
                defer { s.bridge = nil }; return s.bridge
            })
        else { return }
        // Its forked children hold the open tunnels: the whole group goes.
        bridge.process.signalGroup(SIGKILL)
        _ = bridge.process.wait()
        unlink(socketPath)
    }

    private func observe(_ connection: EgressConnection) {
        let phase = state.withLock { s -> RunPhase in
            s.record.append(
                RunNetworkRecord.Connection(
                    at: RunJSON.iso(connection.time), phase: s.phase.rawValue, method: connection.method, host: connection.host,
                    port: connection.port, bytesUp: connection.bytesUp, bytesDown: connection.bytesDown,
                    allowed: connection.allowed, reason: connection.reason, status: connection.status))
            return s.phase
        }
        if connection.allowed, connection.status >= 500 {
            // Allowed, but squid could not reach it (no DNS answer, refused, timed out).
            log(
                RunEvent(
                    .network,
                    "network: \(connection.method) \(connection.host):\(connection.port) in \(phase.rawValue) was allowed but failed upstream "
                        + "(the proxy answered \(connection.status)): the host did not resolve or answer from this server"))
        }
        if let reason = connection.reason {
            log(
                RunEvent(
                    .network,
                    "network: refused \(connection.method) \(connection.host):\(connection.port) in \(phase.rawValue): \(reason)"
                        + Self.hint(connection.refusal, host: connection.host, port: connection.port, repository: repository)))
        }
    }

    /// The outside socat. Only touched by whoever took it out of `state` under the lock.
    private final class Bridge: @unchecked Sendable {
        let process: ChildProcess
        init(_ process: ChildProcess) { self.process = process }
    }

    /// How to let a refused host through, when that is what the user may want.
    static func hint(_ refusal: EgressRefusal?, host: String, port: Int, repository: String) -> String {
        let entry: String
        switch refusal {
        case .notOnAllowlist?: entry = host
        case .portNotAllowed?: entry = "\(host):\(port)"
        default: return ""
        }
        return " (to allow it: `allowed_domains: [\(entry)]` in the task, or "
            + "`ssh HOST \(ShellQuote.command(["repo", "config", repository, "allowed-domains", entry]))`, which replaces the repository's list)"
    }
}
