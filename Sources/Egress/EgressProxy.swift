// Egress: one squid per run on a loopback port, configured from the run's allowlist, its connections recorded.

import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// A run's HTTP/HTTPS forward proxy: Debian's squid, started in the foreground (`squid -N`) with a
/// configuration generated into the run's directory, listening on 127.0.0.1 at `port`, allowing
/// only what the `EgressPolicy` allows and never a private or local address (`SquidConfiguration`).
///
/// squid writes its access log (one `EgressLogFormat` line per request, a CONNECT tunnel when it
/// closes) to a pipe patchd reads: each line becomes an `EgressConnection`, handed to
/// `onConnection` at once and kept for `connections`; the raw lines also go to `access.log` in
/// the directory, squid's own messages to `cache.log` there.
///
/// As root, squid switches to the `proxy` user after it started (it refuses to run as root): the
/// pipes it writes to are given to that user, and the hosts file reaches it as stdin, so nothing
/// under the run's directory needs to be readable by `proxy`.
///
/// Blocking: `init` (about 30 ms) and `stop` (1 to 2 s, at most `grace`) block the calling thread;
/// call them from a run's own thread (`OSThread`), not from Swift's cooperative pool. The log
/// readers run on their own threads; `onConnection` is called on one of them.
package final class EgressProxy: Sendable {
    /// The loopback port squid listens on (127.0.0.1).
    package let port: Int
    /// The directory holding squid.conf, hosts, access.log, cache.log.
    package let directory: String
    /// From spawning squid to its accepting connections.
    package let startupSeconds: Double
    /// squid's process id (the leader of its own process group).
    package let pid: Int32

    private let squid: SquidProcess

    /// Where squid is looked for after PATH: Debian installs it in /usr/sbin.
    static let sbinPath = "/usr/local/sbin:/usr/sbin:/sbin"

    /// Starts squid and returns once it accepts connections.
    /// - Parameters:
    ///   - policy: what the run may reach.
    ///   - directory: the run's scratch directory for the proxy's files (created 0700 if missing).
    ///   - hostsFile: the hosts file squid consults before DNS (`/etc/hosts`; tests give their own).
    ///   - readyTimeout: how long squid may take to listen.
    ///   - recordLimit: records kept in memory (a run looping on connections cannot grow patchd without bound).
    ///   - squidPath: the squid to run; nil finds `squid` in PATH, then /usr/local/sbin, /usr/sbin, /sbin.
    ///   - onConnection: each record as squid writes it (refusals at once, a tunnel when it closes),
    ///     on the log reader's thread: return quickly (squid waits on a full pipe).
    /// - Throws: `EgressProxyError` naming what failed, with squid's last lines when it was squid.
    package init(
        policy: EgressPolicy, directory: String, hostsFile: String = "/etc/hosts", readyTimeout: Double = 10,
        recordLimit: Int = 100_000, squidPath: String? = nil, onConnection: (@Sendable (EgressConnection) -> Void)? = nil
    ) throws(EgressProxyError) {
        let executable: String
        do {
            let path = (getenv("PATH").map { String(cString: $0) } ?? Executable.defaultPath) + ":" + Self.sbinPath
            executable = try Executable.find(squidPath ?? "squid", path: path)
        } catch {
            throw .squidNotFound(error)
        }
        let user = try SquidProcess.User.current()
        try Self.prepare(directory: directory, hostsFile: hostsFile)
        let blocked = BlockedAddresses.current()
        var lastError = EgressProxyError.setup("squid could not bind a loopback port in 5 tries")
        // A free port is found by binding port 0 and closing it; another process may take it before
        // squid binds it, so a bind failure is retried with a new one.
        for _ in 0..<5 {
            let candidate: Int
            do { candidate = try Self.freeLoopbackPort() } catch { throw .setup("no free loopback port: \(error)") }
            let config = SquidConfiguration(policy: policy, port: candidate, blocked: blocked, effectiveUser: user?.name)
            let process = SquidProcess(directory: directory, recordLimit: recordLimit, onConnection: onConnection)
            let started = MonotonicClock.now
            do {
                try process.start(executable: executable, config: config, user: user, readyTimeout: readyTimeout)
            } catch {
                process.shutDown(grace: 0)
                lastError = error
                if process.bindFailed { continue }
                throw error
            }
            self.startupSeconds = MonotonicClock.now - started
            self.port = candidate
            self.pid = process.pid
            self.directory = directory
            self.squid = process
            return
        }
        throw lastError
    }

    deinit {
        squid.shutDown(grace: 0)
    }

    /// Every record so far (up to `recordLimit`), in the order squid wrote them.
    package var connections: [EgressConnection] { squid.records(from: 0).records }

    /// The records from position `index` on, and the position to ask from next time (a poll).
    package func connections(from index: Int) -> (records: [EgressConnection], next: Int) {
        squid.records(from: index)
    }

    /// Records not kept because `recordLimit` was reached.
    package var droppedRecords: Int { squid.dropped }

    /// Whether squid is still running (false once it exited or was stopped).
    package var isRunning: Bool { squid.isRunning }

    /// Ends squid for sure: SIGTERM (it then logs the tunnels still open and exits, in 1 to 2 s),
    /// SIGKILL after `grace` seconds, then any process left in its process group; reads the last
    /// log lines and removes squid's shared memory segments. Idempotent.
    /// - Returns: every record, as `connections`.
    @discardableResult
    package func stop(grace: Double = 3) -> [EgressConnection] {
        squid.shutDown(grace: grace)
        return connections
    }

    /// The directory, and in it a copy of the hosts file readable by all (it reaches squid as its
    /// stdin, which it reopens as /dev/stdin after switching user).
    private static func prepare(directory: String, hostsFile: String) throws(EgressProxyError) {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .setup("cannot create \(directory): \(error.localizedDescription)")
        }
        guard let hosts = fm.contents(atPath: hostsFile) else {
            throw .setup("cannot read the hosts file \(hostsFile)")
        }
        let copy = directory + "/hosts"
        try? fm.removeItem(atPath: copy)
        guard fm.createFile(atPath: copy, contents: hosts, attributes: [.posixPermissions: 0o644]) else {
            throw .setup("cannot write \(copy)")
        }
    }

    /// A loopback TCP port nobody was bound to a moment ago.
    private static func freeLoopbackPort() throws(SystemError) -> Int {
        let fd = try checked("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        defer { close(fd) }
        var addr = SquidProcess.loopback(port: 0)
        try checked("bind", "127.0.0.1:0") {
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try checked("getsockname") {
            withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
