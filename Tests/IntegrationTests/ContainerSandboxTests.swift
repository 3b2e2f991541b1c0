// IntegrationTests: `--sandbox container` against real podman (or docker): isolation, limits, ownership, the builtin agent.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The image scripts/setup-container-sandbox.sh builds (Debian minbase + git, python3, socat,
/// and /etc/patchd-test-image). Where the engine or the image is missing the suite is skipped,
/// unless PATCHD_REQUIRE_CONTAINER_TESTS=1 (set by .ci/run after building the image): then a
/// missing one fails the suite instead of hiding it. The engine is podman, or the one
/// PATCHD_TEST_CONTAINER_ENGINE names (docker: load the image with `docker load` first).
enum ContainerTestImage {
    static let name = ProcessInfo.processInfo.environment["PATCHD_TEST_IMAGE"] ?? "localhost/patchd-sandbox-test"
    static let engineName = ProcessInfo.processInfo.environment["PATCHD_TEST_CONTAINER_ENGINE"] ?? "podman"

    /// The engine's client, if installed.
    static let engine: String? = ["/usr/bin/", "/usr/local/bin/"].map { $0 + engineName }.first { access($0, X_OK) == 0 }

    static var shouldRun: Bool {
        if ProcessInfo.processInfo.environment["PATCHD_REQUIRE_CONTAINER_TESTS"] == "1" { return true }
        guard let engine, getuid() == 0 else { return false }
        return (try? run(engine, ["image", "inspect", name]).status) == 0
    }

    static var config: String {
        "sandbox: container\ncontainer_image: \(name)\ncontainer_engine: \(engineName)\n"
    }

    static func client() throws -> String {
        guard let engine else { throw TestFailure("\(engineName) is not installed: run scripts/setup-container-sandbox.sh as root") }
        return engine
    }

    /// The label filter for the containers of `server` (patchd labels them with its data directory).
    static func label(of server: TestServer) -> String {
        "label=io.patchd.sandbox=\(URL(fileURLWithPath: server.dataDir).standardizedFileURL.path)"
    }

    /// Containers `server` started and did not remove (another checkout's suite may run at the same time).
    static func leftovers(of server: TestServer) throws -> [String] {
        let r = try expectOK(run(try client(), ["ps", "--all", "--quiet", "--filter", label(of: server)]), "\(engineName) ps")
        return r.stdout.split(separator: "\n").map(String.init)
    }
}

@Suite(
    "container sandbox", .serialized,
    .enabled(
        if: ContainerTestImage.shouldRun,
        "needs root, podman (or PATCHD_TEST_CONTAINER_ENGINE) and the test image: scripts/setup-container-sandbox.sh"))
struct ContainerSandboxTests {
    @Test(
        "a run in the image: its files, uid 1000, no network, no host paths or secrets, read-only root and objects; links the agent planted are not followed when the workspace is handed over"
    )
    func isolation() throws {
        let secret = "sk-patchd-test-secret-\(UInt32.random(in: 0...UInt32.max))"
        let server = try TestServer(env: ["PATCHD_TEST_SECRET": secret], config: ContainerTestImage.config)
        // Host files owned by root that a planted symlink names; the hand-over before the
        // second command (the check) must not chown them.
        let victim = server.tmp.path + "/victim-file"
        let victimDir = server.tmp.path + "/victim-dir"
        try "host file\n".write(toFile: victim, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: victimDir + "/inner", withIntermediateDirectories: true)
        let data = server.dataDir
        let script = """
            exec > report.txt 2>&1
            echo "uid=$(id -u)"
            test -f /etc/patchd-test-image && echo image=yes || echo image=NO
            test -e /opt/swift && echo hostfs=VISIBLE || echo hostfs=hidden
            ls '\(data)' >/dev/null 2>&1 && echo datadir=READ || echo datadir=denied
            touch /usr/patchd-probe 2>/dev/null && echo usr=WRITABLE || echo usr=readonly
            touch /etc/patchd-probe 2>/dev/null && echo etc=WRITABLE || echo etc=readonly
            (exec 3<>/dev/tcp/127.0.0.1/\(server.port)) 2>/dev/null && echo net=OPEN || echo net=closed
            (exec 3<>/dev/tcp/1.1.1.1/53) 2>/dev/null && echo internet=OPEN || echo internet=closed
            (env; cat /proc/*/environ 2>/dev/null) | grep -q '\(secret)' && echo secret=LEAKED || echo secret=absent
            git log --oneline -1 >/dev/null 2>&1 && echo git=works || echo git=broken
            touch /patchd/objects/planted 2>/dev/null && echo objects=WRITABLE || echo objects=readonly
            grep -q CapEff:.0000000000000000 /proc/self/status && echo caps=none || echo caps=SOME
            echo tmp > /tmp/x && echo tmp=writable || echo tmp=BROKEN
            ln -s '\(victim)' victim-link
            ln -s '\(victimDir)' victim-dir-link
            """
        let work = try server.makeWorkTree("work", repo: "iso", commits: 1)
        try server.write(work, ".patchd/task.md", TestServer.commandTask(script, check: "test -f report.txt"))
        try server.commitAll(work, "isolation probe")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "run: \(json)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let report = try expectOK(server.git(["show", "FETCH_HEAD:report.txt"], in: work)).stdout
        for expected in [
            "uid=1000", "image=yes", "hostfs=hidden", "datadir=denied", "usr=readonly", "etc=readonly",
            "net=closed", "internet=closed", "secret=absent", "git=works", "objects=readonly", "caps=none",
            "tmp=writable",
        ] {
            #expect(report.contains(expected), "container report lacks \(expected):\n\(report)")
        }
        var st = stat()
        for path in [victim, victimDir, victimDir + "/inner"] {
            #expect(lstat(path, &st) == 0 && st.st_uid == 0, "\(path) was handed to uid \(st.st_uid) through a planted link")
        }
        #expect(!FileManager.default.fileExists(atPath: server.repoRoot + "/iso.git/objects/planted"))
        #expect(try ContainerTestImage.leftovers(of: server).isEmpty, "containers left behind")
    }

