// Sandboxing: runs one command under limits (deadline, output cap, rlimits, pids cgroup), streaming output lines.
// The decisions are CommandLimitWatch's; this file is the driver: spawn, poll, read, kill.

import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// Tells whether a command hit its process or memory cap, and stops what is left of it.
protocol ProcessLimitProbe: AnyObject {
    /// True once a fork was refused because of the cap.
    var limitReached: Bool { get }
    /// True once the kernel's OOM killer ended a process because of the memory cap.
    var memoryLimitReached: Bool { get }
    /// SIGKILLs every process still counted.
    func killAll()
}

extension ProcessCgroup: ProcessLimitProbe {}

/// Who applies the process, memory, CPU and file-size limits to a command.
enum ProcessConfinement {
    /// patchd itself: prlimit plus a cgroup of its own (pids, and memory and cpu where
    /// writable), named so (bwrap, none).
    case local(cgroupName: String)
    /// A container engine applies them (it was given the limits as flags); the probe, if
    /// any, watches the container's pids and memory cgroups.
    case engine(ProcessLimitProbe?)
}

/// The engine every sandbox backend shares: spawn `argv` (already wrapped by the backend)
/// under the confinement, read merged output as lines, and enforce the limits.
enum LimitedProcess {
    /// util-linux's prlimit, found once (PATH, then the usual places).
    static let prlimit = (try? Executable.find("prlimit")) ?? "/usr/bin/prlimit"

    static let tailBytes = 64 * 1024

    /// `workspace`: the directory whose disk use the limits bound (nil: not watched).
    static func run(
        argv: [String], environment: [String: String], workingDirectory: String?, limits: SandboxLimits,
        cancel: CancellationFlag, confinement: ProcessConfinement, workspace: String?,
        onLine: (String) -> Void
    ) throws -> SandboxResult {
        let started = MonotonicClock.now
        var wrapped = argv
        let cgroup: ProcessLimitProbe?
        // How often the limits are checked while the command is silent. A container's cgroup
        // (and its OOM count) is gone soon after the container ends, so it is watched closely.
        var pollMilliseconds: Int32 = 100
        switch confinement {
        case .local(let cgroupName):
            // rlimits bind every process the command starts; --nproc only where the uid is not
            // root (for root the cgroup is the cap); --as only where no memory cgroup caps the
            // command (address space is not memory: runtimes that reserve much of it fail). The
            // shell joins the cgroups before exec, so nothing escapes them by forking early.
            let confined = confine(argv, limits: limits, cgroupName: cgroupName)
            wrapped = confined.argv
            cgroup = confined.cgroup
        case .engine(let probe):
            cgroup = probe
            pollMilliseconds = 20
        }
        let output = try PipePair()
        let child = try ChildProcess(
            executable: wrapped[0], arguments: Array(wrapped.dropFirst()), environment: environment,
            workingDirectory: workingDirectory, stdin: .null,
            stdout: .fd(output.write.raw), stderr: .fd(output.write.raw))
        output.write.close()
        try output.read.setNonBlocking()
        let process = SpawnedCommand(child: child, output: output.read, probe: cgroup)
        return drive(
            process, limits: limits, cancel: cancel, startedAt: started, pollMilliseconds: pollMilliseconds,
            workspace: workspace, onLine: onLine)
    }

    /// The prlimit and cgroup wrapping of `argv` for `.local` confinement (see `run`): the argv
    /// to spawn and the cgroup it joins (nil where none can be made).
    static func confine(_ argv: [String], limits: SandboxLimits, cgroupName: String) -> (argv: [String], cgroup: ProcessCgroup?) {
        let own = ProcessCgroup(
            name: cgroupName, maxProcesses: limits.maxProcesses, maxMemoryBytes: limits.maxMemoryBytes,
            maxCPUs: limits.maxCPUs)
        var wrapped = [Self.prlimit, "--fsize=\(limits.maxFileBytes)", "--core=0"]
        if own?.capsMemory != true { wrapped.append("--as=\(limits.maxMemoryBytes)") }
        if getuid() != 0 { wrapped.append("--nproc=\(limits.maxProcesses)") }
        wrapped += ["--"] + argv
        if let own {
            let files = own.procsFiles
            var code = files.indices.map { "echo $$ > \"$\($0)\"" }.joined(separator: " && ")
            if files.count > 1 { code += " && shift \(files.count - 1)" }
            wrapped = ["/bin/sh", "-c", code + " && exec \"$@\""] + files + wrapped
        }
        return (wrapped, own)
    }

