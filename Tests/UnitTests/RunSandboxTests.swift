// UnitTests: the run sandbox with real bwrap and real bash: state kept across commands, per-command limits, the persistent shell, nothing left after close.
import Foundation
import PatchdSystem
import Testing

@testable import Sandboxing

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway workspace, objects and scratch directory for one run sandbox.
final class RunSandboxFixture {
    let dir: String
    let mounts: SandboxMounts

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("run-sandbox-\(UUID().uuidString)").path
        for sub in ["/ws/sub", "/scratch", "/objects"] {
            try FileManager.default.createDirectory(atPath: dir + sub, withIntermediateDirectories: true)
        }
        mounts = SandboxMounts(workspace: dir + "/ws", repositoryObjects: dir + "/objects", scratch: dir + "/scratch")
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    static func limits(seconds: Double = 30) -> SandboxLimits {
        var limits = SandboxLimits()
        limits.wallClockSeconds = seconds
        return limits
    }

    static func text(_ result: SandboxResult) -> String {
        String(decoding: result.output.head + Array(result.output.tail), as: UTF8.self)
    }
}

@Suite("run sandbox", .serialized)
struct RunSandboxTests {
    static let backends: [any Sandbox] = [BubblewrapSandbox(), UnsandboxedSandbox()]

    @Test("/tmp, HOME and background processes persist from one command to the next (bwrap)", arguments: [0])
    func statePersists(_ unused: Int) throws {
        let fixture = try RunSandboxFixture()
        let run = try BubblewrapSandbox().open(mounts: fixture.mounts, limits: RunSandboxFixture.limits(), cancel: CancellationFlag())
        defer { run.close() }
        let first = try run.execute(
            // The detached sleep must have left the command's process group before the command
            // ends (then its group is killed): wait until it leads its own session.
            script: """
                echo made > /tmp/x && echo home > ~/h
                setsid sleep 300 </dev/null >/dev/null 2>&1 &
                for i in $(seq 500); do [ "$(ps -o sid= -p $! | tr -d ' ')" = "$!" ] && break; sleep 0.01; done
                (sleep 301 >/dev/null 2>&1 &) && echo started
                """,
            environment: [:],
            limits: RunSandboxFixture.limits()
        ) { _ in }
        #expect(first.succeeded && RunSandboxFixture.text(first) == "started\n", "\(RunSandboxFixture.text(first))")
        let second = try run.execute(
            // The first command's own group is killed as it ends; a SIGKILLed sleep can linger a
            // moment as a zombie on a loaded machine, so count live ones, waiting up to 2 s.
            script:
                "cat /tmp/x ~/h; echo $HOME; pwd; for i in $(seq 100); do n=$(pgrep -c -r R,S,D sleep); [ \"$n\" = 1 ] && break; sleep 0.02; done; echo $n; id -u",
            environment: ["X": "1"],
            limits: RunSandboxFixture.limits()
        ) { _ in }
        #expect(RunSandboxFixture.text(second) == "made\nhome\n/home/agent\n/workspace\n1\n1000\n", "\(RunSandboxFixture.text(second))")
        #expect(FileManager.default.fileExists(atPath: fixture.mounts.scratch + "/home/h"))
    }

