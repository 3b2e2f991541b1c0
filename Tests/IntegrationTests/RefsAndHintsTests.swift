// IntegrationTests: patchd's refs never trap a user (mirror pushes, stale agent/ refs), and every hint pastes as printed.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension TestServer {
    /// Pushes `branch` with a command task running `script` and waits for the run; returns its record.
    func pushTask(_ work: String, branch: String, script: String) throws -> [String: Any] {
        try write(work, ".patchd/task.md", TestServer.commandTask(script))
        try commitAll(work, "task for \(branch)")
        let push = try expectOK(git(["push", "origin", "HEAD:refs/heads/\(branch)"], in: work), "push \(branch)")
        guard let range = push.stderr.range(of: "patchd: run "), let id = Int(push.stderr[range.upperBound...].prefix { $0.isNumber }) else {
            throw TestFailure("no run queued for \(branch):\n\(push.output)")
        }
        return try waitForRun(id)
    }

    func serverRefs(_ repo: String) throws -> [String: String] {
        let r = try expectOK(run("/usr/bin/git", ["--git-dir", "\(repoRoot)/\(repo).git", "for-each-ref", "--format=%(refname) %(objectname)"]))
        return Dictionary(
            uniqueKeysWithValues: r.stdout.split(separator: "\n").map {
                let p = $0.split(separator: " "); return (String(p[0]), String(p[1]))
            })
    }
}

@Suite("refs and hints", .serialized)
struct RefsAndHintsTests {
    @Test("git push --mirror from a clone without agent/* updates the user's refs and leaves patchd's as they are")
    func mirrorPushFromClone() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "m", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        _ = try server.pushTask(work, branch: "t1", script: "echo made > made.txt")
        let before = try server.serverRefs("m")
        #expect(before["refs/heads/agent/t1"] != nil && before["refs/patchd/runs/1"] != nil && before["refs/notes/patchd"] != nil)

