// IntegrationTests: the environment cache through the real server: a Python project with real PyPI dependencies installs once, later runs start from the cached venv, isolated from each other; env list/clear; secrets reach setup alone.
import Foundation
import Testing

/// A small Python project: thirteen pinned pure-Python wheels from PyPI (about 2 MB), a test.
enum PythonProject {
    static let requirements = """
        pytest==8.3.4
        iniconfig==2.0.0
        pluggy==1.5.0
        packaging==24.2
        six==1.17.0
        idna==3.10
        attrs==24.3.0
        certifi==2024.12.14
        typing_extensions==4.12.2
        python-dateutil==2.9.0.post0
        pyparsing==3.2.0
        wcwidth==0.2.13
        toml==0.10.2

        """

    static func task(run: String, check: String = ".venv/bin/pytest -q", extra: String = "") -> String {
        func block(_ s: String) -> String { s.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n") }
        return """
            ---
            agent: command
            \(extra)setup: |
              echo "setup ran"
              mkdir -p ~/.cache/tool && echo base > ~/.cache/tool/state
              python3 -m venv .venv && .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
            run: |
            \(block(run))
            check: |
            \(block(check))
            ---
            Fix add.
            """
    }

    static func make(_ server: TestServer, repo: String, run: String = "sed -i 's/a - b/a + b/' calc.py") throws -> String {
        let work = try server.makeWorkTree("work-\(repo)", repo: repo, commits: 1)
        try server.write(work, "calc.py", "def add(a, b):\n    return a - b\n")
        try server.write(
            work, "test_calc.py",
            "import calc, dateutil, six, attrs, idna, certifi, packaging, pyparsing, wcwidth, toml, typing_extensions\n\ndef test_add():\n    assert calc.add(2, 3) == 5\n"
        )
        try server.write(work, "requirements.txt", requirements)
        try server.write(work, ".gitignore", ".venv/\n")
        try server.write(work, ".patchd/task.md", task(run: run))
        try server.commitAll(work, "python project")
        return work
    }
}

@Suite("environment cache", .serialized)
struct EnvironmentCacheTests {
    static func environment(_ json: [String: Any]) -> [String: Any] { json["environment"] as? [String: Any] ?? [:] }