    @Test("a command past its wall clock is killed with its process group; the run sandbox goes on", arguments: backends)
    func perCommandTimeout(_ sandbox: any Sandbox) throws {
        let fixture = try RunSandboxFixture()
        let run = try sandbox.open(mounts: fixture.mounts, limits: RunSandboxFixture.limits(), cancel: CancellationFlag())
        defer { run.close() }
        let started = MonotonicClock.now
        let hung = try run.execute(script: "sleep 200 & sleep 100", environment: [:], limits: RunSandboxFixture.limits(seconds: 1)) { _ in }
        #expect(hung.limit == .timeout)
        #expect(MonotonicClock.now - started < 8)
        let next = try run.execute(script: "echo fine; pgrep -c -x sleep || true", environment: [:], limits: RunSandboxFixture.limits()) { _ in }
        #expect(next.succeeded)
        // bwrap: the killed group is gone (0 sleeps); none shares the host's process table, so only "fine" is checked.
        #expect(RunSandboxFixture.text(next).hasPrefix("fine\n"))
        if sandbox is BubblewrapSandbox { #expect(RunSandboxFixture.text(next) == "fine\n0\n") }
    }

    @Test("the persistent shell keeps cd, variables, functions and a sourced file; restart clears them", arguments: backends)
    func persistentShell(_ sandbox: any Sandbox) throws {
        let fixture = try RunSandboxFixture()
        try "export FROM_SOURCE=yes\n".write(toFile: fixture.mounts.workspace + "/env.sh", atomically: true, encoding: .utf8)
        let run = try sandbox.open(mounts: fixture.mounts, limits: RunSandboxFixture.limits(), cancel: CancellationFlag())
        defer { run.close() }
        let limits = RunSandboxFixture.limits()
        let set = try run.shell("source env.sh; cd sub; export X=1; greet() { echo hi \"$1\"; }; echo set", limits: limits) { _ in }
        #expect(RunSandboxFixture.text(set) == "set\n" && set.exitStatus == 0)
        let check = try run.shell("pwd; echo $X $FROM_SOURCE; greet you; false", limits: limits) { _ in }
        #expect(RunSandboxFixture.text(check) == "\(sandbox is BubblewrapSandbox ? "/workspace" : fixture.mounts.workspace)/sub\n1 yes\nhi you\n")
        #expect(check.exitStatus == 1)
        // Output without a final newline comes back as it is.
        let partial = try run.shell("printf 'no newline'", limits: limits) { _ in }
        #expect(RunSandboxFixture.text(partial) == "no newline")
        run.restartShell()
        let fresh = try run.shell("pwd; echo ${X:-unset}; type greet >/dev/null 2>&1 || echo no-greet", limits: limits) { _ in }
        #expect(RunSandboxFixture.text(fresh) == "\(sandbox is BubblewrapSandbox ? "/workspace" : fixture.mounts.workspace)\nunset\nno-greet\n")
    }

    @Test("a hanging shell command ends at its timeout, the shell restarts, and the next call works; exit ends the shell", arguments: backends)
    func shellTimeout(_ sandbox: any Sandbox) throws {
        let fixture = try RunSandboxFixture()
        let run = try sandbox.open(mounts: fixture.mounts, limits: RunSandboxFixture.limits(), cancel: CancellationFlag())
        defer { run.close() }
        _ = try run.shell("export KEPT=1", limits: RunSandboxFixture.limits()) { _ in }
        let started = MonotonicClock.now
        let hung = try run.shell("echo before; sleep 100", limits: RunSandboxFixture.limits(seconds: 1)) { _ in }
        #expect(hung.limit == .timeout && RunSandboxFixture.text(hung) == "before\n")
        #expect(MonotonicClock.now - started < 8)
        let next = try run.shell("echo ${KEPT:-fresh}", limits: RunSandboxFixture.limits()) { _ in }
        #expect(RunSandboxFixture.text(next) == "fresh\n" && next.succeeded)
        let exited = try run.shell("echo bye; exit 3", limits: RunSandboxFixture.limits()) { _ in }
        #expect(exited.exitStatus == 3 && RunSandboxFixture.text(exited) == "bye\n")
        let after = try run.shell("echo again", limits: RunSandboxFixture.limits()) { _ in }
        #expect(RunSandboxFixture.text(after) == "again\n")
    }

    @Test("close kills every process of the run and leaves no cgroup, mount or control file")
    func closeLeavesNothing() throws {
        let fixture = try RunSandboxFixture()
        let marker = "patchd-leftover-\(UInt32.random(in: 0...UInt32.max))"
        var run: RunSandbox? = try BubblewrapSandbox().open(
            mounts: fixture.mounts, limits: RunSandboxFixture.limits(),
            cancel: CancellationFlag())
        // A process that escapes its command's group (setsid) and one in the background.
        _ = try run!.execute(
            script:
                "cp /usr/bin/sleep /tmp/\(marker); setsid /tmp/\(marker) 300 >/dev/null 2>&1 & setsid /tmp/\(marker) 301 >/dev/null 2>&1 & sleep 0.3",
            environment: [:], limits: RunSandboxFixture.limits()
        ) { _ in }
        _ = try run!.shell("/tmp/\(marker) 302 >/dev/null 2>&1 & sleep 0.3", limits: RunSandboxFixture.limits()) { _ in }
        #expect(Self.processes(named: marker) == 3)
        let cgroups = Self.patchdCgroups()
        run!.close()
        run = nil
        let deadline = MonotonicClock.now + 5
        while MonotonicClock.now < deadline, Self.processes(named: marker) > 0 { usleep(20_000) }
        #expect(Self.processes(named: marker) == 0)
        #expect(Self.patchdCgroups().count < cgroups.count || cgroups.isEmpty, "the run's cgroup is gone")
        #expect(!((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").contains(fixture.dir))
        #expect(!FileManager.default.fileExists(atPath: fixture.mounts.scratch + "/ctl"))
    }

    static func processes(named name: String) -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.filter { pid in
            (readSmallFile("/proc/\(pid)/cmdline") ?? "").contains(name)
        }.count
    }

