// IntegrationTests: faults and load: 200 mixed connections, racing pushes, kill -9 rounds, a full disk.

import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Resident memory of a process in KiB (from /proc).
func residentKiB(_ pid: pid_t) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

/// Opens a TCP connection to the server that never authenticates (nothing is sent).
func silentConnection(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return fd
}

@Suite("faults and load", .serialized)
struct FaultAndLoadTests {
    @Test("200 concurrent connections: clones, pushes, commands, idle and never-authenticating ones; memory stays bounded")
    func twoHundredConnections() throws {
        let server = try TestServer(config: "max_unauthenticated: 300\n")
        let work = try server.makeWorkTree("w", repo: "load", commits: 10)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let baseline = residentKiB(server.process!.pid)
        let started = Date()

        // 20 that never authenticate, held open during the load.
        let silent = (0..<20).map { _ in silentConnection(port: server.port) }
        defer { silent.forEach { close($0) } }
        // 20 authenticated and idle (ssh -N opens no channel), killed at the end.
        var idle: [ChildProcess] = []
        for i in 0..<20 {
            idle.append(
                try startBackground(
                    "/usr/bin/ssh", server.sshOptions(server.admin) + ["-N", "git@127.0.0.1"],
                    outputPath: server.tmp.path + "/idle\(i).log"))
        }
        defer { for p in idle { p.signalGroup(SIGKILL); p.wait() } }

        let env = server.gitEnv(server.admin), url = server.url("load"), base = server.tmp.path
        let ssh = ["/usr/bin/ssh"] + server.sshOptions(server.admin) + ["git@127.0.0.1"]
        // 160 legitimate operations at once: 70 clones, 20 pushes to distinct branches, 70 commands.
        let results = LockedCollector(count: 160, initial: false)
        let workDir = work
        DispatchQueue.concurrentPerform(iterations: 160) { i in
            let ok: Bool
            switch i {
            case 0..<70:
                let r = try? run("/usr/bin/git", ["clone", "-q", url, base + "/c\(i)"], cwd: base, env: env, timeout: 300)
                ok = r?.status == 0
            case 70..<90:
                let r = try? run("/usr/bin/git", ["push", "-q", "origin", "main:load-\(i)"], cwd: workDir, env: env, timeout: 300)
                ok = r?.status == 0
            default:
                let r = try? run(ssh[0], Array(ssh.dropFirst()) + [i % 2 == 0 ? "whoami" : "repo list"], timeout: 300)
                ok = r?.status == 0
            }
            results.set(i, ok)
        }
        let failures = results.all.enumerated().filter { !$0.element }.map(\.offset)
        #expect(failures.isEmpty, "failed operations: \(failures)")
        let after = residentKiB(server.process!.pid)
        print(
            "figure: 200 connections (160 operations) in \(String(format: "%.1f", Date().timeIntervalSince(started)))s; server RSS \(baseline) KiB before, \(after) KiB after"
        )
        #expect(after < max(baseline * 4, 400_000), "server RSS grew from \(baseline) KiB to \(after) KiB")
        try expectOK(server.ssh(nil, ["whoami"]), "still serving")
        let refs = try server.git(["ls-remote", "origin"], in: work).stdout
        #expect(refs.split(separator: "\n").filter { $0.contains("refs/heads/load-") }.count == 20)
    }

