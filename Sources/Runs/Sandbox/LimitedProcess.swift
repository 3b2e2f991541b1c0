// Runs: runs one command under limits (deadline, output cap, rlimits, pids cgroup), streaming output lines.
import Foundation
import PatchdSystem
#if canImport(Glibc)
import Glibc
#endif

/// The engine both sandbox backends share: spawn `argv` (already wrapped by the backend)
/// under prlimit and a pids cgroup, read merged output as lines, and enforce the limits.
enum LimitedProcess {
    static let tailBytes = 64 * 1024
    static let maxLineBytes = 4096

    static func run(argv: [String], environment: [String: String], workingDirectory: String?, limits: SandboxLimits,
                    cancel: CancellationFlag, cgroupName: String, onLine: (String) -> Void) throws -> SandboxResult {
        let started = MonotonicClock.now
        let cgroup = ProcessCgroup(name: cgroupName, maxProcesses: limits.maxProcesses)
        // rlimits bind every process the command starts; --nproc only where the uid is not
        // root (for root the cgroup above is the cap).
        var wrapped = ["/usr/bin/prlimit", "--fsize=\(limits.maxFileBytes)", "--as=\(limits.maxMemoryBytes)", "--core=0"]
        if getuid() != 0 { wrapped.append("--nproc=\(limits.maxProcesses)") }
        wrapped += ["--"] + argv
        if let cgroup {
            // The shell joins the cgroup before exec, so nothing escapes it by forking early.
            wrapped = ["/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", cgroup.procsFile] + wrapped
        }
        let output = try PipePair()
        let child = try ChildProcess(executable: wrapped[0], arguments: Array(wrapped.dropFirst()), environment: environment,
                                     workingDirectory: workingDirectory, stdin: .null,
                                     stdout: .fd(output.write.raw), stderr: .fd(output.write.raw))
        output.write.close()
        try output.read.setNonBlocking()

        var limit: LimitHit?
        var total = 0
        var pending: [UInt8] = []
        var tail: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = started + limits.wallClockSeconds
        var exitedAt: Double?

        func emit(_ bytes: ArraySlice<UInt8>) {
            onLine(String(decoding: bytes, as: UTF8.self))
        }

        readLoop: while true {
            var pfd = pollfd(fd: output.read.raw, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 100)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(output.read.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    total += n
                    if total > limits.maxOutputBytes {
                        limit = .output
                        break readLoop
                    }
                    let chunk = buffer[0..<n]
                    tail.append(contentsOf: chunk)
                    if tail.count > 2 * tailBytes { tail.removeFirst(tail.count - tailBytes) }
                    pending.append(contentsOf: chunk)
                    while let newline = pending.firstIndex(of: 10) {
                        emit(pending[..<newline])
                        pending.removeFirst(newline + 1)
                    }
                    while pending.count > maxLineBytes {
                        emit(pending[..<maxLineBytes])
                        pending.removeFirst(maxLineBytes)
                    }
                    continue
                }
                if n == 0 { break readLoop } // every writer closed: the command is done
                break // EAGAIN
            }
            // The command exited but something it left behind holds the pipe: a short grace, then stop.
            if let _ = child.poll() {
                exitedAt = exitedAt ?? MonotonicClock.now
                if MonotonicClock.now - exitedAt! > 2 { break }
            }
            if let reason = cancel.reason { limit = reason; break }
            if MonotonicClock.now > deadline { limit = .timeout; break }
            if cgroup?.limitReached == true { limit = .processes; break }
        }
        if limit != nil || exitedAt != nil {
            child.signalGroup(SIGKILL)
            cgroup?.killAll()
        }
        if !pending.isEmpty { emit(pending[...]) }
        var status = child.wait(timeout: 10)
        if limit == nil, cgroup?.limitReached == true, status != 0 { limit = .processes }
        let tailText = String(decoding: tail.suffix(tailBytes), as: UTF8.self)
        // SIGXFSZ (25) ends a writer past RLIMIT_FSIZE; bash reports it for its children.
        if limit == nil && status != 0 && (status == 128 + SIGXFSZ || tailText.contains("File size limit exceeded")) {
            limit = .fileSize
        }
        if limit != nil && status == 0 { status = 137 }
        return SandboxResult(exitStatus: status, limit: limit, duration: MonotonicClock.now - started,
                             outputBytes: total, outputTail: tailText)
    }
}
