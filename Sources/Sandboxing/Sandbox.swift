// Sandboxing: the Sandbox seam: run a script against a workspace with limits, streaming its output as lines.

import Foundation
import PatchdSystem
import Synchronization

/// Resource limits for one sandboxed command.
package struct SandboxLimits: Sendable, Equatable {
    package var wallClockSeconds: Double = 20 * 60
    package var maxProcesses: Int = 256
    package var maxFileBytes: Int64 = 1 << 30
    package var maxMemoryBytes: Int64 = 8 << 30
    package var maxOutputBytes: Int = 10 << 20
    /// CPU time per second of wall clock, in cores (1.5: one and a half); nil for no cap.
    /// Exceeding it slows the command down, it does not end it.
    package var maxCPUs: Double?
    /// Disk space the workspace may take, in bytes (nil: no cap). Checked every 2 s by
    /// walking it, so a burst can overshoot by what is written in that time.
    package var maxWorkspaceBytes: Int64?
    /// Free space the workspace's filesystem must keep (nil: 5% of it, at most 1 GiB);
    /// checked every 0.5 s. This one cannot be dodged by making the walk fail.
    package var minFreeBytes: Int64?
    /// The longest line `onLine` gets, in bytes; a longer one arrives in pieces cut at UTF-8
    /// boundaries. Run logs want short lines; a reader of JSON lines (an agent CLI's event
    /// stream) needs whole ones and raises it. Bounded by `maxOutputBytes` in any case.
    package var maxLineBytes: Int = 4096
    package init() {}
}

/// Which limit ended a command (or the run), as recorded in the run.
package enum LimitHit: String, Sendable, Codable, Equatable {
    case timeout, processes, fileSize = "file_size", memory, output, disk, canceled
    /// The server is stopping: the run is put back in the queue, not recorded as ended.
    case shutdown
    /// An LLM agent's budgets: max_turns, max_cost_usd.
    case turns, cost

    package var explanation: String {
        switch self {
        case .timeout: return "time limit reached"
        case .processes: return "process limit reached (fork bomb?)"
        case .fileSize: return "file size limit reached"
        case .memory: return "memory limit reached"
        case .output: return "output limit reached"
        case .disk: return "disk limit reached (the workspace over max_workspace_bytes, or its filesystem down to min_free_bytes)"
        case .canceled: return "canceled"
        case .shutdown: return "the server is stopping"
        case .turns: return "turn limit (max_turns) reached"
        case .cost: return "cost limit (max_cost_usd) reached"
        }
    }
}

package struct SandboxResult: Sendable {
    package var exitStatus: Int32
    package var limit: LimitHit?
    package var duration: Double
    package var outputBytes: Int
    /// The last 64 KiB of output (for a failing check's feedback).
    package var outputTail: String
    /// The raw output's first and last 64 KiB with exact counts, for callers that show it
    /// (the builtin agent's bash tool): no line cut, no lossy decoding.
    package var output = OutputCapture()
    package var succeeded: Bool { exitStatus == 0 && limit == nil }
}

/// Set from another thread to stop a run (or one command of it); sandboxes poll it.
package final class CancellationFlag: Sendable {
    private let state = Mutex<LimitHit?>(nil)
    /// Flags this one also reads: a command's own stop and its run's cancel.
    private let others: [CancellationFlag]
    package init() { others = [] }
    /// A flag that reads as set when any of `others` is (or it is set itself).
    package init(either others: CancellationFlag...) { self.others = others }
    package func cancel(_ reason: LimitHit = .canceled) { state.withLock { if $0 == nil { $0 = reason } } }
    package var reason: LimitHit? { state.withLock { $0 } ?? others.lazy.compactMap(\.reason).first }
}

/// A host path made visible inside the sandbox (bwrap binds it at `inside`).
package struct SandboxBind: Sendable {
    package let host: String
    package let inside: String
    package let writable: Bool
    package init(host: String, inside: String, writable: Bool) {
        self.host = host; self.inside = inside; self.writable = writable
    }
}

/// What a sandbox needs to know about the run's files.
package struct SandboxMounts: Sendable {
    /// The checkout, writable; /workspace inside.
    package let workspace: String
    /// The bare repository's objects directory, read-only; the workspace's alternates point at it.
    package let repositoryObjects: String
    /// Private scratch (DATA/work/run-ID), for generated files such as /etc/passwd.
    package let scratch: String
    /// Extra binds an agent needs (the claude binary, the API socket).
    package var extra: [SandboxBind] = []
    /// Variables every command of the run gets on top of the sandbox's own (the egress proxy's
    /// settings); a command's own environment wins.
    package var environment: [String: String] = [:]
    /// Copy-on-write views mounted before the sandbox starts (a cached environment), made
    /// visible by binds in `extra`; only for a sandbox whose `supportsOverlays` is true.
    package var overlays: [SandboxOverlay] = []

    package init(workspace: String, repositoryObjects: String, scratch: String) {
        self.workspace = workspace
        self.repositoryObjects = repositoryObjects
        self.scratch = scratch
    }
}

/// Runs commands in isolation. Backends: `BubblewrapSandbox` (bwrap), `ContainerSandbox` (podman or docker),
/// `UnsandboxedSandbox` (none). A run opens one `RunSandbox` and runs every command in it.
package protocol Sandbox: Sendable {
    var name: String { get }
    /// The workspace path as the command sees it (for messages and the agent's prompt).
    var workspacePath: String { get }
    /// The alternates path the workspace's git should use for the repository objects.
    func objectsPath(_ mounts: SandboxMounts) -> String
    /// Where a bind's host path is seen by commands (inside for bwrap, the host path for none).
    func path(of bind: SandboxBind) -> String
    /// Whether commands get a private network namespace (needed to bridge an API port safely).
    var hasPrivateNetwork: Bool { get }
    /// Opens the run's sandbox: `limits` gives its run-wide caps (processes, memory, CPU, file
    /// size); `mounts.extra` are the binds it holds for its whole life.
    func open(mounts: SandboxMounts, limits: SandboxLimits, cancel: CancellationFlag) throws -> RunSandbox
    /// Whether `open` mounts `mounts.overlays` (probed once, with `scratch` for its test files).
    func supportsOverlays(scratch: String) -> Bool
    /// What a cached environment depends on besides the task: the backend and its image.
    var environmentIdentity: String { get }
}

extension Sandbox {
    /// Runs one script in a sandbox of its own (opened and closed around it): `patchd doctor`
    /// and tests. Never throws for the script's own failure.
    package func execute(
        script: String, environment: [String: String], mounts: SandboxMounts, limits: SandboxLimits,
        cancel: CancellationFlag, onLine: (String) -> Void
    ) throws -> SandboxResult {
        let run = try open(mounts: mounts, limits: limits, cancel: cancel)
        defer { run.close() }
        return try run.execute(script: script, environment: environment, limits: limits, onLine: onLine)
    }
}