    @Test("concurrent pushes to one branch resolve as git does: one wins, the other is told to fetch first")
    func racingPushes() throws {
        let server = try TestServer()
        let a = try server.makeWorkTree("a", repo: "race", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: a))
        let b = server.tmp.path + "/b"
        try expectOK(server.git(["clone", "-q", server.url("race"), b], in: server.tmp.path))
        for (dir, name) in [(a, "from-a"), (b, "from-b")] {
            for i in 0..<3 {
                try server.write(dir, "\(name)-\(i).txt", String(repeating: "\(name)\n", count: 10_000))
                try server.commitAll(dir, "\(name) \(i)")
            }
        }
        let env = server.gitEnv(server.admin)
        let results = LockedCollector(count: 2, initial: false)
        let outputs = LockedCollector<String>()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? run("/usr/bin/git", ["push", "origin", "main"], cwd: i == 0 ? a : b, env: env)
            results.set(i, r?.status == 0)
            outputs.append(r?.stderr ?? "")
        }
        #expect(results.all.filter { $0 }.count == 1, "exactly one push wins: \(outputs.all)")
        #expect(
            outputs.all.contains {
                $0.contains("fetch first") || $0.contains("non-fast-forward") || $0.contains("failed to update ref") || $0.contains("cannot lock ref")
            },
            "the loser is told why: \(outputs.all)")
        try expectOK(run("/usr/bin/git", ["fsck", "--no-progress"], cwd: server.repoRoot + "/race.git"))
    }

    @Test("kill -9 at random points during pushes and runs, 20 rounds: accepted pushes survive, repos stay fsck-clean, runs end or resume")
    func killNineRounds() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("w", repo: "crashy", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        var accepted: [String: String] = [:]  // branch -> commit the client was told was pushed
        for round in 0..<20 {
            let branch = "r\(round)"
            try server.write(work, ".patchd/task.md", TestServer.commandTask("sleep 0.\(round % 5)\necho \(round) > ROUND.txt"))
            try server.write(work, "data-\(round).bin", String(repeating: "\(round)", count: 200_000))
            try server.commitAll(work, "round \(round)")
            let head = try server.git(["rev-parse", "HEAD"], in: work).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let out = server.tmp.path + "/push\(round).log"
            let push = try startBackground(
                "/usr/bin/git", ["push", "-q", "origin", "HEAD:\(branch)"], cwd: work,
                env: server.gitEnv(server.admin), outputPath: out)
            if round % 5 == 4 {
                // Every fifth round the push completes and the kill lands during its run.
                _ = push.wait(timeout: 60)
                usleep(useconds_t(Int.random(in: 0...150_000)))
            } else {
                usleep(useconds_t(Int.random(in: 20_000...400_000)))
            }
            server.stop(signal: SIGKILL)
            let status = push.wait(timeout: 30)
            if status == 0 { accepted[branch] = head }
            try server.start()
        }
        // Every push the client saw succeed is on the server; every repo is fsck-clean.
        let refs = try server.git(["ls-remote", "origin"], in: work).stdout
        for (branch, commit) in accepted {
            #expect(refs.contains("\(commit)\trefs/heads/\(branch)"), "accepted push to \(branch) was lost")
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: server.repoRoot) where name.hasSuffix(".git") {
            try expectOK(run("/usr/bin/git", ["fsck", "--no-progress"], cwd: server.repoRoot + "/" + name), "fsck \(name)")
        }
        // Every run ends (succeeded after resuming, or failed with a reason); none is left running.
        let runs = try server.json(nil, ["run", "list", "--json"]) as! [[String: Any]]
        let deadline = Date().addingTimeInterval(120)
        for run in runs {
            let id = run["id"] as! Int
            var json = run
            while Date() < deadline, ["queued", "running"].contains(json["status"] as? String ?? "") {
                usleep(100_000)
                json = try server.runJSON(id)
            }
            let status = json["status"] as? String ?? ""
            #expect(["succeeded", "failed"].contains(status), "run \(id) ended \(status)")
            if status == "failed" { #expect(!((json["error"] as? String) ?? "").isEmpty, "run \(id) failed without a reason") }
        }
        #expect(accepted.count >= 4, "the rounds that let the push finish must count: \(accepted.count)")
        print("figure: kill -9 rounds: 20, pushes the client saw succeed: \(accepted.count), runs: \(runs.count), all repos fsck-clean")
    }

    @Test(
        "a full disk: a push fails with a clear error, a run filling it is stopped with limit disk, nothing is corrupted, and the server recovers when space returns",
        .enabled(if: getuid() == 0, "needs root to mount a small tmpfs"))
    func diskFull() throws {
        let mountPoint = TempDir("patchd-tmpfs")
        try expectOK(run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=12m", "tmpfs", mountPoint.path]), "mount tmpfs")
        defer { _ = try? run("/usr/bin/umount", ["-l", mountPoint.path]) }
        let server = try TestServer(dataDir: mountPoint.path + "/data")
        let work = try server.makeWorkTree("w", repo: "full", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let fd = open("/dev/urandom", O_RDONLY)
        let bytes = try readAll(fd, limit: 20_000_000)
        close(fd)
        try Data(bytes).write(to: URL(fileURLWithPath: work + "/big.bin"))
        try server.commitAll(work, "too big for the disk")
        let push = try server.git(["push", "origin", "main"], in: work)
        #expect(push.status != 0, "a 20 MB push into a 12 MB disk must fail")
        print("figure: disk full: " + push.stderr.split(separator: "\n").prefix(3).joined(separator: " / "))
        #expect(
            push.stderr.contains("No space left") || push.stderr.contains("unpack") || push.stderr.contains("error"),
            "the client is told: \(push.stderr)")
        try expectOK(server.ssh(nil, ["whoami"]), "the server keeps serving")
        try expectOK(run("/usr/bin/git", ["fsck", "--no-progress"], cwd: mountPoint.path + "/data/repos/full.git"), "fsck after the failed push")
        // A run that writes until the disk is full: stopped at the free-space floor (5% of 12 MB).
        try expectOK(server.git(["reset", "-q", "--hard", "HEAD~1"], in: work))
        try server.write(
            work, ".patchd/task.md",
            TestServer.commandTask(
                "for i in $(seq 200); do head -c 200000 /dev/zero > fill-$i 2>/dev/null; sleep 0.05; done", timeout: "60s"))
        try server.commitAll(work, "fill the disk")
        let fill = try server.git(["push", "-o", "wait", "origin", "HEAD:fill"], in: work, timeout: 120)
        #expect(fill.stderr.contains("failed"), "\(fill.stderr)")
        let json = try server.runJSON(1)
        #expect(json["limit"] as? String == "disk", "\(json)")
        try expectOK(server.ssh(nil, ["whoami"]), "the server keeps serving after the run")
        try expectOK(run("/usr/bin/git", ["fsck", "--no-progress"], cwd: mountPoint.path + "/data/repos/full.git"), "fsck after the run")
        // Space returns.
        try expectOK(run("/usr/bin/mount", ["-o", "remount,size=200m", mountPoint.path]), "grow tmpfs")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "push after space returned")
    }
}

