// PatchdSystem: spawns a child with posix_spawn in its own process group, owning every fd.

package import CPatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// What a child's stdin, stdout or stderr is connected to.
package enum StandardIO {
    /// A new pipe; the parent's end is returned in `ChildProcess`.
    case pipe
    /// /dev/null.
    case null
    /// An fd the caller owns; it is dup2'd into place (the caller keeps and closes its copy).
    case fd(Int32)
}

/// A running child process. The parent's ends of its pipes are owned here.
/// The child leads a new process group, so `signalGroup` reaches everything it started.
package final class ChildProcess {
    package let pid: pid_t
    package let stdin: OwnedFD?
    package let stdout: OwnedFD?
    package let stderr: OwnedFD?
    package private(set) var exitStatus: Int32?

    /// Spawns `executable` (an absolute path) with exactly `environment` (nothing is inherited).
    package init(
        executable: String, arguments: [String], environment: [String: String],
        workingDirectory: String? = nil,
        stdin stdinMode: StandardIO = .null, stdout stdoutMode: StandardIO = .pipe,
        stderr stderrMode: StandardIO = .pipe
    ) throws(SystemError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }

        // Parent-side ends, kept; child-side ends, closed once the child has them.
        var parentEnds: [OwnedFD?] = [nil, nil, nil]
        var childEnds: [OwnedFD] = []
        let modes = [stdinMode, stdoutMode, stderrMode]
        for (target, mode) in modes.enumerated() {
            switch mode {
            case .pipe:
                let pipe = try PipePair()
                let childIsReader = target == 0
                let childEnd = childIsReader ? pipe.read : pipe.write
                parentEnds[target] = childIsReader ? pipe.write : pipe.read
                childEnds.append(childEnd)
                posix_spawn_file_actions_adddup2(&actions, childEnd.raw, Int32(target))
            case .null:
                posix_spawn_file_actions_addopen(
                    &actions, Int32(target), "/dev/null",
                    target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .fd(let fd):
                posix_spawn_file_actions_adddup2(&actions, fd, Int32(target))
            }
        }
        // Nothing else crosses into the child, whatever libraries opened without O_CLOEXEC.
        patchd_spawn_addclosefrom(&actions, 3)
        if let dir = workingDirectory {
            patchd_spawn_addchdir(&actions, dir)
        }

        // Own process group; default signal dispositions and an empty mask in the child
        // (the daemon ignores SIGPIPE, git must not).
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = [executable] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }.sorted()
        var childPid: pid_t = 0
        let rc = withCStrings(argv) { argvPtr in
            withCStrings(envp) { envPtr in
                posix_spawn(&childPid, executable, &actions, &attr, argvPtr, envPtr)
            }
        }
        if rc != 0 { throw SystemError("posix_spawn", errno: rc, context: executable) }
        for end in childEnds { end.close() }
        pid = childPid
        stdin = parentEnds[0]
        stdout = parentEnds[1]
        stderr = parentEnds[2]
    }

    /// Non-blocking: the exit status if the child has ended.
    package func poll() -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid { exitStatus = Self.decode(status) }
        return exitStatus
    }

    /// Blocks until the child ends.
    @discardableResult
    package func wait() -> Int32 {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { exitStatus = 255; return 255 }
        }
        exitStatus = Self.decode(status)
        return exitStatus!
    }

    /// Waits up to `seconds`, then kills the whole group and reaps the child.
    @discardableResult
    package func wait(timeout seconds: Double) -> Int32 {
        let deadline = MonotonicClock.now + seconds
        while MonotonicClock.now < deadline {
            if let status = poll() { return status }
            usleep(10_000)
        }
        signalGroup(SIGKILL)
        return wait()
    }

    /// Sends `signal` to the child's whole process group.
    package func signalGroup(_ signal: Int32) {
        guard exitStatus == nil else { return }
        _ = kill(-pid, signal)
    }

    /// Shell convention: the exit code, or 128 + the signal that ended it.
    static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }

    deinit {
        // Never leave a zombie or an orphan group behind.
        if exitStatus == nil {
            signalGroup(SIGKILL)
            wait()
        }
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Seconds on the monotonic clock, for deadlines and durations.
package enum MonotonicClock {
    package static var now: Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Runs a command to completion and returns its status and output (for short, bounded commands).
package func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String],
    workingDirectory: String? = nil, stdinBytes: [UInt8]? = nil
) throws(SystemError)
    -> (status: Int32, stdout: [UInt8], stderr: [UInt8])
{
    let child = try ChildProcess(
        executable: executable, arguments: arguments, environment: environment,
        workingDirectory: workingDirectory,
        stdin: stdinBytes == nil ? .null : .pipe, stdout: .pipe, stderr: .pipe)
    if let input = stdinBytes, let fd = child.stdin {
        try? writeAll(fd.raw, input)
        fd.close()
    }
    // stderr is read on its own thread so neither pipe can fill up and stall the child.
    let errFD = child.stderr!.raw
    let errBox = JoinedResult<[UInt8]>([])
    let errThread: OSThread
    do { errThread = try OSThread(name: "runProcess-stderr") { errBox.set((try? readAll(errFD)) ?? []) } } catch {
        child.signalGroup(SIGKILL)
        _ = child.wait()
        throw error
    }
    let out = (try? readAll(child.stdout!.raw)) ?? []
    errThread.join()
    let status = child.wait()
    return (status, out, errBox.get())
}