    func push(_ server: TestServer, _ work: String, branch: String = "main") throws -> CommandResult {
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "HEAD:\(branch)"], in: work, timeout: 400))
    }

    @Test(
        "first run installs (miss), the same lockfile is a hit that skips setup and passes check, a changed lockfile rebuilds, a corrupted env leaves the cache intact"
    )
    func missHitRebuild() throws {
        let server = try TestServer()
        let work = try PythonProject.make(server, repo: "calc")
        _ = try push(server, work)
        let first = try server.runJSON(1)
        #expect(first["status"] as? String == "succeeded", "\(first)\n\(server.log)")
        #expect(first["check"] as? String == "passed")
        let env1 = Self.environment(first)
        #expect(env1["hit"] as? Bool == false, "\(first)")
        let key = try #require(env1["key"] as? String)
        #expect((env1["setup_seconds"] as? Double ?? 0) > 0.5, "\(env1)")
        let logs1 = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs1.contains("environment: cache miss \(key.prefix(12))"), "\(logs1)")
        #expect(logs1.contains("environment: kept \(key.prefix(12))"), "\(logs1)")

        // The source moves, the lockfile does not; this run's agent also wrecks its venv.
        try server.write(work, "calc.py", "def add(a, b):\n    return a - b  # moved\n")
        try server.write(
            work, ".patchd/task.md",
            PythonProject.task(
                run:
                    "sed -i 's/a - b/a + b/' calc.py\nrm -rf .venv/lib/python3*/site-packages/six.py .venv/lib/python3*/site-packages/dateutil\necho wrecked > .venv/WRECKED\necho x >> ~/.cache/tool/state",
                check: "test ! -e .venv/lib/python3*/site-packages/six.py"))
        try server.commitAll(work, "move")
        _ = try push(server, work)
        let second = try server.runJSON(2)
        #expect(second["status"] as? String == "succeeded", "\(second)")
        #expect(Self.environment(second)["hit"] as? Bool == true, "\(second)")
        #expect(Self.environment(second)["key"] as? String == key)
        let logs2 = try expectOK(server.ssh(nil, ["run", "logs", "2"])).stdout
        #expect(logs2.contains("environment: cache hit \(key.prefix(12))"), "\(logs2)")
        #expect(!logs2.contains("setup ran"), "setup was skipped: \(logs2)")

        // Same key again: the cached venv is whole (the wreck stayed in run 2), and check passes with it.
        try server.write(
            work, ".patchd/task.md",
            PythonProject.task(
                run: "test ! -e .venv/WRECKED && test \"$(cat ~/.cache/tool/state)\" = base && echo venv intact\nsed -i 's/a - b/a + b/' calc.py"))
        try server.commitAll(work, "again")
        _ = try push(server, work)
        let third = try server.runJSON(3)
        #expect(third["status"] as? String == "succeeded", "\(third)")
        #expect(third["check"] as? String == "passed", "pytest ran from the cached venv: \(third)")
        #expect(Self.environment(third)["hit"] as? Bool == true)
        let logs3 = try expectOK(server.ssh(nil, ["run", "logs", "3"])).stdout
        #expect(logs3.contains("venv intact"), "\(logs3)")

        // A changed lockfile: a miss, setup runs again, a second entry.
        try server.write(work, "requirements.txt", PythonProject.requirements.replacingOccurrences(of: "toml==0.10.2\n", with: ""))
        try server.write(work, "test_calc.py", "import calc\n\ndef test_add():\n    assert calc.add(2, 3) == 5\n")
        // (A push queues a run when it changes the task file.)
        try server.write(work, ".patchd/task.md", PythonProject.task(run: "sed -i 's/a - b/a + b/' calc.py\necho rebuilt"))
        try server.commitAll(work, "drop toml")
        _ = try push(server, work)
        let fourth = try server.runJSON(4)
        #expect(fourth["status"] as? String == "succeeded", "\(fourth)")
        #expect(Self.environment(fourth)["hit"] as? Bool == false)
        #expect(Self.environment(fourth)["key"] as? String != key)
        let logs4 = try expectOK(server.ssh(nil, ["run", "logs", "4"])).stdout
        #expect(logs4.contains("setup ran"), "\(logs4)")

        // env list shows both, the first with its two hits; clear removes one, then all.
        let list = try expectOK(server.ssh(nil, ["env", "list", "calc", "--json"])).stdout
        let entries = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]] ?? []
        #expect(entries.count == 2, "\(list)")
        #expect(entries.first { $0["key"] as? String == key }?["hits"] as? Int == 2, "\(list)")
        #expect(entries.allSatisfy { ($0["size_bytes"] as? Int ?? 0) > 1_000_000 }, "\(list)")
        try expectOK(server.ssh(nil, ["env", "clear", "calc", String(key.prefix(12))]))
        #expect(!FileManager.default.fileExists(atPath: "\(server.dataDir)/environments/1/\(key)"))
        let after = try expectOK(server.ssh(nil, ["env", "list", "calc"])).stdout
        #expect(!after.contains(key.prefix(12)), "\(after)")
        try expectOK(server.ssh(nil, ["env", "clear", "calc"]))
        let cleared = try expectOK(server.ssh(nil, ["env", "list", "calc", "--json"])).stdout
        #expect((try JSONSerialization.jsonObject(with: Data(cleared.utf8)) as? [Any])?.isEmpty == true, "\(cleared)")
    }

    @Test("two concurrent runs on one cached environment cannot see each other's writes")
    func concurrentRunsIsolated() throws {
        let server = try TestServer(config: "workers: 2\n")
        let work = try PythonProject.make(server, repo: "iso")
        _ = try push(server, work)
        #expect(Self.environment(try server.runJSON(1))["hit"] as? Bool == false)
        let probe = """
            me=$(git rev-parse --abbrev-ref HEAD)
            echo "$me" > .venv/MINE-$me; echo "$me" >> ~/.cache/tool/state
            for i in $(seq 1 40); do [ -e .venv/MINE-a ] && [ -e .venv/MINE-b ] && break; sleep 0.1; done
            ls .venv | grep MINE- | tr '\\n' ' '; echo; cat ~/.cache/tool/state | tr '\\n' ' '; echo
            """
        try server.write(work, ".patchd/task.md", PythonProject.task(run: probe, check: "true"))
        try server.commitAll(work, "probe")
        try expectOK(server.git(["push", "-q", "origin", "HEAD:a", "HEAD:b"], in: work))
        let a = try server.waitForRun(2, timeout: 120), b = try server.waitForRun(3, timeout: 120)
        for (json, id, me, other) in [(a, 2, "a", "b"), (b, 3, "b", "a")] {
            #expect(json["status"] as? String == "succeeded", "\(json)")
            #expect(Self.environment(json)["hit"] as? Bool == true, "\(json)")
            let logs = try expectOK(server.ssh(nil, ["run", "logs", String(id)])).stdout
            #expect(logs.contains("MINE-\(me)") && !logs.contains("MINE-\(other)"), "\(logs)")
        }
    }

    @Test("eviction at the repository's cap keeps the newest entry")
    func evictionAtCap() throws {
        let server = try TestServer(config: "environment_cache_repo_max_bytes: 100000000\n")
        let work = try server.makeWorkTree("work", repo: "big", commits: 1)
        func task(_ n: Int) -> String {
            "---\nagent: command\nsetup: |\n  head -c 60000000 /dev/urandom > ~/blob-\(n)\nrun: |\n  ls ~\n---\nGo.\n"
        }
        for n in 1...2 {
            try server.write(work, "requirements.txt", "v\(n)\n")
            try server.write(work, ".patchd/task.md", task(n))
            try server.commitAll(work, "v\(n)")
            _ = try push(server, work)
        }
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "2"])).stdout
        #expect(logs.contains("environment: evicted"), "\(logs)")
        let list = try expectOK(server.ssh(nil, ["env", "list", "big", "--json"])).stdout
        let entries = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]] ?? []
        #expect(entries.count == 1, "\(list)")
        #expect(entries.first?["key"] as? String == Self.environment(try server.runJSON(2))["key"] as? String)
    }

    @Test("a secret reaches setup alone: setup sees it, the agent and check do not, and no log, note or result holds it even when setup prints it")
    func secretsForSetupOnly() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "sec", commits: 1)
        let secret = "tok-5f3a9c81e2d7"
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        try expectOK(server.ssh(nil, ["repo", "secret", "set", "sec", "REG_TOKEN"], stdin: secret + "\n"))
        #expect(try expectOK(server.ssh(nil, ["repo", "secret", "list", "sec"])).stdout == "REG_TOKEN\n")
        // At rest: neither the database nor its WAL holds the value.
        for file in ["patchd.sqlite", "patchd.sqlite-wal"] {
            let bytes = FileManager.default.contents(atPath: "\(server.dataDir)/\(file)") ?? Data()
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds the secret in the clear")
        }
        try server.write(
            work, ".patchd/task.md",
            """
            ---
            agent: command
            setup: |
              echo "setup token: $REG_TOKEN"
              [ "$REG_TOKEN" = "\(secret)" ] && echo SETUP-HAS-IT
            run: |
              echo "agent token: [${REG_TOKEN:-}]"; env | grep -c tok-5f3a || true
              echo "${REG_TOKEN:-none}" > agent-saw.txt
            check: |
              [ -z "${REG_TOKEN:-}" ] && echo CHECK-HAS-NONE
            ---
            Go.
            """)
        try server.commitAll(work, "secret task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("SETUP-HAS-IT"), "\(logs)")
        #expect(logs.contains("setup token: ***"), "\(logs)")
        #expect(logs.contains("agent token: []"), "\(logs)")
        #expect(logs.contains("CHECK-HAS-NONE"), "\(logs)")
        #expect(!logs.contains(secret) && !push.output.contains(secret), "\(logs)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main", "refs/notes/patchd:refs/notes/patchd"], in: work))
        let saw = try expectOK(server.git(["show", "FETCH_HEAD:agent-saw.txt"], in: work)).stdout
        #expect(saw == "none\n", "\(saw)")
        let note = try expectOK(server.git(["notes", "--ref", "patchd", "show", "FETCH_HEAD"], in: work)).stdout
        #expect(!note.contains(secret) && note.contains("***"), "\(note)")
        #expect(try expectOK(server.ssh(nil, ["repo", "secret", "remove", "sec", "REG_TOKEN"])).stdout.contains("removed"))
    }
}
