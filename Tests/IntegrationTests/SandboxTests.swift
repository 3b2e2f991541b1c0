// IntegrationTests: what a run's sandbox cannot do, the limits that cut runs off, crash recovery, ordering.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("sandboxed runs", .serialized)
struct SandboxTests {
    @Test("the sandbox hides the data dir, host keys, other repos and the daemon's env; no network; /usr read-only; uid 1000; symlinks stay links")
    func isolation() throws {
        let secret = "sk-patchd-test-secret-\(UInt32.random(in: 0...UInt32.max))"
        let server = try TestServer(env: ["PATCHD_TEST_SECRET": secret])
        // Another repository that the run must not see.
        let other = try server.makeWorkTree("other", repo: "other", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: other))
        let data = server.dataDir
        let script = """
            exec > report.txt 2>&1
            echo "uid=$(id -u)"
            cat '\(data)/ssh_host_ed25519_key' >/dev/null 2>&1 && echo hostkey=READ || echo hostkey=denied
            ls '\(data)' >/dev/null 2>&1 && echo datadir=READ || echo datadir=denied
            ls '\(data)/repos/other.git' >/dev/null 2>&1 && echo otherrepo=READ || echo otherrepo=denied
            cat '\(data)/patchd.sqlite' >/dev/null 2>&1 && echo database=READ || echo database=denied
            touch /usr/patchd-probe 2>/dev/null && echo usr=WRITABLE || echo usr=readonly
            (exec 3<>/dev/tcp/127.0.0.1/\(server.port)) 2>/dev/null && echo net=OPEN || echo net=closed
            (exec 3<>/dev/tcp/1.1.1.1/53) 2>/dev/null && echo internet=OPEN || echo internet=closed
            (env; cat /proc/*/environ 2>/dev/null) | grep -q '\(secret)' && echo secret=LEAKED || echo secret=absent
            git log --oneline -1 >/dev/null 2>&1 && echo git=works || echo git=broken
            touch /patchd/objects/planted 2>/dev/null && echo objects=WRITABLE || echo objects=readonly
            # Programs named in the workspace's git config must never run on the host.
            git config core.fsmonitor 'touch \(data)/../fsmonitor-ran'
            git config core.pager 'touch \(data)/../pager-ran'
            printf '#!/bin/sh\ntouch \(data)/../hook-ran\n' > .git/hooks/post-commit; chmod +x .git/hooks/post-commit
            ln -s '\(data)/ssh_host_ed25519_key' hostkey-link
            ln -s / root-link
            """
        let work = try server.makeWorkTree("work", repo: "iso", commits: 1)
        try server.write(work, ".patchd/task.md", TestServer.commandTask(script))
        try server.commitAll(work, "isolation probe")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work))
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let report = try expectOK(server.git(["show", "FETCH_HEAD:report.txt"], in: work)).stdout
        for expected in [
            "uid=1000", "hostkey=denied", "datadir=denied", "otherrepo=denied", "database=denied",
            "usr=readonly", "net=closed", "internet=closed", "secret=absent", "git=works", "objects=readonly",
        ] {
            #expect(report.contains(expected), "sandbox report lacks \(expected):\n\(report)")
        }
        // The planted symlink is stored as a link whose content is its target text, not the key.
        let tree = try expectOK(server.git(["ls-tree", "FETCH_HEAD", "hostkey-link", "root-link"], in: work)).stdout
        #expect(tree.split(separator: "\n").allSatisfy { $0.hasPrefix("120000 blob") }, "links must be mode 120000: \(tree)")
        let target = try server.git(["cat-file", "-p", "FETCH_HEAD:hostkey-link"], in: work).stdout
        #expect(target == "\(data)/ssh_host_ed25519_key")
        #expect(!FileManager.default.fileExists(atPath: "/usr/patchd-probe"))
        for marker in ["fsmonitor-ran", "pager-ran", "hook-ran"] {
            #expect(
                !FileManager.default.fileExists(atPath: server.tmp.path + "/" + marker), "\(marker): patchd ran a program from the workspace's .git")
        }
        #expect(!FileManager.default.fileExists(atPath: server.repoRoot + "/iso.git/objects/planted"))
    }

    @Test(
        "a fork bomb, a 2 GB file, 1 GB of memory, an endless loop, 400 MB of files and 100 MB of output are cut off with the reason, and the server keeps serving"
    )
    func limits() throws {
        let server = try TestServer(
            config: """
                max_processes: 64
                max_file_bytes: 50000000
                max_output_bytes: 5000000
                max_memory_bytes: 268435456
                max_workspace_bytes: 100000000
                """)
        let work = try server.makeWorkTree("work", repo: "lim", commits: 1)
        let doctor = try run(patchdBinary, ["doctor", "--data-dir", server.dataDir, "--listen", "127.0.0.1:0"])
        let processCapAvailable = doctor.stdout.contains("ok   process limit:")
        let memoryCgroupAvailable = doctor.stdout.contains("ok   memory limit: memory cgroup at")
        let cases: [LimitCases.Case] = [
            ("forkbomb", "bomb() { bomb | bomb & }; bomb\nsleep 30", "20s", "processes"),
            ("bigfile", "head -c 2000000000 /dev/zero > big.bin", nil, "file_size"),
            // Held in /tmp (a tmpfs, charged to the command's memory cgroup) and in a process.
            ("memory", "head -c 40000000 /dev/zero > /tmp/fill && python3 -c 'x = bytearray(1 << 30); print(len(x))'", "30s", "memory"),
            ("loop", "while true; do :; done", "2s", "timeout"),
            ("disk", "for i in $(seq 40); do head -c 10000000 /dev/zero > fill-$i; done; sleep 20", "30s", "disk"),
            ("output", "yes 'a line of output' | head -c 100000000", nil, "output"),
        ]
        // Without a pids cgroup a root daemon has no process cap (RLIMIT_NPROC does not bind
        // uid 0; doctor warns): a fork bomb there would hurt the machine, so it is left out.
        // Without a memory cgroup, RLIMIT_AS makes the allocation fail instead: no limit to report.
        let runnable = cases.filter { ($0.limit != "processes" || processCapAvailable) && ($0.limit != "memory" || memoryCgroupAvailable) }
        try LimitCases.expect(runnable, server: server, work: work) { c in
            try expectOK(server.ssh(nil, ["whoami"]), "server still serving after \(c.branch)")
        }
        // The 2 GB file was cut at the limit and is not in the partial result.
        let bigFileRun = (runnable.firstIndex { $0.branch == "bigfile" } ?? 0) + 1
        let remote = try server.git(["ls-remote", "origin", "refs/patchd/runs/\(bigFileRun)"], in: work).stdout
        if !remote.isEmpty {
            try expectOK(server.git(["fetch", "-q", "origin", "refs/patchd/runs/\(bigFileRun)"], in: work))
            let files = try server.git(["ls-tree", "-r", "--name-only", "FETCH_HEAD"], in: work).stdout
            #expect(!files.contains("big.bin"))
        }
        #expect(!server.log.contains("Fatal error"))
    }

    @Test("max_cpus: four busy loops for 4 s under a 0.25-core cap use about 1 s of CPU, not 4-8 s")
    func cpuCap() throws {
        let server = try TestServer(config: "max_cpus: 0.25\n")
        let doctor = try run(
            patchdBinary,
            [
                "doctor", "--config", server.tmp.path + "/patchd.yaml", "--data-dir", server.dataDir,
                "--listen", "127.0.0.1:0",
            ])
        guard doctor.stdout.contains("ok   cpu limit:") else {
            // No writable cpu cgroup (not root): doctor must say the cap is not applied.
            #expect(doctor.stdout.contains("warn cpu limit:"), "\(doctor.stdout)")
            return
        }
        try CPUCapProbe.check(server)
    }

    @Test("kill -9 during a run: after restart the run is re-queued and finishes; repos stay fsck-clean")
    func crashDuringRun() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "crash", commits: 2)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("sleep 2\necho survived > DONE.txt"))
        try server.commitAll(work, "slow task")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, try server.runJSON(1)["status"] as? String != "running" { usleep(50_000) }
        #expect(try server.runJSON(1)["status"] as? String == "running")
        server.stop(signal: SIGKILL)
        try server.start()
        let json = try server.waitForRun(1, timeout: 60)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:DONE.txt"], in: work).stdout == "survived\n")
        try expectOK(run("/usr/bin/git", ["fsck", "--no-progress"], cwd: server.repoRoot + "/crash.git"), "fsck")
        let logs = try server.ssh(nil, ["run", "logs", "1"]).stdout
        #expect(logs.contains("re-queued"))
        let pushed = try server.git(["rev-parse", "HEAD"], in: work).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try server.git(["ls-remote", "origin", "refs/heads/main"], in: work).stdout.hasPrefix(pushed))
    }

    @Test("runs of one branch go in push order; another branch runs in parallel")
    func perBranchOrdering() throws {
        let server = try TestServer(extraArgs: ["--workers", "2"])
        let work = try server.makeWorkTree("work", repo: "order", commits: 1)
        // Run 1 holds until the test drops a file into its workspace (a directory on this host).
        try server.write(
            work, ".patchd/task.md",
            TestServer.commandTask("for i in $(seq 600); do [ -f release ] && break; sleep 0.1; done\nrm -f release\necho first > A.txt"))
        try server.commitAll(work, "task 1")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo second > B.txt"))
        try server.commitAll(work, "task 2")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        try expectOK(server.git(["push", "-q", "origin", "main:other"], in: work))
        // Run 3 (another branch) finishes while run 1 still runs and run 2 still waits for it.
        #expect(try server.waitForRun(3)["status"] as? String == "succeeded")
        #expect(try server.runJSON(1)["status"] as? String == "running")
        #expect(try server.runJSON(2)["status"] as? String == "queued", "run 2 of the same branch must wait for run 1")
        #expect(FileManager.default.createFile(atPath: server.dataDir + "/work/run-1/workspace/release", contents: Data()))
        let r1 = try server.waitForRun(1), r2 = try server.waitForRun(2)
        #expect(r1["status"] as? String == "succeeded")
        #expect(r2["status"] as? String == "succeeded")
        let iso = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        #expect(try iso.parse(r2["started_at"] as! String) >= iso.parse(r1["finished_at"] as! String))
    }
}

