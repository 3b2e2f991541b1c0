// Sandboxing: the decisions of a command's limit loop (deadline, cancel, output cap, process, memory, disk,
// leftovers after exit) as a value fed with observations, so they are tested without processes or real time.

/// What `LimitedProcess` observed since the last look; the watch turns it into a verdict.
struct CommandObservation: Equatable {
    /// Monotonic seconds (MonotonicClock in the driver, any clock in tests).
    var now: Double
    /// The command's own process has exited (its exit status is known).
    var exited = false
    /// Why the run was stopped from outside (cancel, shutdown), if it was.
    var canceled: LimitHit?
    /// The process cap refused a fork (the cgroup's pids.events).
    var processCapHit = false
    /// The workspace grew past its cap, or its filesystem fell below the free-space floor.
    var diskExceeded = false
}

/// Decides when a command must be stopped and which limit ended it. Pure: no clock, no fds.
struct CommandLimitWatch {
    enum Verdict: Equatable {
        /// Keep reading output.
        case keepGoing
        /// Stop the command: kill its process group and every process the cgroup still counts.
        case stop(LimitHit)
        /// The command exited but something it left behind still holds the output pipe:
        /// after a grace period, kill the leftovers (no limit is recorded).
        case stopLeftovers
    }

    let deadline: Double
    let maxOutputBytes: Int
    /// How long a command's leftovers may keep the pipe open after it exited.
    let leftoverGrace: Double
    private(set) var outputBytes = 0
    private(set) var exitedAt: Double?

    init(limits: SandboxLimits, startedAt: Double, leftoverGrace: Double = 2) {
        deadline = startedAt + limits.wallClockSeconds
        maxOutputBytes = limits.maxOutputBytes
        self.leftoverGrace = leftoverGrace
    }

    /// `count` more bytes of output arrived. `.output` once the total passes the cap.
    mutating func output(_ count: Int) -> Verdict {
        outputBytes += count
        return outputBytes > maxOutputBytes ? .stop(.output) : .keepGoing
    }

    /// A look at the command between reads (at least every poll interval). The order is the
    /// order of precedence: a canceled run is `canceled` even if it also ran out of time.
    mutating func check(_ seen: CommandObservation) -> Verdict {
        if seen.exited {
            exitedAt = exitedAt ?? seen.now
            if seen.now - exitedAt! > leftoverGrace { return .stopLeftovers }
        }
        if let reason = seen.canceled { return .stop(reason) }
        if seen.now > deadline { return .stop(.timeout) }
        if seen.processCapHit { return .stop(.processes) }
        if seen.diskExceeded { return .stop(.disk) }
        return .keepGoing
    }

    /// The limit to report once the command ended by itself (no verdict stopped it) with
    /// `exitStatus`: a failure explained by a cap the kernel enforced, else none.
    /// - Parameters:
    ///   - processCapHit: the cgroup refused a fork; `memoryCapHit`: the OOM killer ran in it.
    ///   - outputTail: the last output, where bash reports "File size limit exceeded".
    static func limitAfterExit(exitStatus: Int32, processCapHit: Bool, memoryCapHit: Bool, outputTail: String) -> LimitHit? {
        guard exitStatus != 0 else { return nil }
        if processCapHit { return .processes }
        if memoryCapHit { return .memory }
        // SIGXFSZ (25) ends a writer past RLIMIT_FSIZE; bash reports it for its children.
        if exitStatus == 128 + 25 || outputTail.contains("File size limit exceeded") { return .fileSize }
        return nil
    }
}
