// Egress: the squid child process: spawning it with its log pipes, reading them, ending it and all it left.

import Foundation
import PatchdSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One squid process and the two threads reading its stdout (access log lines) and stderr (its
/// cache.log). `EgressProxy` is its only user.
final class SquidProcess: Sendable {
    /// The user squid switches to when started as root.
    struct User: Sendable {
        let name: String
        let uid: uid_t
        let gid: gid_t

        /// `proxy` when this process is root (squid refuses to run as root), else nil.
        static func current() throws(EgressProxyError) -> User? {
            guard geteuid() == 0 else { return nil }
            guard let entry = getpwnam("proxy") else {
                throw .setup(
                    "running as root, squid needs the user 'proxy' to switch to; create it (adduser --system --group proxy) or run patchd as another user"
                )
            }
            return User(name: "proxy", uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
        }
    }

    private struct State: ~Copyable {
        var child: ChildProcess?
        var pid: pid_t = 0
        var records: [EgressConnection] = []
        /// Records beyond `recordLimit`: counted, handed to `onConnection`, not kept.
        var dropped = 0
        var logTail: [String] = []
        var listening = false
        var bindFailed = false
        var stopping = false
        var readers: [OSThread] = []
    }

    private let directory: String
    private let recordLimit: Int
    private let onConnection: (@Sendable (EgressConnection) -> Void)?
    /// squid's service name (`-n`, alphanumeric): unique, so its shared memory segments in /dev/shm are its own.
    private let service = "patchd\(getpid())x\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    private let state = Mutex(State())

    /// What squid says once its port is open.
    static let listeningLine = "Accepting HTTP Socket connections at"

    init(directory: String, recordLimit: Int, onConnection: (@Sendable (EgressConnection) -> Void)?) {
        self.directory = directory
        self.recordLimit = recordLimit
        self.onConnection = onConnection
    }

    var pid: pid_t { state.withLock { $0.pid } }
    var bindFailed: Bool { state.withLock { $0.bindFailed } }
    var dropped: Int { state.withLock { $0.dropped } }

    var isRunning: Bool {
        state.withLock { s in
            guard let child = s.child else { return false }
            return child.poll() == nil
        }
    }

    func records(from index: Int) -> (records: [EgressConnection], next: Int) {
        state.withLock { s in
            let start = min(max(index, 0), s.records.count)
            return (Array(s.records[start...]), s.records.count)
        }
    }

    /// Writes squid.conf, spawns squid and waits until it accepts connections.
    func start(executable: String, config: SquidConfiguration, user: User?, readyTimeout: Double) throws(EgressProxyError) {
        let configPath = directory + "/squid.conf"
        let fm = FileManager.default
        try? fm.removeItem(atPath: configPath)
        guard fm.createFile(atPath: configPath, contents: Data(config.render().utf8), attributes: [.posixPermissions: 0o600]) else {
            throw .setup("cannot write \(configPath)")
        }
        let hostsPath = directory + "/hosts"
        let hosts = open(hostsPath, O_RDONLY | O_CLOEXEC)
        guard hosts >= 0 else { throw .setup("cannot open \(hostsPath): \(String(cString: strerror(errno)))") }
        defer { close(hosts) }
        let outRead: Int32
        let errRead: Int32
        do {
            let out = try PipePair()
            let err = try PipePair()
            if let user {
                // squid reopens /dev/stdout and /dev/stderr after switching to `user`: the pipe's own
                // permissions then decide, so the write ends become that user's.
                try checked("fchown", "access log pipe") { fchown(out.write.raw, user.uid, user.gid) }
                try checked("fchown", "cache log pipe") { fchown(err.write.raw, user.uid, user.gid) }
            }
            let (outWrite, errWrite, arguments) = (out.write.raw, err.write.raw, ["-N", "-n", service, "-f", configPath])
            // Made inside the lock: the child (not Sendable) then never leaves the state it belongs to.
            try state.withLock { (s) throws(SystemError) in
                let child = try ChildProcess(
                    executable: executable, arguments: arguments,
                    environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"], workingDirectory: "/",
                    stdin: .fd(hosts), stdout: .fd(outWrite), stderr: .fd(errWrite))
                s.pid = child.pid
                s.child = child
            }
            out.write.close()
            err.write.close()
            outRead = out.read.release()
            errRead = err.read.release()
        } catch {
            throw .setup("cannot start \(executable): \(error)")
        }
        let accessLog = directory + "/access.log"
        let cacheLog = directory + "/cache.log"
        let logs = [(outRead, accessLog, true), (errRead, cacheLog, false)]
        for (index, (fd, file, isAccessLog)) in logs.enumerated() {
            do {
                let thread = try OSThread(name: isAccessLog ? "egress-log" : "egress-cachelog") { [self] in
                    readLines(fd, file: file) { isAccessLog ? record($0) : squidSaid($0) }
                }
                state.withLock { $0.readers.append(thread) }
            } catch {
                // The readers already started close their own ends; these have none.
                for (unread, _, _) in logs[index...] { close(unread) }
                throw .setup("no thread to read squid's logs: \(error)")
            }
        }
        try waitUntilListening(port: config.port, timeout: readyTimeout)
    }

    /// Polls until squid says it listens and a connection to the port succeeds, or it exits, or `timeout` passes.
    private func waitUntilListening(port: Int, timeout: Double) throws(EgressProxyError) {
        let deadline = MonotonicClock.now + timeout
        while MonotonicClock.now < deadline {
            let (listening, exit) = state.withLock { s in (s.listening, s.child?.poll()) }
            if listening && Self.accepts(port: port) { return }
            if let exit {
                // Let the reader catch squid's last words.
                usleep(50_000)
                let (bindFailed, tail) = state.withLock { ($0.bindFailed, $0.logTail) }
                throw .startFailed(
                    bindFailed ? "squid could not bind 127.0.0.1:\(port)" : "squid exited (status \(exit)) before listening", log: tail)
            }
            usleep(2_000)
        }
        throw .startFailed("squid did not listen on 127.0.0.1:\(port) within \(timeout) s", log: state.withLock { $0.logTail })
    }

    /// 127.0.0.1:`port`.
    static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }

    /// Whether something accepts a TCP connection on 127.0.0.1:`port`.
    private static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = loopback(port: port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    // MARK: - Logs

    /// Reads `fd` to its end (or, once stopping, until it is quiet), appending everything to `file`
    /// and handing each complete line to `handle`. A line longer than `EgressLogFormat.maxLineBytes`
    /// is dropped (squid never writes one; memory stays bounded).
    private func readLines(_ fd: Int32, file: String, handle: (Substring) -> Void) {
        defer { close(fd) }
        let out = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { if out >= 0 { close(out) } }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 100)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 {
                if state.withLock({ $0.stopping }) { break }
                continue
            }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            if out >= 0 { try? writeAll(out, Array(chunk[0..<n])) }
            pending += chunk[0..<n]
            var lineStart = 0
            while let newline = pending[lineStart...].firstIndex(of: 0x0A) {
                if newline - lineStart <= EgressLogFormat.maxLineBytes {
                    handle(Substring(String(decoding: pending[lineStart..<newline], as: UTF8.self)))
                }
                lineStart = newline + 1
            }
            pending.removeSubrange(..<lineStart)
            if pending.count > EgressLogFormat.maxLineBytes { pending.removeAll() }
        }
        if !pending.isEmpty { handle(Substring(String(decoding: pending, as: UTF8.self))) }
    }

    /// One access log line.
    private func record(_ line: Substring) {
        guard let connection = EgressLogFormat.parse(line) else { return }
        state.withLock { s in
            if s.records.count < recordLimit { s.records.append(connection) } else { s.dropped += 1 }
        }
        onConnection?(connection)
    }

    /// One line of squid's cache.log (its stderr): kept for errors, watched for readiness.
    private func squidSaid(_ line: Substring) {
        let text = String(line.prefix(500))
        state.withLock { s in
            if text.contains(Self.listeningLine) { s.listening = true }
            if text.contains("Address already in use") { s.bindFailed = true }
            s.logTail.append(text)
            if s.logTail.count > 40 { s.logTail.removeFirst(s.logTail.count - 40) }
        }
    }

    // MARK: - Stopping

    /// SIGTERM to squid's group, SIGKILL after `grace`, then whatever is left in the group; joins
    /// the readers; removes the shared memory segments. Idempotent.
    func shutDown(grace: Double) {
        let (child, readers) = state.withLock { s -> (ChildProcess?, [OSThread]) in
            let taken = (s.child, s.readers)
            s.child = nil
            s.readers = []
            return taken
        }
        if let child {
            let group = child.pid
            if child.poll() == nil {
                child.signalGroup(SIGTERM)
                let deadline = MonotonicClock.now + grace
                while child.poll() == nil && MonotonicClock.now < deadline { usleep(10_000) }
                if child.poll() == nil {
                    child.signalGroup(SIGKILL)
                    child.wait()
                }
            }
            // squid -N starts no helper with this configuration; anything left in its group goes anyway.
            for member in Self.processes(inGroup: group) { kill(member, SIGKILL) }
        }
        state.withLock { $0.stopping = true }
        for reader in readers { reader.join() }
        removeSharedMemory()
    }

    /// Processes whose process group is `group` (from /proc/PID/stat).
    static func processes(inGroup group: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [pid_t] = []
        for entry in entries {
            guard let pid = pid_t(entry), let stat = readSmallFile("/proc/\(entry)/stat") else { continue }
            // After the command name's closing parenthesis: state, ppid, pgrp.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, pid_t(fields[2]) == group { out.append(pid) }
        }
        return out
    }

    /// squid's segments in /dev/shm (SERVICE-cf__*.shm): it removes them when it exits cleanly, not when killed.
    private func removeSharedMemory() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm") else { return }
        for entry in entries where entry.hasPrefix(service + "-") && entry.hasSuffix(".shm") {
            unlink("/dev/shm/" + entry)
        }
    }
}
