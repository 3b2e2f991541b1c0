// Sandboxing: a run sandbox driven through a small bash init inside it (bwrap and container): commands enter by request, output comes back through FIFOs.
import Foundation
import PatchdSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The long-lived process of a run sandbox (bwrap, or the container) runs `script` below with
/// bash: it reads requests on its stdin, one per line, from the daemon alone:
///
/// - `run N` / `shell N`: start command N of the control directory (read-only inside):
///   `N.sh` (the script), `N.env` (NUL-separated NAME=VALUE), output to the FIFO `N.out`,
///   status lines `pid P` and `exit S` to the FIFO `N.rc`; `shell` also reads stdin from the
///   FIFO `N.in`. The command runs with `setsid`: its own session and process group, so it
///   can be killed without the rest of the run.
/// - `kill P`: SIGKILL process group P (again, while any of it is left).
///
/// Why an init rather than `nsenter`: joining another process's user, mount and pid namespaces
/// needs privileges in them (as root it also needs care not to carry the daemon's capabilities
/// in), and the command would miss bwrap's setup (no_new_privs, capability drop, the private
/// root). A process that is already inside inherits all of it; bash is the one program both
/// the host /usr and the container image are sure to have, and `read`, `kill` and `wait` are
/// builtins, so requests are served even when the process cap refuses forks.
enum SandboxInit {
    static let script = #"""
        C=$1
        printf 'ready\n'
        exec 1>/dev/null
        while IFS=' ' read -r op n; do
          [[ $n =~ ^[0-9]{1,9}$ ]] || continue
          case $op in
            run|shell)
              (
                exec 3>"$C/$n.rc" || exit 1
                if [[ $op == shell ]]; then exec 4<"$C/$n.in"; else exec 4</dev/null; fi
                exec 1>"$C/$n.out" 2>&1 || exit 1
                mapfile -d '' -t e < "$C/$n.env"
                # stdin explicitly: a background job's would be /dev/null.
                env -i "${e[@]}" setsid /bin/bash --noprofile --norc "$C/$n.sh" 0<&4 3>&- 4<&- &
                p=$!
                exec 4<&- 1>/dev/null 2>&1
                printf 'pid %d\n' "$p" >&3
                wait "$p"
                printf 'exit %d\n' "$?" >&3
              ) &
              ;;
            kill)
              (( n > 1 )) && for i in 1 2 3 4 5 6 7 8; do kill -KILL -- "-$n" 2>/dev/null || break; done
              ;;
          esac
        done
        """#

    /// The init's argv after the program that enters the sandbox.
    static func command(controlInside: String) -> [String] {
        ["/bin/bash", "--noprofile", "--norc", "-c", script, "patchd-init", controlInside]
    }
}

/// A limit probe over the run's cgroup for one command: it counts only what happened since
/// the command started (the cgroup is the run's). Killing is the init's (`kill P`).
final class CommandDeltaProbe: ProcessLimitProbe {
    let forks: () -> Int
    let ooms: () -> Int
    let forkBase: Int
    let oomBase: Int

    init(forks: @escaping () -> Int, ooms: @escaping () -> Int) {
        self.forks = forks
        self.ooms = ooms
        forkBase = forks()
        oomBase = ooms()
    }

    var limitReached: Bool { forks() > forkBase }
    var memoryLimitReached: Bool { ooms() > oomBase }
    func killAll() {}
}

/// How a backend starts its init and what it does around commands.
struct InitBackend: Sendable {
    /// The argv that starts the init inside the sandbox (already wrapped in prlimit and the cgroup join, if any).
    var argv: [String]
    var environment: [String: String]
    var workingDirectory: String?
    /// Commands' limit probe for one command (nil: none).
    var probe: @Sendable () -> ProcessLimitProbe?
    /// Before each command (the container hands files the daemon wrote to the agent uid).
    var beforeCommand: @Sendable (_ files: [String]) throws -> Void = { _ in }
    /// After the init is killed: remove the cgroup, the container.
    var cleanup: @Sendable () -> Void = {}
    /// How long the init may take to say it is ready.
    var startSeconds: Double = 30
}

/// A run sandbox served by `SandboxInit` (bwrap and container backends).
final class InitRunSandbox: RunSandbox {
    let backend: InitBackend
    let mounts: SandboxMounts
    let declared: [SandboxBind]
    let baseEnvironment: [String: String]
    let cancel: CancellationFlag
    let controlHost: String

    private struct Control {
        var child: ChildProcess?
        var requests: OwnedFD?
        var next = 1
        var closed = false
    }
    private let control: Mutex<Control>
    private let shellSlot = Mutex<ShellSession?>(nil)

    init(
        backend: InitBackend, mounts: SandboxMounts, declared: [SandboxBind], baseEnvironment: [String: String],
        cancel: CancellationFlag
    ) throws {
        self.backend = backend
        self.mounts = mounts
        self.declared = declared
        self.baseEnvironment = baseEnvironment
        self.cancel = cancel
        controlHost = RunSandboxPaths.control(mounts)
        let log = mounts.scratch + "/sandbox-init.log"
        let logFD = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw SandboxSetupError("cannot create \(log): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(logFD) }
        let ready = try PipePair()
        let child: ChildProcess
        do {
            child = try ChildProcess(
                executable: backend.argv[0], arguments: Array(backend.argv.dropFirst()),
                environment: backend.environment, workingDirectory: backend.workingDirectory,
                stdin: .pipe, stdout: .fd(ready.write.raw), stderr: .fd(logFD))
        } catch {
            backend.cleanup()
            throw error
        }
        ready.write.close()
        control = Mutex(Control(child: child, requests: child.stdin))
        // The init says "ready" once it runs inside; a backend that cannot start says why in the log.
        let deadline = MonotonicClock.now + backend.startSeconds
        var seen: [UInt8] = []
        var byte: UInt8 = 0
        try ready.read.setNonBlocking()
        while MonotonicClock.now < deadline, !seen.starts(with: Array("ready\n".utf8)) {
            var pfd = pollfd(fd: ready.read.raw, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 50)
            let n = read(ready.read.raw, &byte, 1)
            if n == 1 { seen.append(byte); continue }
            if n == 0 { break }
        }
        guard seen.starts(with: Array("ready\n".utf8)) else {
            close()
            let why = (readSmallFile(log) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            throw SandboxSetupError(
                "the run sandbox did not start: \(why.isEmpty ? "no message (timed out after \(Int(backend.startSeconds)) s)" : String(why.suffix(2000)))"
            )
        }
    }

    func checkBinds(_ binds: [SandboxBind]) throws(SandboxSetupError) {
        try refuseUndeclared(binds, declared: declared)
    }

    /// Writes the command's files and FIFOs and asks the init to start it.
    private func start(script: String, environment: [String: String], shell: Bool) throws -> InitCommand {
        try checkEnvironment(environment)
        let n = try control.withLock { state -> Int in
            guard !state.closed else { throw SandboxSetupError("the run sandbox is closed") }
            defer { state.next += 1 }
            return state.next
        }
        let base = "\(controlHost)/\(n)"
        let env = baseEnvironment.merging(environment) { _, new in new }
        var envBytes: [UInt8] = []
        for (key, value) in env.sorted(by: { $0.key < $1.key }) {
            envBytes += Array("\(key)=\(value)".utf8)
            envBytes.append(0)
        }
        try writePrivate(base + ".sh", Array(script.utf8))
        try writePrivate(base + ".env", envBytes)
        var files = [base + ".sh", base + ".env", base + ".out", base + ".rc"]
        for fifo in [".out", ".rc"] + (shell ? [".in"] : []) {
            guard mkfifo(base + fifo, 0o600) == 0 else { throw SandboxSetupError("cannot make \(base + fifo): \(String(cString: strerror(errno)))") }
        }
        if shell { files.append(base + ".in") }
        try backend.beforeCommand(files)
        let out = open(base + ".out", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        let rc = open(base + ".rc", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        // O_RDWR: opening never waits for the shell, and the shell sees EOF only when we close it.
        let input = shell ? open(base + ".in", O_RDWR | O_CLOEXEC) : -2
        guard out >= 0, rc >= 0, input != -1 else { throw SandboxSetupError("cannot open the FIFOs of \(base): \(String(cString: strerror(errno)))") }
        let command = InitCommand(
            sandbox: self, number: n, files: files, output: OwnedFD(out), status: OwnedFD(rc),
            input: input >= 0 ? OwnedFD(input) : nil, probe: backend.probe())
        try request("\(shell ? "shell" : "run") \(n)")
        return command
    }

    private func writePrivate(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SandboxSetupError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        try writeAll(fd, bytes)
    }

    /// Sends one request line to the init (a line is written whole: it is shorter than PIPE_BUF).
    func request(_ line: String) throws {
        try control.withLock { state in
            guard let fd = state.requests?.raw, !state.closed else { throw SandboxSetupError("the run sandbox is closed") }
            do {
                try writeAll(fd, line + "\n")
            } catch {
                throw SandboxSetupError("the run sandbox has ended (its init is gone: a command may have killed it); the run cannot go on")
            }
        }
    }

    /// Whether the init still runs.
    var initAlive: Bool { control.withLock { state in state.child.map { $0.poll() == nil } ?? false } }

    func execute(
        script: String, environment: [String: String], limits: SandboxLimits, stop: CancellationFlag?,
        onLine: (String) -> Void
    ) throws -> SandboxResult {
        let started = MonotonicClock.now
        let command = try start(script: script, environment: environment, shell: false)
        defer { command.remove() }
        return LimitedProcess.drive(
            command, limits: limits, cancel: stop.map { CancellationFlag(either: cancel, $0) } ?? cancel, startedAt: started,
            workspace: mounts.workspace,
            onLine: onLine)
    }

    func shell(_ command: String, limits: SandboxLimits, onLine: (String) -> Void) throws -> SandboxResult {
        try shellSlot.withLock { slot in
            if slot == nil {
                let process = try start(script: "exec /bin/bash --noprofile --norc\n", environment: [:], shell: true)
                slot = ShellSession(process: process, input: process.input!)
            }
            let session = slot!
            session.calls += 1
            let file = "\(controlHost)/shell-\((session.process as! InitCommand).number)-\(session.calls).sh"
            try writePrivate(file, Array(command.utf8))
            try backend.beforeCommand([file])
            defer { unlink(file) }
            let inside = RunSandboxPaths.controlInside + "/" + (file as NSString).lastPathComponent
            let (result, alive) = session.run(file: inside, limits: limits, cancel: cancel, workspace: mounts.workspace, onLine: onLine)
            if !alive {
                (session.process as! InitCommand).remove()
                slot = nil
            }
            return result
        }
    }

    func restartShell() {
        shellSlot.withLock { slot in
            if let session = slot {
                session.end()
                (session.process as! InitCommand).remove()
            }
            slot = nil
        }
    }

    func close() {
        let child: ChildProcess? = control.withLock { state in
            if state.closed { return nil }
            state.closed = true
            state.requests?.close()
            return state.child
        }
        guard let child else { return }
        shellSlot.withLock { slot in
            slot?.input.close(); slot = nil
        }
        // The init's group is bwrap (or the engine client): killing it ends the pid namespace,
        // whose processes the kernel then kills; the cgroup sweep catches any straggler.
        child.signalGroup(SIGKILL)
        _ = child.wait(timeout: 10)
        backend.cleanup()
        try? FileManager.default.removeItem(atPath: controlHost)
    }

    deinit { close() }
}

/// One command started through the init: its output and status FIFOs.
final class InitCommand: SandboxProcess {
    unowned let sandbox: InitRunSandbox
    let number: Int
    let files: [String]
    let output: OwnedFD
    let status: OwnedFD
    let input: OwnedFD?
    let probe: ProcessLimitProbe?
    private var statusBuffer: [UInt8] = []
    private(set) var pid: Int?
    private var exit: Int32?
    private var statusClosed = false
    private var lastKill = 0.0

    init(
        sandbox: InitRunSandbox, number: Int, files: [String], output: OwnedFD, status: OwnedFD, input: OwnedFD?,
        probe: ProcessLimitProbe?
    ) {
        self.sandbox = sandbox
        self.number = number
        self.files = files
        self.output = output
        self.status = status
        self.input = input
        self.probe = probe
    }

    var outputFD: Int32 { output.raw }
    /// Readable once the rc FIFO has news; a status already read leaves it quiet.
    var statusFD: Int32? { exit == nil && !statusClosed ? status.raw : nil }

    /// Reads the status FIFO: `pid P`, then `exit S`. Hostile input (a command can open the
    /// FIFO too): lines are bounded and only these two forms count.
    private func readStatus() {
        guard exit == nil, !statusClosed else { return }
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(status.raw, $0.baseAddress, $0.count) }
            if n > 0 {
                statusBuffer.append(contentsOf: buffer[0..<n])
                if statusBuffer.count > 4096 { statusBuffer.removeFirst(statusBuffer.count - 4096) }
                continue
            }
            // Writers gone after the command was started: the subshell that waits for it died.
            if n == 0 && pid != nil { statusClosed = true }
            break
        }
        while let newline = statusBuffer.firstIndex(of: 10) {
            let line = String(decoding: statusBuffer[..<newline], as: UTF8.self)
            statusBuffer.removeFirst(newline + 1)
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Int(parts[1]), value >= 0, value < 1 << 30 else { continue }
            if parts[0] == "pid", pid == nil, value > 1 { pid = value }
            if parts[0] == "exit", pid != nil, exit == nil { exit = Int32(min(value, 255)) }
        }
        if statusClosed && exit == nil { exit = 137 }
    }

    var outputEnded: Bool {
        readStatus()
        return pid != nil
    }

    func exitStatus() -> Int32? {
        readStatus()
        if exit == nil && !sandbox.initAlive { exit = 137 }
        return exit
    }

    func killAll() {
        readStatus()
        lastKill = MonotonicClock.now
        if let pid { try? sandbox.request("kill \(pid)") }
    }

    func wait(timeout: Double) -> Int32 {
        let deadline = MonotonicClock.now + timeout
        while MonotonicClock.now < deadline {
            if let status = exitStatus() { return status }
            if MonotonicClock.now - lastKill > 1, lastKill > 0 { killAll() }
            usleep(5_000)
        }
        killAll()
        return exitStatus() ?? 137
    }

    /// Closes the FIFOs and removes the command's files.
    func remove() {
        output.close()
        status.close()
        input?.close()
        for file in files { unlink(file) }
    }
}