/// Runs busy loops in a run and reads back the CPU time they got (bash `times`: the reaped
/// children's user and system time).
enum CPUCapProbe {
    static func check(_ server: TestServer, timeout: Int = 120) throws {
        let work = try server.makeWorkTree("work", repo: "cpu", commits: 1)
        let script = """
            for i in 1 2 3 4; do timeout 4 sh -c 'while :; do :; done' & done; wait
            times > times.txt   # not in a pipeline: a subshell's `times` has no children
            tail -1 times.txt > cpu.txt
            """
        try server.write(work, ".patchd/task.md", TestServer.commandTask(script, timeout: "60s"))
        try server.commitAll(work, "busy loops")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: timeout))
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let line = try expectOK(server.git(["show", "FETCH_HEAD:cpu.txt"], in: work)).stdout
        // "0m1.234s 0m0.010s": minutes and seconds of user, then system time.
        let seconds = line.split(separator: " ").compactMap { field -> Double? in
            let parts = field.trimmingCharacters(in: .whitespacesAndNewlines).dropLast().split(separator: "m")
            guard parts.count == 2, let m = Double(parts[0]), let s = Double(parts[1]) else { return nil }
            return m * 60 + s
        }.reduce(0, +)
        #expect(seconds > 0.3 && seconds < 1.8, "CPU time of 4 busy loops for 4 s under a 0.25-core cap: \(seconds) s (\(line))")
    }
}

/// Tasks that must each be cut off by one limit: pushed one by one with `-o wait` on a branch
/// of their own (runs 1, 2, ... in order), each must fail promptly with that limit recorded.
enum LimitCases {
    typealias Case = (branch: String, script: String, timeout: String?, limit: String)

    static func expect(_ cases: [Case], server: TestServer, work: String, after: (Case) throws -> Void) throws {
        for (index, c) in cases.enumerated() {
            try server.write(work, ".patchd/task.md", TestServer.commandTask(c.script, timeout: c.timeout))
            try server.commitAll(work, c.branch)
            let started = Date()
            let push = try expectOK(server.git(["push", "-o", "wait", "origin", "HEAD:\(c.branch)"], in: work, timeout: 120))
            #expect(push.stderr.contains("run \(index + 1) failed"), "\(c.branch): \(push.stderr)")
            let json = try server.runJSON(index + 1)
            #expect(json["status"] as? String == "failed")
            #expect(json["limit"] as? String == c.limit, "\(c.branch): limit \(json["limit"] ?? "nil"), error \(json["error"] ?? "nil")")
            #expect(Date().timeIntervalSince(started) < 60, "\(c.branch) was not cut off promptly")
            try after(c)
        }
    }
}
