// Sandboxing: the run sandbox: one sandbox per run (namespaces, cgroup, /tmp, HOME) that every command of the run enters.
import Foundation
import PatchdSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One run's sandbox, open from before setup to after check. Commands run in it one after
/// another (or side by side); what they leave in /tmp, in HOME (/home/agent) and in the
/// workspace stays for the next; each command has its own wall clock and output cap. `close`
/// kills every process in it and discards everything but the workspace.
package protocol RunSandbox: AnyObject, Sendable {
    /// Runs `script` with bash in the workspace as its own process group; output lines
    /// (stdout and stderr merged) go to `onLine`. Never throws for the script's own failure.
    /// `stop` ends this command alone (a long-lived helper such as an MCP server); nil: only
    /// the run's cancel and the command's limits end it.
    func execute(
        script: String, environment: [String: String], limits: SandboxLimits, stop: CancellationFlag?,
        onLine: (String) -> Void
    ) throws -> SandboxResult
    /// Runs `command` in the run's persistent bash (started on first use): its working
    /// directory, variables, functions and activated venv persist to the next call. The result
    /// is that command's output and status. A command that hits a limit (its time) kills the
    /// shell; the next call starts a fresh one (`SandboxResult.limit` says why).
    func shell(_ command: String, limits: SandboxLimits, onLine: (String) -> Void) throws -> SandboxResult
    /// Ends the persistent shell; the next `shell` call starts a fresh one.
    func restartShell()
    /// Checks that `binds` were declared when the sandbox opened (host and inside path, or a
    /// path below a declared directory): a running sandbox cannot grow new mounts.
    func checkBinds(_ binds: [SandboxBind]) throws(SandboxSetupError)
    /// Kills every process of the sandbox and removes all it had but the workspace. Idempotent.
    func close()
}

extension RunSandbox {
    /// `execute` ended only by the run's cancel and the command's limits.
    package func execute(
        script: String, environment: [String: String], limits: SandboxLimits, onLine: (String) -> Void
    ) throws -> SandboxResult {
        try execute(script: script, environment: environment, limits: limits, stop: nil, onLine: onLine)
    }
}

/// Where a run sandbox's own files live in the run's scratch directory, and where commands see them.
package enum RunSandboxPaths {
    /// Host: the commands' HOME, kept with the run (the claude CLI's session state is there).
    package static func home(_ mounts: SandboxMounts) -> String { mounts.scratch + "/home" }
    /// Host: unix sockets the daemon serves to the sandbox (the API bridge; later the egress proxy).
    package static func bridge(_ mounts: SandboxMounts) -> String { mounts.scratch + "/bridge" }
    /// Host: the control directory (command scripts, environments, output FIFOs).
    static func control(_ mounts: SandboxMounts) -> String { mounts.scratch + "/ctl" }
    package static let homeInside = "/home/agent"
    package static let bridgeInside = "/patchd/bridge"
    static let controlInside = "/patchd/ctl"
}

/// Whether `bind` is one of `declared` or lies below a declared directory at the same place.
func isCovered(_ bind: SandboxBind, by declared: [SandboxBind]) -> Bool {
    declared.contains { d in
        if d.host == bind.host && d.inside == bind.inside { return d.writable || !bind.writable }
        guard bind.host.hasPrefix(d.host + "/") else { return false }
        return d.inside + bind.host.dropFirst(d.host.count) == bind.inside
    }
}

func refuseUndeclared(_ binds: [SandboxBind], declared: [SandboxBind]) throws(SandboxSetupError) {
    for bind in binds where !isCovered(bind, by: declared) {
        throw SandboxSetupError(
            "the run sandbox is already open, so \(bind.inside) cannot be mounted into it; "
                + "declare the bind in the agent's sandboxBinds (it is mounted when the run opens) or place the file under "
                + RunSandboxPaths.bridgeInside + " or " + RunSandboxPaths.homeInside)
    }
}

/// Environment names a command may be given: what `env` takes as an assignment, nothing else.
func checkEnvironment(_ environment: [String: String]) throws(SandboxSetupError) {
    for (key, value) in environment {
        let ok =
            !key.isEmpty && key.utf8.allSatisfy { $0 == 95 || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
            && !(key.utf8.first! >= 48 && key.utf8.first! <= 57)
        guard ok, !value.utf8.contains(0) else {
            throw SandboxSetupError(
                "environment variable '\(key)' cannot be passed to a sandboxed command: names are letters, digits and '_' (not first), values have no NUL"
            )
        }
    }
}

/// The run's persistent bash, whichever way it was started: its process, the write end of its
/// stdin, and the token of the line that ends each command's output. Only ever used under its
/// run sandbox's shell lock (one call at a time), which is what makes it safe to send.
final class ShellSession: @unchecked Sendable {
    let process: SandboxProcess
    let input: OwnedFD
    let token: String
    var calls = 0

    init(process: SandboxProcess, input: OwnedFD) {
        self.process = process
        self.input = input
        token = "__patchd_done_" + (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined()
    }

    /// Sources the command's file (so `cd`, `export`, functions and `source` stick), with stdin
    /// from /dev/null so the command cannot eat the next one, then prints the end marker with
    /// its status. A command that ends the shell (`exit 3`) ends without the marker.
    func run(
        file: String, limits: SandboxLimits, cancel: CancellationFlag, workspace: String?,
        onLine: (String) -> Void
    ) -> (SandboxResult, alive: Bool) {
        let started = MonotonicClock.now
        let line = ". \(ShellQuoting.quote(file)) </dev/null; printf '\\n\(token) %d\\n' \"$?\"\n"
        do {
            try writeAll(input.raw, line)
        } catch {
            var result = SandboxResult(exitStatus: 255, limit: nil, duration: 0, outputBytes: 0, outputTail: "")
            result.output.append(Array("the shell had ended; it is restarted for the next command\n".utf8))
            return (result, false)
        }
        let result = LimitedProcess.drive(
            process, limits: limits, cancel: cancel, startedAt: started, workspace: workspace,
            terminator: OutputTerminator(token: token), onLine: onLine)
        let alive = result.limit == nil && process.exitStatus() == nil
        if !alive { end() }
        return (result, alive)
    }

    func end() {
        input.close()
        process.killAll()
        _ = process.wait(timeout: 5)
    }
}

/// Single-quoting for a path in a shell line.
enum ShellQuoting {
    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