    static func patchdCgroups() -> [String] {
        guard let root = ProcessCgroup.root else { return [] }
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("run-\(getpid())-") }
    }
}

/// bench/run-sandbox.sh: one command in a running run sandbox against one fresh bwrap per
/// command (the model before run sandboxes), `true` each time, median of PATCHD_BENCH_N runs.
@Suite struct RunSandboxBench {
    @Test func commandCost() throws {
        let n = Int(ProcessInfo.processInfo.environment["PATCHD_BENCH_N"] ?? "") ?? 30
        let fixture = try RunSandboxFixture()
        let limits = RunSandboxFixture.limits()
        let run = try BubblewrapSandbox().open(mounts: fixture.mounts, limits: limits, cancel: CancellationFlag())
        defer { run.close() }
        func median(_ body: () throws -> Void) rethrows -> Double {
            var times: [Double] = []
            for _ in 0..<n {
                let started = MonotonicClock.now
                try body()
                times.append(MonotonicClock.now - started)
            }
            return times.sorted()[n / 2]
        }
        let inRun = try median { _ = try run.execute(script: "true", environment: [:], limits: limits) { _ in } }
        let inShell = try median { _ = try run.shell("true", limits: limits) { _ in } }
        // The model before run sandboxes: a fresh bwrap (prlimit, its own cgroup) per command,
        // its output on a pipe: the old argv, the init replaced by `bash -c true`.
        let sandbox = BubblewrapSandbox()
        var argv = [sandbox.bwrap] + (try sandbox.arguments(mounts: fixture.mounts, binds: try BubblewrapSandbox.runBinds(fixture.mounts)))
        argv = Array(argv[...argv.lastIndex(of: "--")!]) + ["/bin/bash", "--noprofile", "--norc", "-c", "true"]
        let fresh = try median {
            let r = try LimitedProcess.run(
                argv: argv, environment: [:], workingDirectory: nil, limits: limits, cancel: CancellationFlag(),
                confinement: .local(cgroupName: "bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"),
                workspace: fixture.mounts.workspace
            ) { _ in }
            #expect(r.succeeded)
        }
        print(
            String(
                format:
                    "run-sandbox bench: command in the run sandbox %.2f ms, persistent shell call %.2f ms, fresh bwrap per command %.2f ms (%.1fx, %.1fx)",
                inRun * 1000, inShell * 1000, fresh * 1000, fresh / inRun, fresh / inShell))
        #expect(inRun < fresh)
    }
}