    /// Reads `process`'s merged output as lines until it ends (or `terminator` says the output
    /// is complete), enforcing the per-command limits: deadline, output cap, disk, the probe's
    /// process and memory caps, cancellation. On a stop it kills the process and what it left.
    static func drive(
        _ process: SandboxProcess, limits: SandboxLimits, cancel: CancellationFlag, startedAt started: Double,
        pollMilliseconds: Int32 = 100, workspace: String?, terminator: OutputTerminator? = nil,
        onLine: (String) -> Void
    ) -> SandboxResult {
        var terminator = terminator
        let cgroup = process.probe
        let fd = process.outputFD
        var watch = CommandLimitWatch(limits: limits, startedAt: started)
        var verdict = CommandLimitWatch.Verdict.keepGoing
        var pending: [UInt8] = []
        var tail: [UInt8] = []
        var capture = OutputCapture()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var disk = workspace.map { DiskWatch(workspace: $0, limits: limits, now: started) }
        var terminated: Int32?

        func emit(_ bytes: ArraySlice<UInt8>) {
            onLine(String(decoding: bytes, as: UTF8.self))
        }
        func take(_ chunk: ArraySlice<UInt8>) {
            capture.append(chunk)
            tail.append(contentsOf: chunk)
            if tail.count > 2 * tailBytes { tail.removeFirst(tail.count - tailBytes) }
            pending.append(contentsOf: chunk)
            var start = pending.startIndex
            while let newline = pending[start...].firstIndex(of: 10) {
                emit(pending[start..<newline])
                start = newline + 1
            }
            // An over-long line goes out in pieces, each cut at a UTF-8 character boundary.
            while pending.endIndex - start > limits.maxLineBytes {
                let cut = UTF8Boundary.cut(pending, from: start, maxBytes: limits.maxLineBytes)
                emit(pending[start..<cut])
                start = cut
            }
            pending.removeFirst(start - pending.startIndex)
        }

        // The output can end before the command does (`exec > file`): then only its exit is awaited.
        var outputClosed = false
        readLoop: while verdict == .keepGoing {
            if outputClosed {
                if process.exitStatus() != nil { break readLoop }
                if let statusFD = process.statusFD {
                    var pfd = pollfd(fd: statusFD, events: Int16(POLLIN), revents: 0)
                    _ = poll(&pfd, 1, pollMilliseconds)
                } else {
                    usleep(UInt32(pollMilliseconds) * 1000)
                }
            } else {
                // Also woken by the status channel (a FIFO command's start and exit), if it has one.
                var pfds = [
                    pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: process.statusFD ?? -1, events: Int16(POLLIN), revents: 0),
                ]
                _ = poll(&pfds, 2, pollMilliseconds)
            }
            while !outputClosed {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    var chunk = buffer[0..<n]
                    if terminator != nil {
                        let scanned = terminator!.scan(chunk)
                        chunk = scanned.output[...]
                        terminated = scanned.status
                    }
                    verdict = watch.output(chunk.count)
                    if verdict != .keepGoing { break readLoop }
                    take(chunk)
                    if terminated != nil { break readLoop }
                    continue
                }
                // Every writer closed (for a FIFO: once it was opened at all): the output is done.
                if n == 0 && process.outputEnded {
                    outputClosed = true
                    if process.exitStatus() != nil { break readLoop }
                }
                break  // EAGAIN, or a FIFO not yet opened by the command
            }
            let now = MonotonicClock.now
            verdict = watch.check(
                CommandObservation(
                    now: now, exited: process.exitStatus() != nil, canceled: cancel.reason,
                    processCapHit: cgroup?.limitReached == true,
                    diskExceeded: disk?.exceeded(now: now) == true))
        }
        // The shell ended without its marker (`exit`): what was held back is output.
        if terminated == nil, let rest = terminator?.flush(), !rest.isEmpty { take(rest[...]) }
        var limit: LimitHit?
        if case .stop(let hit) = verdict { limit = hit }
        // Also after a clean end: what the command left running in its group goes. (Not for the
        // persistent shell, whose command ends at its marker while the shell lives on.) The
        // output's end can come before the exit is seen, so that is no condition for a command.
        if verdict != .keepGoing || watch.exitedAt != nil || terminator == nil {
            process.killAll()
        }
        if !pending.isEmpty { emit(pending[...]) }
        var status = terminated ?? process.wait(timeout: 10)
        let tailText = String(decoding: tail.suffix(tailBytes), as: UTF8.self)
        if limit == nil {
            limit = CommandLimitWatch.limitAfterExit(
                exitStatus: status, processCapHit: cgroup?.limitReached == true,
                memoryCapHit: cgroup?.memoryLimitReached == true, outputTail: tailText)
        }
        if limit != nil && status == 0 { status = 137 }
        let total = watch.outputBytes
        return SandboxResult(
            exitStatus: status, limit: limit, duration: MonotonicClock.now - started,
            outputBytes: total, outputTail: tailText, output: capture)
    }
}

/// A command being driven by `LimitedProcess.drive`: where its output comes from, whether it
/// ended, and how to stop it.
protocol SandboxProcess: AnyObject {
    /// The non-blocking read end of its merged output.
    var outputFD: Int32 { get }
    /// Whether a read of 0 bytes means the output ended (a FIFO reads 0 before its writer opened it).
    var outputEnded: Bool { get }
    /// An fd that becomes readable when the command starts or ends (nil: none; poll skips -1).
    var statusFD: Int32? { get }
    /// Its exit status once it exited; non-blocking.
    func exitStatus() -> Int32?
    /// SIGKILLs it and everything it started that can be reached.
    func killAll()
    /// Waits up to `timeout` seconds for its status, then kills it and returns what is known.
    func wait(timeout: Double) -> Int32
    var probe: ProcessLimitProbe? { get }
}