    /// The egress bridge through a container: setup reaches an allowed host (plain HTTP, so the
    /// image's CA bundle does not matter) through the proxy, the agent phase does not.
    @Test("egress in a container: setup fetches through the proxy, the agent phase has no way out, the record lists it")
    func egress() throws {
        let server = try TestServer(config: ContainerTestImage.config)
        let work = try server.makeWorkTree("work", repo: "net", commits: 1)
        let fetch = "python3 -c \"import urllib.request; print(len(urllib.request.urlopen('http://deb.debian.org/debian/', timeout=20).read()))\""
        try server.write(
            work, ".patchd/task.md",
            """
            ---
            agent: command
            setup: |
              \(fetch) && echo SETUP-""FETCHED
            run: |
              \(fetch) 2>/dev/null && echo AGENT-""FETCHED || echo agent ""offline
            ---
            Fetch.
            """)
        try server.commitAll(work, "fetch")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: 180))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("SETUP-FETCHED") && logs.contains("agent offline") && !logs.contains("AGENT-FETCHED"), "\(logs)")
        let connections = ((json["network"] as? [String: Any])?["connections"] as? [[String: Any]]) ?? []
        #expect(connections.contains { $0["host"] as? String == "deb.debian.org" && $0["allowed"] as? Bool == true }, "\(connections)")
        #expect(try ContainerTestImage.leftovers(of: server).isEmpty)
    }

    @Test("limits in a container: a fork bomb, a 2 GB file, 1 GB of memory and an endless loop are cut off with the reason; no container is left")
    func limits() throws {
        let server = try TestServer(
            config: ContainerTestImage.config + """
                max_processes: 64
                max_file_bytes: 50000000
                max_memory_bytes: 268435456
                """)
        let work = try server.makeWorkTree("work", repo: "lim", commits: 1)
        let cases: [LimitCases.Case] = [
            ("forkbomb", "bomb() { bomb | bomb & }; bomb\nsleep 30", "20s", "processes"),
            ("bigfile", "head -c 2000000000 /dev/zero > big.bin", nil, "file_size"),
            ("memory", "python3 -c 'x = bytearray(1 << 30); print(len(x))'", "30s", "memory"),
            ("loop", "while true; do :; done", "3s", "timeout"),
        ]
        try LimitCases.expect(cases, server: server, work: work) { (c) throws in
            #expect(try ContainerTestImage.leftovers(of: server).isEmpty, "\(c.branch): container left behind")
            // podman's conmon writes `oom` into its working directory: that must be the run's scratch.
            #expect(!FileManager.default.fileExists(atPath: server.tmp.path + "/oom"), "\(c.branch): a file in the daemon's working directory")
        }
        try expectOK(server.ssh(nil, ["whoami"]), "server still serving")
    }

    @Test(
        "kill -9 during a container command: the restarted daemon removes its leftover container, not another daemon's, and the run is re-queued and finishes"
    )
    func crashLeavesNoContainer() throws {
        let engine = try ContainerTestImage.client()
        // A container of "another daemon" (another data dir) that must survive this one's cleanup.
        let foreign = "patchd-test-foreign-\(UInt32.random(in: 0...UInt32.max))"
        try expectOK(
            run(
                engine,
                [
                    "run", "-d", "--rm", "--name", foreign, "--label", "io.patchd.sandbox=/elsewhere/data",
                    "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
                    ContainerTestImage.name, "sleep", "120",
                ]), "foreign container")
        defer { _ = try? run(engine, ["rm", "--force", foreign]) }
        let server = try TestServer(config: ContainerTestImage.config)
        let work = try server.makeWorkTree("work", repo: "crash", commits: 1)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("sleep 3\necho survived > DONE.txt"))
        try server.commitAll(work, "slow task")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let ownLabel = ContainerTestImage.label(of: server)
        let deadline = Date().addingTimeInterval(30)
        var running: [String] = []
        while Date() < deadline && running.isEmpty {
            running = try run(engine, ["ps", "--quiet", "--filter", ownLabel]).stdout.split(separator: "\n").map(String.init)
            usleep(50_000)
        }
        #expect(!running.isEmpty, "no container of this daemon was seen running")
        server.stop(signal: SIGKILL)
        // The run's container usually ends by itself (its init reads the daemon's pipe and
        // sees EOF). One whose engine client died with the daemon (an OOM kill of the whole
        // group) stays: stand one in with this daemon's label, which the restart must remove.
        let stray = "patchd-test-stray-\(UInt32.random(in: 0...UInt32.max))"
        let ownerValue = String(ownLabel.dropFirst("label=io.patchd.sandbox=".count))
        try expectOK(
            run(
                engine,
                [
                    "run", "-d", "--name", stray, "--label", "io.patchd.sandbox=\(ownerValue)",
                    "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
                    ContainerTestImage.name, "sleep", "120",
                ]), "stray container")
        defer { _ = try? run(engine, ["rm", "--force", stray]) }
        try server.start()
        #expect(server.log.contains("leftover sandbox container"), "\(server.log.suffix(2000))")
        let json = try server.waitForRun(1, timeout: 90)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:DONE.txt"], in: work).stdout == "survived\n")
        let left = try run(engine, ["ps", "--all", "--quiet", "--filter", ownLabel]).stdout
        #expect(left.isEmpty, "containers of this daemon left: \(left)")
        let others = try run(engine, ["ps", "--quiet", "--filter", "name=\(foreign)"]).stdout
        #expect(!others.isEmpty, "another daemon's container was removed")
    }

    @Test("max_cpus in a container: four busy loops for 4 s under a 0.25-core cap use about 1 s of CPU")
    func cpuCap() throws {
        let server = try TestServer(config: ContainerTestImage.config + "max_cpus: 0.25\n")
        try CPUCapProbe.check(server)
    }

    @Test("the builtin agent in a container: a file the editor created on the host side is writable by the agent's next bash command")
    func builtinAgentEditsAcrossTheBoundary() throws {
        let tmp = TempDir("fake-api")
        let api = try FakeMessagesAPI(
            steps: """
                [
                  {"reply": [{"type": "tool_use", "id": "toolu_01", "name": "str_replace_based_edit_tool",
                              "input": {"command": "create", "path": "/workspace/src/notes.txt", "file_text": "from the editor\\n"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 100, "output_tokens": 10}},
                  {"reply": [{"type": "tool_use", "id": "toolu_02", "name": "bash",
                              "input": {"command": "echo from-bash >> src/notes.txt && cat /etc/patchd-test-image && id -u"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 100, "output_tokens": 10}},
                  {"expect": ["patchd-sandbox-test", "1000"],
                   "reply": [{"type": "text", "text": "Appended a line."}],
                   "stop_reason": "end_turn", "usage": {"input_tokens": 100, "output_tokens": 10}}
                ]
                """, in: tmp.path)
        let server = try TestServer.withAgent(api, config: ContainerTestImage.config)
        let work = try server.makeWorkTree("work", repo: "edit", commits: 1)
        try server.write(work, ".patchd/task.md", "---\nagent: builtin\nmodel: claude-sonnet-4-5\n---\nAppend to notes.\n")
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "run: \(json)\nrequests: \(api.rawLog.suffix(2000))")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let notes = try expectOK(server.git(["show", "FETCH_HEAD:src/notes.txt"], in: work)).stdout
        #expect(notes == "from the editor\nfrom-bash\n")
    }

    @Test("a server whose sandbox image is missing says so at start, with the build command")
    func missingImageWarning() throws {
        let server = try TestServer(
            config: "sandbox: container\ncontainer_image: localhost/patchd-no-such-image\ncontainer_engine: \(ContainerTestImage.engineName)\n")
        #expect(server.log.contains("sandbox image localhost/patchd-no-such-image is not in"), "\(server.log.suffix(1500))")
        #expect(server.log.contains("Containerfile.sandbox"))
    }

    @Test("doctor checks the container backend by starting the image, and names the fix for a missing image")
    func doctor() throws {
        let tmp = TempDir("doctor")
        let good = try run(
            patchdBinary,
            [
                "doctor", "--data-dir", tmp.path + "/data", "--listen", "127.0.0.1:0",
                "--sandbox", "container", "--container-image", ContainerTestImage.name,
                "--container-engine", ContainerTestImage.engineName,
            ])
        #expect(good.stdout.contains("ok   container:"), "\(good.output)")
        let missing = try run(
            patchdBinary,
            [
                "doctor", "--data-dir", tmp.path + "/data", "--listen", "127.0.0.1:0",
                "--sandbox", "container", "--container-image", "localhost/patchd-no-such-image",
                "--container-engine", ContainerTestImage.engineName,
            ])
        #expect(missing.status == 1)
        #expect(missing.stdout.contains("fail container:") && missing.stdout.contains("podman build"), "\(missing.output)")
    }
}