@Suite("out of threads", .serialized)
struct OutOfThreadsTests {
    /// A pids cgroup (v1 or v2) to cap the server's threads in, or nil when this machine has none writable.
    static func pidsCgroup(_ name: String) -> (dir: String, root: String)? {
        for (root, controllers) in [("/sys/fs/cgroup/pids", nil), ("/sys/fs/cgroup", "/sys/fs/cgroup/cgroup.controllers")] as [(String, String?)] {
            if let controllers, !((try? String(contentsOfFile: controllers, encoding: .utf8)) ?? "").contains("pids") { continue }
            let dir = root + "/" + name
            if (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)) != nil,
                FileManager.default.fileExists(atPath: dir + "/pids.max")
            {
                return (dir, root)
            }
        }
        return nil
    }

    @Test("when no thread can be created, the connection is refused and the daemon keeps serving (it used to abort)")
    func pthreadCreateFails() throws {
        let server = try TestServer()
        try expectOK(server.ssh(nil, ["whoami"]))
        guard let pid = server.process?.pid, let cgroup = Self.pidsCgroup("patchd-test-\(getpid())-\(pid)") else {
            Issue.record("no writable pids cgroup on this machine: the test cannot cap the server's threads")
            return
        }
        defer {
            try? "\(pid)\n".write(toFile: cgroup.root + "/cgroup.procs", atomically: false, encoding: .utf8)
            rmdir(cgroup.dir)
        }
        try "\(pid)\n".write(toFile: cgroup.dir + "/cgroup.procs", atomically: false, encoding: .utf8)
        let current =
            Int(
                ((try? String(contentsOfFile: cgroup.dir + "/pids.current", encoding: .utf8)) ?? "")
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(current > 0)
        try "\(current)\n".write(toFile: cgroup.dir + "/pids.max", atomically: false, encoding: .utf8)
        // No thread can start: each new connection is dropped at once.
        for _ in 0..<5 {
            let r = try server.ssh(nil, ["whoami"])
            #expect(r.status != 0)
        }
        #expect(server.process?.poll() == nil, "the daemon is still running:\n\(server.log)")
        try "max\n".write(toFile: cgroup.dir + "/pids.max", atomically: false, encoding: .utf8)
        try expectOK(server.ssh(nil, ["whoami"]), "serving again once threads can be made")
        #expect(server.log.contains("pthread_create"), "the refusal is logged")
    }
}
