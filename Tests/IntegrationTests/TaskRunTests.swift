// IntegrationTests: a pushed task becomes a sandboxed run whose result comes back as agent/BRANCH.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Helpers for task tests: write a task file, commit, push, read run JSON.
extension TestServer {
    func write(_ dir: String, _ path: String, _ content: String) throws {
        let url = URL(fileURLWithPath: dir + "/" + path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.write(to: url, atomically: true, encoding: .utf8)
    }

    func commitAll(_ dir: String, _ message: String) throws {
        try expectOK(git(["add", "-A"], in: dir))
        try expectOK(git(["commit", "-q", "-m", message], in: dir))
    }

    /// A command task file.
    static func commandTask(_ run: String, check: String? = nil, timeout: String? = nil, body: String = "Do the thing.") -> String {
        var front = "---\nagent: command\n"
        if let timeout { front += "timeout: \(timeout)\n" }
        front += "run: |\n" + run.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n") + "\n"
        if let check { front += "check: |\n  \(check)\n" }
        return front + "---\n" + body + "\n"
    }

    func runJSON(_ id: Int) throws -> [String: Any] {
        let r = try expectOK(ssh(nil, ["run", "show", String(id), "--json"]), "run show --json")
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    }

    /// Polls until the run has finished (or `timeout` seconds pass).
    func waitForRun(_ id: Int, timeout: Double = 60) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let json = try runJSON(id)
            if let status = json["status"] as? String, ["succeeded", "failed", "canceled"].contains(status) { return json }
            usleep(100_000)
        }
        throw TestFailure("run \(id) did not finish in \(timeout)s:\n\(log)")
    }
}

