// Sandboxing: the Sandbox seam: run a script against a workspace with limits, streaming its output as lines.
import Foundation
import PatchdSystem
import Synchronization

/// Resource limits for one sandboxed command.
public struct SandboxLimits: Sendable, Equatable {
    public var wallClockSeconds: Double = 20 * 60
    public var maxProcesses: Int = 256
    public var maxFileBytes: Int64 = 1 << 30
    public var maxMemoryBytes: Int64 = 8 << 30
    public var maxOutputBytes: Int = 10 << 20
    /// CPU time per second of wall clock, in cores (1.5: one and a half); nil for no cap.
    /// Exceeding it slows the command down, it does not end it.
    public var maxCPUs: Double?
    /// Disk space the workspace may take, in bytes (nil: no cap). Checked every 2 s by
    /// walking it, so a burst can overshoot by what is written in that time.
    public var maxWorkspaceBytes: Int64?
    /// Free space the workspace's filesystem must keep (nil: 5% of it, at most 1 GiB);
    /// checked every 0.5 s. This one cannot be dodged by making the walk fail.
    public var minFreeBytes: Int64?
    /// The longest line `onLine` gets, in bytes; a longer one arrives in pieces cut at UTF-8
    /// boundaries. Run logs want short lines; a reader of JSON lines (an agent CLI's event
    /// stream) needs whole ones and raises it. Bounded by `maxOutputBytes` in any case.
    public var maxLineBytes: Int = 4096
    public init() {}
}

/// Which limit ended a command (or the run), as recorded in the run.
public enum LimitHit: String, Sendable, Codable, Equatable {
    case timeout, processes, fileSize = "file_size", memory, output, disk, canceled
    /// The server is stopping: the run is put back in the queue, not recorded as ended.
    case shutdown
    /// An LLM agent's budgets: max_turns, max_cost_usd.
    case turns, cost

    public var explanation: String {
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

public struct SandboxResult: Sendable {
    public var exitStatus: Int32
    public var limit: LimitHit?
    public var duration: Double
    public var outputBytes: Int
    /// The last 64 KiB of output (for a failing check's feedback).
    public var outputTail: String
    /// The raw output's first and last 64 KiB with exact counts, for callers that show it
    /// (the builtin agent's bash tool): no line cut, no lossy decoding.
    public var output = OutputCapture()
    public var succeeded: Bool { exitStatus == 0 && limit == nil }
}

/// Set from another thread to stop a run; sandboxes poll it.
public final class CancellationFlag: Sendable {
    private let state = Mutex<LimitHit?>(nil)
    public init() {}
    public func cancel(_ reason: LimitHit = .canceled) { state.withLock { if $0 == nil { $0 = reason } } }
    public var reason: LimitHit? { state.withLock { $0 } }
}

/// A host path made visible inside the sandbox (bwrap binds it at `inside`).
public struct SandboxBind: Sendable {
    public let host: String
    public let inside: String
    public let writable: Bool
    public init(host: String, inside: String, writable: Bool) {
        self.host = host; self.inside = inside; self.writable = writable
    }
}

/// What a sandbox needs to know about the run's files.
public struct SandboxMounts: Sendable {
    /// The checkout, writable; /workspace inside.
    public let workspace: String
    /// The bare repository's objects directory, read-only; the workspace's alternates point at it.
    public let repositoryObjects: String
    /// Private scratch (DATA/work/run-ID), for generated files such as /etc/passwd.
    public let scratch: String
    /// Extra binds an agent needs (the claude binary, the API socket).
    public var extra: [SandboxBind] = []

    public init(workspace: String, repositoryObjects: String, scratch: String) {
        self.workspace = workspace
        self.repositoryObjects = repositoryObjects
        self.scratch = scratch
    }
}

/// Runs commands in isolation. Backends: `BubblewrapSandbox` (bwrap), `ContainerSandbox` (podman or docker),
/// `UnsandboxedSandbox` (none).
public protocol Sandbox: Sendable {
    var name: String { get }
    /// The workspace path as the command sees it (for messages and the agent's prompt).
    var workspacePath: String { get }
    /// The alternates path the workspace's git should use for the repository objects.
    func objectsPath(_ mounts: SandboxMounts) -> String
    /// Where a bind's host path is seen by commands (inside for bwrap, the host path for none).
    func path(of bind: SandboxBind) -> String
    /// Whether commands get a private network namespace (needed to bridge an API port safely).
    var hasPrivateNetwork: Bool { get }
    /// Runs `script` with bash in the workspace; each output line (stdout and stderr merged)
    /// goes to `onLine` as it arrives. Never throws for the script's own failure.
    func execute(script: String, environment: [String: String], mounts: SandboxMounts, limits: SandboxLimits,
                 cancel: CancellationFlag, onLine: (String) -> Void) throws -> SandboxResult
}
