// IntegrationTests: one sandbox per run through the real server: setup's venv reaches the agent and check; the result holds only the agent's work.
import Foundation
import Testing

@Suite("run environment", .serialized)
struct RunEnvironmentTests {
    /// The README's Python example without the network: setup makes a venv in /tmp and rewrites
    /// a tracked file, the agent edits calc.py, check imports it from the venv (writing
    /// __pycache__); the result is the agent's edit alone.
    @Test("setup's /tmp venv reaches run and check; setup's writes, check's bytecode and untracked caches stay out of the result")
    func pythonExample() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "calc", commits: 1)
        try server.write(work, "calc.py", "def add(a, b):\n    return a - b\n")
        try server.write(work, "VERSION", "1.0\n")
        try server.write(
            work, ".patchd/task.md",
            """
            ---
            agent: command
            setup: |
              python3 -m venv /tmp/venv
              echo generated-by-setup > VERSION
              mkdir -p node_modules/left && echo x > node_modules/left/index.js
              echo "$HOME" > /tmp/setup-home && touch ~/.setup-was-here
            run: |
              test -x /tmp/venv/bin/python && test -f ~/.setup-was-here
              sed -i 's/a - b/a + b/' calc.py
              /tmp/venv/bin/python -c 'import calc' && echo made a cache
              mkdir -p .venv/lib && echo y > .venv/lib/site.py
              echo kept > notes.log
            check: |
              /tmp/venv/bin/python -c 'import calc; assert calc.add(2, 3) == 5' && echo checked > CHECK_RAN
            exclude: ["*.log"]
            ---
            Fix add.
            """)
        try server.commitAll(work, "python task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        #expect(json["check"] as? String == "passed", "\(json)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let changed = try expectOK(server.git(["diff", "--name-only", "HEAD", "FETCH_HEAD"], in: work)).stdout
        #expect(changed == "calc.py\n", "the result holds only the agent's edit: \(changed)")
        #expect(try server.git(["show", "FETCH_HEAD:calc.py"], in: work).stdout.contains("a + b"))
        #expect(try server.git(["show", "FETCH_HEAD:VERSION"], in: work).stdout == "1.0\n", "setup's rewrite is not the agent's work")
        // Nothing is left of the run's sandbox: no process, no control directory, no cgroup.
        // The daemon names its runs' cgroups run-PID-N; other suites' servers run alongside.
        let daemon = try #require(server.process?.pid)
        #expect(try Self.runCgroups().filter { $0.hasPrefix("run-\(daemon)-") }.isEmpty, "the run's cgroup is removed")
        #expect(!FileManager.default.fileExists(atPath: server.dataDir + "/work/run-1"))
    }

    /// The run cgroups under patchd's pids hierarchy (v1 or v2), by name.
    static func runCgroups() throws -> [String] {
        try run("/bin/sh", ["-c", "ls /sys/fs/cgroup/pids/patchd /sys/fs/cgroup/patchd 2>/dev/null | grep '^run-' | sort || true"]).stdout
            .split(separator: "\n").map(String.init)
    }

    @Test("default_excludes: false keeps an untracked cache in the result")
    func excludesOff() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "keep", commits: 1)
        try server.write(
            work, ".patchd/task.md",
            """
            ---
            agent: command
            default_excludes: false
            run: |
              mkdir -p __pycache__ && echo z > __pycache__/m.pyc && echo w > kept.txt
            ---
            Keep caches.
            """)
        try server.commitAll(work, "keep caches")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let files = try expectOK(server.git(["diff", "--name-only", "HEAD", "FETCH_HEAD"], in: work)).stdout
        #expect(files == "__pycache__/m.pyc\nkept.txt\n", "\(files)")
    }
}