        // A fresh clone has agent/t1 only as refs/remotes/origin/agent/t1, not as a branch.
        let clone = server.tmp.path + "/clone"
        try expectOK(server.git(["clone", "-q", server.url("m"), clone], in: server.tmp.path))
        try server.write(clone, "new.txt", "new\n")
        try server.commitAll(clone, "new work")
        let mirror = try server.git(["push", "--mirror", "origin"], in: clone)
        #expect(mirror.status == 0, "\(mirror.output)")
        let after = try server.serverRefs("m")
        let head = try server.git(["rev-parse", "HEAD"], in: clone).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(after["refs/heads/main"] == head, "the user's branch moved")
        for ref in ["refs/heads/agent/t1", "refs/patchd/runs/1", "refs/notes/patchd"] {
            #expect(after[ref] == before[ref], "\(ref) is untouched")
        }
    }

    @Test("copying a repository with clone --mirror + push --mirror copies the user's refs; the hint's command copies them cleanly")
    func mirrorCopy() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "src", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        try expectOK(server.git(["tag", "v1"], in: work))
        try expectOK(server.git(["push", "-q", "origin", "v1"], in: work))
        _ = try server.pushTask(work, branch: "t1", script: "echo made > made.txt")
        let mirror = server.tmp.path + "/mirror.git"
        try expectOK(server.git(["clone", "-q", "--mirror", server.url("src"), mirror], in: server.tmp.path))
        try expectOK(server.git(["remote", "set-url", "origin", server.url("copy")], in: mirror))
        let push = try server.git(["push", "--mirror", "origin"], in: mirror)
        // git itself reports patchd's refs as rejected one by one; everything else arrives.
        #expect(push.stderr.contains("is written by patchd only; it was left as it is"), "\(push.output)")
        let copied = try server.serverRefs("copy")
        #expect(copied["refs/heads/main"] != nil && copied["refs/heads/t1"] != nil && copied["refs/tags/v1"] != nil, "\(copied)")
        #expect(copied.keys.allSatisfy { !$0.hasPrefix("refs/heads/agent/") && !$0.hasPrefix("refs/patchd/") && $0 != "refs/notes/patchd" })

        // The printed command, pasted into a shell, copies the user's refs with exit 0.
        guard let line = push.stderr.split(separator: "\n").first(where: { $0.contains("to copy a repository without patchd's refs: ") }) else {
            throw TestFailure("no copy hint:\n\(push.output)")
        }
        let marker = "to copy a repository without patchd's refs: "
        let command = String(line[line.range(of: marker)!.upperBound...]).trimmingCharacters(in: .whitespaces)
            .replacingOccurrences(of: " origin ", with: " \(server.url("copy2")) ")
        let pasted = try run("/bin/sh", ["-c", command], cwd: mirror, env: server.gitEnv(server.admin))
        #expect(pasted.status == 0, "\(command)\n\(pasted.output)")
        let copy2 = try server.serverRefs("copy2")
        #expect(copy2["refs/heads/main"] != nil && copy2["refs/tags/v1"] != nil && copy2["refs/heads/agent/t1"] == nil, "\(copy2)")
    }

    @Test("a branch that grows below a deleted branch's name gets its result; note and record agree; no server path is shown")
    func staleAgentRefBlocksResult() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "df", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let first = try server.pushTask(work, branch: "feat", script: "echo one > one.txt")
        #expect(first["status"] as? String == "succeeded")
        try expectOK(server.git(["push", "-q", "origin", ":feat"], in: work))
        try expectOK(server.git(["reset", "-q", "--hard", "main"], in: work))
        let second = try server.pushTask(work, branch: "feat/x", script: "echo two > two.txt")
        #expect(second["status"] as? String == "succeeded", "\(second)")
        let refs = try server.serverRefs("df")
        #expect(refs["refs/heads/agent/feat/x"] != nil)
        #expect(refs["refs/heads/agent/feat"] == nil, "the stale ref was moved aside")
        #expect(refs["refs/patchd/runs/1"] != nil, "the first result is still there")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "2"])).stdout
        #expect(logs.contains("removed agent/feat"), "\(logs)")
        #expect(!logs.contains(server.dataDir), "no server path in the log")
        // The note is written from the final status.
        let notes = try expectOK(
            run(
                "/usr/bin/git",
                [
                    "--git-dir", "\(server.repoRoot)/df.git", "notes", "--ref=patchd", "show",
                    refs["refs/heads/agent/feat/x"]!,
                ])
        ).stdout
        #expect(notes.contains("\"status\" : \"succeeded\""))
    }

    @Test("the fetch hint quotes the branch: pasting it fetches that branch and runs nothing else")
    func fetchHintIsShellQuoted() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "q", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        for branch in ["x$(touch${IFS}pwned)", "it's", "semi;colon&`true`"] {
            try expectOK(server.git(["checkout", "-q", "-B", "b", "main"], in: work))
            try server.write(work, ".patchd/task.md", TestServer.commandTask("echo changed > changed.txt"))
            try server.commitAll(work, "task")
            let push = try expectOK(server.git(["push", "-o", "wait", "origin", "HEAD:refs/heads/\(branch)"], in: work))
            guard let line = push.stderr.split(separator: "\n").first(where: { $0.contains("fetch it:") }) else {
                throw TestFailure("no fetch hint for \(branch):\n\(push.output)")
            }
            let hint = String(line[line.range(of: "fetch it:")!.upperBound...]).trimmingCharacters(in: .whitespaces)
            let pasted = try run("/bin/sh", ["-c", hint], cwd: work, env: server.gitEnv(server.admin))
            #expect(pasted.status == 0, "\(hint)\n\(pasted.output)")
            #expect(!FileManager.default.fileExists(atPath: work + "/pwned"), "pasting the hint ran a command")
            let fetched = try server.git(["rev-parse", "FETCH_HEAD"], in: work).stdout
            let agent = try server.serverRefs("q")["refs/heads/agent/\(branch)"]
            #expect(fetched.trimmingCharacters(in: .whitespacesAndNewlines) == agent, "\(hint)")
        }
    }
}
