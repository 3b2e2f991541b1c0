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
            let own = ProcessCgroup(
                name: cgroupName, maxProcesses: limits.maxProcesses, maxMemoryBytes: limits.maxMemoryBytes,
                maxCPUs: limits.maxCPUs)
            cgroup = own
            // rlimits bind every process the command starts; --nproc only where the uid is not
            // root (for root the cgroup above is the cap); --as only where no memory cgroup caps
            // the command (address space is not memory: runtimes that reserve much of it fail).
            wrapped = [Self.prlimit, "--fsize=\(limits.maxFileBytes)", "--core=0"]
            if own?.capsMemory != true { wrapped.append("--as=\(limits.maxMemoryBytes)") }
            if getuid() != 0 { wrapped.append("--nproc=\(limits.maxProcesses)") }
            wrapped += ["--"] + argv
            if let own {
                // The shell joins the cgroups before exec, so nothing escapes them by forking early.
                // sh -c 'echo $$ > "$0" && echo $$ > "$1" && shift 1 && exec "$@"' PROCS0 PROCS1 prlimit ...
                let files = own.procsFiles
                var code = files.indices.map { "echo $$ > \"$\($0)\"" }.joined(separator: " && ")
                if files.count > 1 { code += " && shift \(files.count - 1)" }
                wrapped = ["/bin/sh", "-c", code + " && exec \"$@\""] + files + wrapped
            }
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

        var watch = CommandLimitWatch(limits: limits, startedAt: started)
        var verdict = CommandLimitWatch.Verdict.keepGoing
        var pending: [UInt8] = []
        var tail: [UInt8] = []
        var capture = OutputCapture()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var disk = workspace.map { DiskWatch(workspace: $0, limits: limits, now: started) }

        func emit(_ bytes: ArraySlice<UInt8>) {
            onLine(String(decoding: bytes, as: UTF8.self))
        }

        readLoop: while verdict == .keepGoing {
            var pfd = pollfd(fd: output.read.raw, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, pollMilliseconds)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(output.read.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    verdict = watch.output(n)
                    if verdict != .keepGoing { break readLoop }
                    let chunk = buffer[0..<n]
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
                    continue
                }
                if n == 0 { break readLoop }  // every writer closed: the command is done
                break  // EAGAIN
            }
            let now = MonotonicClock.now
            verdict = watch.check(
                CommandObservation(
                    now: now, exited: child.poll() != nil, canceled: cancel.reason,
                    processCapHit: cgroup?.limitReached == true,
                    diskExceeded: disk?.exceeded(now: now) == true))
        }
        var limit: LimitHit?
        if case .stop(let hit) = verdict { limit = hit }
        // Also after a clean end when the command had exited earlier: what it left running goes.
        if verdict != .keepGoing || watch.exitedAt != nil {
            child.signalGroup(SIGKILL)
            cgroup?.killAll()
        }
        if !pending.isEmpty { emit(pending[...]) }
        var status = child.wait(timeout: 10)
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
