// Sandboxing: the `none` backend's run sandbox: each command a process on the host with the limits, HOME kept for the run.
import Foundation
import PatchdSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// No isolation: each command is spawned by the daemon (prlimit and a cgroup of its own), in
/// the workspace, with HOME at the run's scratch `home`. The persistent shell is one bash on
/// the host. Nothing is mounted, so any bind is allowed (commands see host paths).
final class DirectRunSandbox: RunSandbox {
    let mounts: SandboxMounts
    let limits: SandboxLimits
    let cancel: CancellationFlag
    let environment: [String: String]
    private let shellSlot = Mutex<ShellSession?>(nil)
    private let commandFiles: String
    private let counter = Mutex(0)

    init(mounts: SandboxMounts, limits: SandboxLimits, cancel: CancellationFlag) throws {
        self.mounts = mounts
        self.limits = limits
        self.cancel = cancel
        let home = RunSandboxPaths.home(mounts)
        commandFiles = RunSandboxPaths.control(mounts)
        for dir in [home, commandFiles, RunSandboxPaths.bridge(mounts)] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        environment = SandboxEnvironment.base(home: home).merging(mounts.environment) { _, run in run }
    }

    func checkBinds(_ binds: [SandboxBind]) throws(SandboxSetupError) {}

    private func cgroupName() -> String { "none-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    func execute(
        script: String, environment extra: [String: String], limits: SandboxLimits, stop: CancellationFlag?,
        onLine: (String) -> Void
    ) throws -> SandboxResult {
        try checkEnvironment(extra)
        let env = environment.merging(extra) { _, new in new }
        return try LimitedProcess.run(
            argv: ["/bin/bash", "--noprofile", "--norc", "-c", script], environment: env,
            workingDirectory: mounts.workspace, limits: limits, cancel: stop.map { CancellationFlag(either: cancel, $0) } ?? cancel,
            confinement: .local(cgroupName: cgroupName()), workspace: mounts.workspace, onLine: onLine)
    }

    func shell(_ command: String, limits: SandboxLimits, onLine: (String) -> Void) throws -> SandboxResult {
        try shellSlot.withLock { slot in
            if slot == nil {
                let confined = LimitedProcess.confine(["/bin/bash", "--noprofile", "--norc"], limits: self.limits, cgroupName: cgroupName())
                let output = try PipePair()
                let child = try ChildProcess(
                    executable: confined.argv[0], arguments: Array(confined.argv.dropFirst()),
                    environment: environment, workingDirectory: mounts.workspace, stdin: .pipe,
                    stdout: .fd(output.write.raw), stderr: .fd(output.write.raw))
                output.write.close()
                try output.read.setNonBlocking()
                let probe = confined.cgroup.map { g in CommandDeltaProbe(forks: { g.forkRefusals }, ooms: { g.oomKills }) }
                let process = SpawnedCommand(child: child, output: output.read, probe: probe, cgroup: confined.cgroup)
                slot = ShellSession(process: process, input: child.stdin!)
            }
            let session = slot!
            let n = counter.withLock { n in
                n += 1; return n
            }
            let file = "\(commandFiles)/shell-\(n).sh"
            try Array(command.utf8).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: file)) }
            defer { unlink(file) }
            let (result, alive) = session.run(file: file, limits: limits, cancel: cancel, workspace: mounts.workspace, onLine: onLine)
            if !alive { slot = nil }
            return result
        }
    }

    func restartShell() {
        shellSlot.withLock { slot in
            slot?.end()
            slot = nil
        }
    }

    func close() {
        restartShell()
        try? FileManager.default.removeItem(atPath: commandFiles)
    }
}