/// A command spawned directly by the daemon (a child process leading its own process group):
/// one command, or the `none` backend's persistent bash. `killAll` also sweeps `cgroup` when it
/// is not the probe itself (the shell's probe counts per command, its cgroup lives on).
final class SpawnedCommand: SandboxProcess {
    let child: ChildProcess
    let output: OwnedFD
    let probe: ProcessLimitProbe?
    let cgroup: ProcessCgroup?

    init(child: ChildProcess, output: OwnedFD, probe: ProcessLimitProbe?, cgroup: ProcessCgroup? = nil) {
        self.child = child
        self.output = output
        self.probe = probe
        self.cgroup = cgroup
    }

    var outputFD: Int32 { output.raw }
    var outputEnded: Bool { true }
    var statusFD: Int32? { nil }
    func exitStatus() -> Int32? { child.poll() }
    func killAll() {
        child.signalGroup(SIGKILL)
        probe?.killAll()
        cgroup?.killAll()
    }
    func wait(timeout: Double) -> Int32 { child.wait(timeout: timeout) }
}

/// Finds the end of one command's output in a stream that goes on (the persistent shell's):
/// a marker line with the status, which is cut from the output. Bytes that may be the start
/// of the marker are held back until the next chunk tells.
struct OutputTerminator {
    /// "\n" + a random token + " ": what the shell prints before the status.
    let marker: [UInt8]
    private var held: [UInt8] = []
    private var statusDigits: [UInt8]?

    init(token: String) { marker = Array("\n\(token) ".utf8) }

    /// The output part of `chunk`, and the status once the marker line is complete.
    mutating func scan(_ chunk: ArraySlice<UInt8>) -> (output: [UInt8], status: Int32?) {
        if statusDigits != nil { return ([], finishStatus(chunk)) }
        var data = held
        data.append(contentsOf: chunk)
        held = []
        if let at = Self.find(marker, in: data) {
            let out = Array(data[..<at])
            statusDigits = []
            return (out, finishStatus(data[(at + marker.count)...]))
        }
        // Hold back the longest suffix that is a prefix of the marker.
        var keep = min(marker.count - 1, data.count)
        while keep > 0 && !data.suffix(keep).elementsEqual(marker.prefix(keep)) { keep -= 1 }
        held = Array(data.suffix(keep))
        return (Array(data.dropLast(keep)), nil)
    }

    /// What was held back, once the stream ended without a marker.
    mutating func flush() -> [UInt8] {
        defer { held = [] }
        return statusDigits == nil ? held : []
    }

    private mutating func finishStatus(_ bytes: ArraySlice<UInt8>) -> Int32? {
        for byte in bytes {
            if byte == 10 { return Int32(String(decoding: statusDigits ?? [], as: UTF8.self)) ?? 255 }
            if statusDigits!.count < 8 { statusDigits!.append(byte) }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in data: [UInt8]) -> Int? {
        guard data.count >= needle.count, let first = needle.first else { return nil }
        var i = 0
        while i <= data.count - needle.count {
            guard let hit = data[i...].firstIndex(of: first), hit <= data.count - needle.count else { return nil }
            if data[hit..<(hit + needle.count)].elementsEqual(needle) { return hit }
            i = hit + 1
        }
        return nil
    }
}

/// Watches how much disk a command's workspace takes: its own size (a walk every 2 s, when
/// `maxWorkspaceBytes` is set) and the free space left on its filesystem (statvfs every 0.5 s).
struct DiskWatch {
    let workspace: String
    let maxWorkspaceBytes: Int64?
    let minFreeBytes: Int64
    private var nextFreeCheck: Double
    private var nextWalk: Double

    init(workspace: String, limits: SandboxLimits, now: Double) {
        self.workspace = workspace
        maxWorkspaceBytes = limits.maxWorkspaceBytes
        minFreeBytes = limits.minFreeBytes ?? Self.defaultMinFree(workspace)
        nextFreeCheck = now + 0.5
        nextWalk = now + 2
    }

    /// 5% of the filesystem, at most 1 GiB.
    static func defaultMinFree(_ path: String) -> Int64 {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return 0 }
        return min(1 << 30, Int64(fs.f_blocks) * Int64(fs.f_frsize) / 20)
    }

    mutating func exceeded(now: Double) -> Bool {
        if now >= nextFreeCheck {
            nextFreeCheck = now + 0.5
            var fs = statvfs()
            if statvfs(workspace, &fs) == 0, Int64(fs.f_bavail) * Int64(fs.f_frsize) < minFreeBytes { return true }
        }
        if let maxWorkspaceBytes, now >= nextWalk {
            nextWalk = now + 2
            // An incomplete walk still counts what it saw; the free-space floor backs it up.
            if diskUsage(ofTree: workspace).bytes > maxWorkspaceBytes { return true }
        }
        return false
    }
}