@Suite("task runs", .serialized)
struct TaskRunTests {
    @Test("a command task end to end: -o wait, result commit, trailers, agent branch, run ref, note, run diff")
    func commandTaskEndToEnd() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "app", commits: 1)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo hello > HELLO.txt\necho 'made HELLO.txt'"))
        try server.commitAll(work, "add a task")
        let base = try server.git(["rev-parse", "HEAD"], in: work).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main:feature"], in: work), "push -o wait")
        #expect(push.stderr.contains("remote: patchd: run 1 queued for feature"))
        #expect(push.stderr.contains("made HELLO.txt"))
        #expect(push.stderr.contains("run 1 succeeded"))
        #expect(push.stderr.contains("HELLO.txt | 1 +"))
        #expect(push.stderr.contains("git fetch origin agent/feature"))

        try expectOK(server.git(["fetch", "-q", "origin", "agent/feature"], in: work), "fetch agent/feature")
        let parent = try server.git(["rev-parse", "FETCH_HEAD^"], in: work).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(parent == base)
        let message = try server.git(["log", "-1", "--format=%an <%ae>%n%B", "FETCH_HEAD"], in: work).stdout
        #expect(message.hasPrefix("patchd <patchd@"))
        #expect(message.contains("Do the thing."))
        #expect(message.contains("Patchd-Run: 1\n"))
        #expect(message.contains("Patchd-Agent: command\n"))
        #expect(message.contains("Patchd-Model: none"))
        let file = try server.git(["show", "FETCH_HEAD:HELLO.txt"], in: work).stdout
        #expect(file == "hello\n")

        // The run ref and the note are fetchable like any ref.
        try expectOK(
            server.git(
                [
                    "fetch", "-q", "origin", "refs/patchd/runs/1:refs/remotes/origin/run1",
                    "refs/notes/patchd:refs/notes/patchd",
                ], in: work), "fetch run ref and notes")
        let note = try expectOK(server.git(["notes", "--ref=patchd", "show", "origin/run1"], in: work)).stdout
        #expect(note.contains("\"status\" : \"succeeded\""))
        #expect(note.contains("--- transcript ---"))
        #expect(note.contains("made HELLO.txt"))

        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded")
        #expect(json["changed"] as? Bool == true)
        #expect(json["base"] as? String == base)
        #expect(json["result_ref"] as? String == "refs/patchd/runs/1")
        #expect((json["usage"] as? [String: Any])?["input_tokens"] as? Int == 0)
        for key in [
            "id", "repo", "branch", "status", "agent", "model", "base", "result", "result_ref", "changed",
            "created_at", "started_at", "finished_at", "error", "usage",
        ] {
            #expect(json.keys.contains(key), "run JSON lacks \(key)")
        }
        let diff = try expectOK(server.ssh(nil, ["run", "diff", "1"])).stdout
        #expect(diff.contains("+hello"))
        let stat = try expectOK(server.ssh(nil, ["run", "diff", "1", "--stat"])).stdout
        #expect(stat.contains("HELLO.txt | 1 +"))
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("made HELLO.txt"))
        try expectOK(server.ssh(nil, ["run", "logs", "1", "--follow"]), "logs --follow of a succeeded run exits 0")
    }

    @Test("-o task= queues a run without a task file; an unchanged task does not re-run; -o run forces it")
    func pushOptionTask() throws {
        let server = try TestServer(extraArgs: ["--default-agent", "command"])
        let work = try server.makeWorkTree("work", repo: "opt", commits: 1)
        let r = try expectOK(server.git(["push", "-o", "task=echo from-option > OPT.txt", "-o", "wait", "origin", "main"], in: work))
        #expect(r.stderr.contains("run 1 succeeded"))
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:OPT.txt"], in: work).stdout == "from-option\n")

        // A task file, pushed; then a commit that does not touch it: no new run.
        try server.write(work, ".patchd/task.md", TestServer.commandTask("date > /dev/null"))
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        try server.write(work, "other.txt", "x\n")
        try server.commitAll(work, "unrelated")
        let quiet = try expectOK(server.git(["push", "origin", "main"], in: work))
        #expect(!quiet.stderr.contains("queued"))
        #expect(quiet.stderr.contains("task.md is unchanged, so no run; push with -o run to run it again"), "\(quiet.stderr)")
        let forced = try expectOK(server.git(["push", "-o", "run", "origin", "main"], in: work))
        #expect(!forced.stderr.contains("queued"), "nothing to push: no update, no run")
        try server.write(work, "other.txt", "y\n")
        try server.commitAll(work, "unrelated again")
        let again = try expectOK(server.git(["push", "-o", "run", "origin", "main"], in: work))
        #expect(again.stderr.contains("run 3 queued"))
    }

    @Test("setup runs first; a failing check fails the run, keeps the work on refs/patchd/runs/ID only, and says so in a trailer")
    func setupAndCheck() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "chk", commits: 1)
        let task = """
            ---
            agent: command
            setup: |
              echo from-setup > .setup-marker
            run: |
              cat .setup-marker > RESULT.txt
            check: |
              grep -q never RESULT.txt
            ---
            Copy the marker.
            """
        try server.write(work, ".patchd/task.md", task)
        try server.commitAll(work, "task with check")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(push.stderr.contains("check failed"))
        #expect(push.stderr.contains("run 1 failed"))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "failed")
        #expect(json["check"] as? String == "failed")
        let refs = try server.git(["ls-remote", "origin"], in: work).stdout
        #expect(refs.contains("refs/patchd/runs/1"))
        #expect(!refs.contains("refs/heads/agent/main"), "a failed run must not move agent/BRANCH")
        try expectOK(server.git(["fetch", "-q", "origin", "refs/patchd/runs/1"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:RESULT.txt"], in: work).stdout == "from-setup\n")
        let message = try server.git(["log", "-1", "--format=%B", "FETCH_HEAD"], in: work).stdout
        #expect(message.contains("Patchd-Check: failed"))

        // The same task with a passing check succeeds and says so.
        try server.write(work, ".patchd/task.md", task.replacingOccurrences(of: "grep -q never", with: "grep -q from-setup"))
        try server.commitAll(work, "fix the check")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work))
        #expect(try server.runJSON(2)["check"] as? String == "passed")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["log", "-1", "--format=%B", "FETCH_HEAD"], in: work).stdout.contains("Patchd-Check: passed"))
    }

    @Test("runs finishing together each keep their note (one notes ref, written under a lock)")
    func concurrentNotes() throws {
        let server = try TestServer(extraArgs: ["--workers", "4"])
        let work = try server.makeWorkTree("work", repo: "notes", commits: 1)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo $RANDOM > OUT.txt"))
        try server.commitAll(work, "task")
        // One push, eight branches: eight runs that finish at nearly the same time.
        let branches = (1...8).map { "HEAD:b\($0)" }
        try expectOK(server.git(["push", "-q", "origin"] + branches, in: work))
        var results: [String] = []
        for id in 1...8 {
            let json = try server.waitForRun(id)
            #expect(json["status"] as? String == "succeeded", "run \(id): \(json)")
            if let result = json["result"] as? String { results.append(result) }
        }
        #expect(results.count == 8)
        try expectOK(server.git(["fetch", "-q", "origin", "refs/notes/patchd:refs/notes/patchd", "refs/patchd/runs/*:refs/runs/*"], in: work))
        for commit in results {
            let note = try server.git(["notes", "--ref=patchd", "show", commit], in: work)
            #expect(note.status == 0 && note.stdout.contains("\"status\" : \"succeeded\""), "no note on \(commit)")
        }
    }

    @Test("a run can be retried after its branch was deleted: the workspace needs only the commit")
    func retryAfterBranchDeleted() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "gone", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))  // HEAD names main, so topic can go
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo again > AGAIN.txt"))
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main:topic"], in: work))
        try expectOK(server.git(["push", "-q", "origin", ":topic"], in: work), "delete the branch")
        try expectOK(server.ssh(nil, ["run", "retry", "1"]))
        let json = try server.waitForRun(2)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        #expect(json["changed"] as? Bool == true)
    }

    @Test("a run that changes nothing succeeds with changed=false and no commit")
    func noChangeRun() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "same", commits: 1)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("ls > /dev/null"))
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(push.stderr.contains("run 1 succeeded"))
        #expect(push.stderr.contains("no changes"))
        let json = try server.runJSON(1)
        #expect(json["changed"] as? Bool == false)
        #expect(json["result"] is NSNull)
        let remote = try server.git(["ls-remote", "origin"], in: work).stdout
        #expect(!remote.contains("agent/main"))
        #expect(!remote.contains("refs/patchd/runs/1"))
    }

    @Test("bad task files are refused at push with file, line and fix; nothing is stored")
    func badTaskFiles() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "bad", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let good = try server.git(["rev-parse", "HEAD"], in: work).stdout
        let cases: [(String, String)] = [
            ("---\nagent: command\nrun: ls\nmodle: x\n---\nbody\n", ".patchd/task.md:4"),
            ("---\nagent: command\nrun: [unclosed\n---\nbody\n", ".patchd/task.md"),
            ("---\nagent: nope\n---\nbody\n", ".patchd/task.md:2"),
            ("---\nagent: builtin\n---\n\n", ".patchd/task.md"),
            ("---\nagent: command\nrun: ls\n---\n" + String(repeating: "x", count: 70_000), "65536"),
        ]
        for (content, expected) in cases {
            try server.write(work, ".patchd/task.md", content)
            try server.commitAll(work, "bad task")
            let r = try server.git(["push", "origin", "main"], in: work)
            #expect(r.status != 0, "push of a bad task file must fail: \(content.prefix(40))")
            #expect(r.stderr.contains(expected), "expected '\(expected)' in: \(r.stderr)")
            #expect(r.stderr.contains("nothing from this push was stored"))
            try expectOK(server.git(["reset", "-q", "--hard", "HEAD~1"], in: work))
        }
        // Not UTF-8.
        try FileManager.default.createDirectory(atPath: work + "/.patchd", withIntermediateDirectories: true)
        try Data([0x2d, 0x2d, 0x2d, 0x0a, 0xff, 0xfe, 0x0a, 0x2d, 0x2d, 0x2d, 0x0a]).write(to: URL(fileURLWithPath: work + "/.patchd/task.md"))
        try server.commitAll(work, "binary task")
        let binary = try server.git(["push", "origin", "main"], in: work)
        #expect(binary.status != 0)
        #expect(binary.stderr.contains("UTF-8"))
        let remote = try server.git(["ls-remote", "origin", "refs/heads/main"], in: work).stdout
        #expect(remote.hasPrefix(good.trimmingCharacters(in: .whitespacesAndNewlines)))
        let none = try server.ssh(nil, ["run", "show", "1"])
        #expect(none.status == 1)
        #expect(none.stderr.contains("run 1 not found"))
    }

    @Test("pushes to agent/*, refs/patchd/* and refs/notes/patchd are refused")
    func reservedRefs() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "res", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        for ref in ["main:agent/main", "main:refs/patchd/runs/1", "main:refs/notes/patchd"] {
            let r = try server.git(["push", "origin", ref], in: work)
            #expect(r.status != 0, "push to \(ref) must be refused")
            #expect(r.stderr.contains("is written by patchd only"))
        }
        let unknown = try server.git(["push", "-o", "wiat", "origin", "main:x"], in: work)
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("unknown push option 'wiat'"))
    }

    @Test("result fidelity: `*.txt text eol=crlf` and a task `true`: changed=false, no agent branch")
    func crlfAttributesNoChange() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "crlf", commits: 1)
        try server.write(work, ".gitattributes", "*.txt text eol=crlf\n")
        try server.write(work, ".patchd/task.md", TestServer.commandTask("true"))
        try server.commitAll(work, "attributes and task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(push.stderr.contains("run 1 succeeded"))
        let json = try server.runJSON(1)
        #expect(json["changed"] as? Bool == false, "\(json)")
        #expect(json["result"] is NSNull)
        #expect(!(try server.git(["ls-remote", "origin"], in: work).stdout.contains("agent/main")))
    }

    @Test("result fidelity: a symlinked .gitmodules (and siblings fsck refuses) stay out; git fsck --strict of the repository is clean")
    func fsckRefusedPathsLeftOut() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "fsck", commits: 1)
        let script =
            "ln -s .git/config .gitmodules\nmkdir .GIT git~1 && echo x > .GIT/f && echo x > git~1/f\n"
            + "printf '[submodule \"s\"]\\n\\tpath = s\\n\\turl = -oProxyCommand=x\\n' > sub.gitmodules && mkdir m && mv sub.gitmodules m/.gitmodules\n"
            + "echo ok > OK.txt"
        try server.write(work, ".patchd/task.md", TestServer.commandTask(script))
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let files = try server.git(["ls-tree", "-r", "--name-only", "FETCH_HEAD"], in: work).stdout
        #expect(files.contains("OK.txt"))
        for path in [".gitmodules", ".GIT/f", "git~1/f", "m/.gitmodules"] { #expect(!files.contains(path), "\(path) in \(files)") }
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("left out of the result: .gitmodules") && logs.contains("gitmodulesSymlink"), "\(logs)")
        #expect(logs.contains("left out of the result: .GIT") && logs.contains("hasDotgit"), "\(logs)")
        #expect(logs.contains("left out of the result: m/.gitmodules") && logs.contains("gitmodulesUrl"), "\(logs)")
        let fsck = try run("/usr/bin/git", ["fsck", "--strict", "--no-dangling"], cwd: server.repoRoot + "/fsck.git")
        #expect(fsck.status == 0 && !fsck.output.contains("error") && !fsck.output.contains("warning"), "\(fsck.output)")
        // And an fsck-enabled clone works.
        let clone = try server.git(
            [
                "-c", "transfer.fsckObjects=true", "clone", "-q", "-b", "agent/main", server.url("fsck"),
                server.tmp.path + "/clone",
            ], in: server.tmp.path)
        #expect(clone.status == 0, "\(clone.output)")
    }

    @Test("result fidelity: a tracked .gitignore (and nested .gitattributes) symlink: the run succeeds and the links stay links")
    func trackedSymlinkedGitignore() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "links", commits: 1)
        try server.write(work, "cfg/gitignore", "*.log\n")
        try server.write(work, "cfg/attrs", "*.txt text eol=crlf\n")
        try FileManager.default.createSymbolicLink(atPath: work + "/.gitignore", withDestinationPath: "cfg/gitignore")
        try FileManager.default.createDirectory(atPath: work + "/sub", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: work + "/sub/.gitattributes", withDestinationPath: "../cfg/attrs")
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo made > sub/NEW.txt"))
        try server.commitAll(work, "links and task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["ls-tree", "FETCH_HEAD", ".gitignore"], in: work).stdout.hasPrefix("120000"))
        #expect(try server.git(["ls-tree", "FETCH_HEAD", "sub/.gitattributes"], in: work).stdout.hasPrefix("120000"))
        #expect(try server.git(["show", "FETCH_HEAD:sub/NEW.txt"], in: work).stdout == "made\n")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains(".gitignore is a symbolic link"), "\(logs)")
    }
}
