// IntegrationTests: the SSH command shortcuts, users, keys and per-repository access, as users and scripts see them.

import Foundation
import Testing

extension TestServer {
    /// Creates a user with a fresh key (as admin) and returns the key.
    func addUser(_ name: String, admin isAdmin: Bool = false) throws -> TestKey {
        let key = try TestKey.generate(in: tmp.path, name: name)
        var cmd = ["user", "create", name, "--key", "'\(key.publicLine)'"]
        if isAdmin { cmd.append("--admin") }
        try expectOK(ssh(nil, cmd), "user create \(name)")
        return key
    }

    func json(_ key: TestKey? = nil, _ command: [String]) throws -> Any {
        let r = try expectOK(ssh(key, command), command.joined(separator: " "))
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }
}

@Suite("SSH commands and access", .serialized)
struct CommandTests {
    @Test("a scripted session that reads only --json output")
    func jsonSession() throws {
        let server = try TestServer()
        let who = try server.json(nil, ["whoami", "--json"]) as! [String: Any]
        #expect(who["name"] as? String == "admin")
        #expect(who["admin"] as? Bool == true)

        _ = try server.addUser("bob")
        let users = try server.json(nil, ["user", "list", "--json"]) as! [[String: Any]]
        #expect(Set(users.compactMap { $0["name"] as? String }) == ["admin", "bob"])
        #expect(users.first { $0["name"] as? String == "bob" }?["keys"] as? Int == 1)

        try expectOK(server.ssh(nil, ["repo", "create", "proj"]))
        let work = try server.makeWorkTree("w", repo: "proj", commits: 2)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let repos = try server.json(nil, ["repo", "list", "--json"]) as! [[String: Any]]
        #expect(repos.count == 1 && repos[0]["name"] as? String == "proj" && repos[0]["owner"] as? String == "admin")
        let info = try server.json(nil, ["repo", "info", "proj", "--json"]) as! [String: Any]
        #expect(info["branches"] as? [String] == ["main"])
        #expect(info["head"] as? String == "main")

        try expectOK(server.ssh(nil, ["repo", "collab", "add", "proj", "bob", "write"]))
        let collabs = try server.json(nil, ["repo", "collab", "list", "proj", "--json"]) as! [[String: Any]]
        #expect(collabs.count == 1 && collabs[0]["user"] as? String == "bob" && collabs[0]["role"] as? String == "write")

        let started = try expectOK(
            server.ssh(
                nil,
                [
                    "run", "start", "proj", "main", "--agent", "command", "--wait", "--",
                    "'echo made-by-start > S.txt'",
                ]))
        #expect(started.stdout.contains("run 1 queued"))
        let runs = try server.json(nil, ["run", "list", "--json"]) as! [[String: Any]]
        #expect(runs.count == 1)
        #expect(runs[0]["status"] as? String == "succeeded", "\(runs)")
        #expect(runs[0]["changed"] as? Bool == true)
        let filtered = try server.json(nil, ["runs", "proj", "--status", "failed", "--json"]) as! [[String: Any]]
        #expect(filtered.isEmpty)
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:S.txt"], in: work).stdout == "made-by-start\n")

        let keys = try server.json(nil, ["key", "list", "--json"]) as! [[String: Any]]
        #expect(keys.count == 1 && (keys[0]["fingerprint"] as? String ?? "").hasPrefix("SHA256:"))
    }

    @Test("roles: strangers see nothing, read collaborators cannot push or start runs, nobody escalates")
    func rolesAndEscalation() throws {
        let server = try TestServer()
        let bob = try server.addUser("bob")
        let carol = try server.addUser("carol")
        let work = try server.makeWorkTree("w", repo: "secret", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))

        // A stranger: every command and git say "not found", exactly as for a missing repo.
        let missing = try server.ssh(bob, ["repo", "info", "no-such-repo"])
        let hidden = try server.ssh(bob, ["repo", "info", "secret"])
        #expect(hidden.status == 1 && missing.status == 1)
        #expect(hidden.stderr.replacingOccurrences(of: "secret", with: "X") == missing.stderr.replacingOccurrences(of: "no-such-repo", with: "X"))
        let clone = try server.git(["clone", server.url("secret"), server.tmp.path + "/b1"], in: server.tmp.path, key: bob)
        #expect(clone.status != 0 && clone.stderr.contains("not found"))
        #expect(try server.ssh(bob, ["run", "list", "secret"]).stderr.contains("not found"))
        #expect((try server.json(bob, ["repo", "list", "--json"]) as! [Any]).isEmpty)

        // Read collaborator: clone yes; push, run start, cancel, granting: no.
        try expectOK(server.ssh(nil, ["repo", "collab", "add", "secret", "bob", "read"]))
        try expectOK(server.git(["clone", "-q", server.url("secret"), server.tmp.path + "/b2"], in: server.tmp.path, key: bob))
        let push = try server.git(["push", "origin", "HEAD:bobs"], in: server.tmp.path + "/b2", key: bob)
        #expect(push.status != 0 && push.stderr.contains("read access"))
        let start = try server.ssh(bob, ["run", "start", "secret", "main", "--agent", "command", "--", "true"])
        #expect(start.status == 1 && start.stderr.contains("needs write access"))
        let grant = try server.ssh(bob, ["repo", "collab", "add", "secret", "carol", "read"])
        #expect(grant.status == 1 && grant.stderr.contains("only the owner"))

        // Write collaborator: push and runs yes; still cannot grant, remove the owner, delete, or manage users.
        try expectOK(server.ssh(nil, ["repo", "collab", "add", "secret", "bob", "write"]))
        try expectOK(server.git(["push", "-q", "origin", "HEAD:bobs"], in: server.tmp.path + "/b2", key: bob))
        #expect(try server.ssh(bob, ["repo", "collab", "add", "secret", "carol", "write"]).status == 1)
        #expect(try server.ssh(bob, ["repo", "collab", "remove", "secret", "admin"]).status == 1)
        #expect(try server.ssh(bob, ["repo", "delete", "secret", "--yes"]).stderr.contains("only the owner"))
        #expect(try server.ssh(bob, ["user", "create", "mallory", "--key", "'\(carol.publicLine)'", "--admin"]).stderr.contains("only admins"))
        #expect(try server.ssh(bob, ["user", "list"]).status == 1)
        // A repo named after a command word is just a repo.
        try expectOK(server.ssh(bob, ["repo", "create", "user"]))
        #expect(try server.ssh(bob, ["user", "delete", "admin", "--yes"]).stderr.contains("only admins"))
        #expect(try server.ssh(nil, ["whoami"]).stdout == "admin (admin)\n")

        // The owner can delete; --yes is required.
        let noYes = try server.ssh(nil, ["repo", "delete", "secret"])
        #expect(noYes.status == 2 && noYes.stderr.contains("--yes"))
        try expectOK(server.ssh(nil, ["repo", "delete", "secret", "--yes"]))
        #expect(!FileManager.default.fileExists(atPath: server.repoRoot + "/secret.git"))
    }

    @Test("keys: someone else's key cannot be added; the last key is kept unless an admin says --yes")
    func keys() throws {
        let server = try TestServer()
        let bob = try server.addUser("bob")
        let second = try TestKey.generate(in: server.tmp.path, name: "bob2", type: "ecdsa")
        let stolen = try server.ssh(bob, ["key", "add", "'\(server.admin.publicLine)'"])
        #expect(stolen.status == 1 && stolen.stderr.contains("already belongs to a user"))
        try expectOK(server.ssh(bob, ["key", "add", "'\(second.publicLine)'"]))
        #expect(try server.ssh(second, ["whoami"]).stdout == "bob\n")
        let keys = try server.json(bob, ["key", "list", "--json"]) as! [[String: Any]]
        #expect(keys.count == 2)
        let fp = keys.compactMap { $0["fingerprint"] as? String }
        try expectOK(server.ssh(bob, ["key", "remove", fp[1]]))
        let last = try server.ssh(bob, ["key", "remove", fp[0]])
        #expect(last.status == 1 && last.stderr.contains("last key"))
        try expectOK(server.ssh(nil, ["user", "key", "remove", "bob", fp[0], "--yes"]))
        #expect(try server.ssh(bob, ["whoami"]).status == 255, "bob has no key left")
        let badKey = try server.ssh(nil, ["key", "add", "ssh-ed25519", "AAAAnotbase64!!"])
        #expect(badKey.status == 1 && badKey.stderr.contains("does not decode"))
    }

    @Test("bad input: usage errors exit 2 with the usage; absurd ids and huge arguments fail cleanly")
    func badInput() throws {
        let server = try TestServer()
        for (cmd, code) in [
            (["run", "show"], 2), (["run", "show", "1", "--bogus"], 2), (["repo", "list", "--all"], 2),
            (["repo"], 2), (["repo", "frobnicate"], 2), (["nosuch"], 2), (["help", "nosuch"], 2),
            (["run", "show", "-1"], 2), (["run", "show", "abc"], 1),
            (["run", "show", "99999999999999999999999"], 1), (["run", "show", "42"], 1),
            (["run", "list", "--status", "bogus"], 2), (["user", "create", "BadName!", "--key", "'\(server.admin.publicLine)'"], 1),
            (["repo", "create", "../escape"], 1),
        ] as [([String], Int32)] {
            let r = try server.ssh(nil, cmd)
            #expect(r.status == code, "\(cmd) exited \(r.status), expected \(code): \(r.stderr)")
            #expect(r.stderr.hasPrefix("patchd: error: "), "\(cmd): \(r.stderr)")
            if code == 2 && cmd.first != "nosuch" { #expect(r.stderr.contains("usage:"), "\(cmd) should print its usage") }
        }
        let huge = try server.ssh(nil, ["repo", "info", String(repeating: "a", count: 10_000)])
        #expect(huge.status == 2 && huge.stderr.contains("longer than"))
        for topic in ["repo", "run", "key", "user", "whoami", "help"] {
            let r = try expectOK(server.ssh(nil, ["help", topic]))
            #expect(r.stdout.hasPrefix("usage: "))
        }
        try expectOK(server.ssh(nil, ["whoami"]), "server still serving")
    }

    @Test("run cancel stops the whole process tree; run retry runs the task again")
    func cancelAndRetry() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("w", repo: "c", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let marker = "patchd-cancel-\(UInt32.random(in: 0...UInt32.max))"
        try expectOK(
            server.ssh(
                nil,
                [
                    "run", "start", "c", "main", "--agent", "command", "--",
                    "'(sleep 300; echo late) & sleep 300 # \(marker)'",
                ]))
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, try server.runJSON(1)["status"] as? String != "running" { usleep(50_000) }
        let cancel = try expectOK(server.ssh(nil, ["run", "cancel", "1"]))
        #expect(cancel.stdout.contains("run 1 canceled"))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "canceled")
        usleep(300_000)
        // "[p]atchd..." matches the sandbox's command line but not pgrep's own (nor its timeout wrapper's).
        let ps = try run("/usr/bin/pgrep", ["-f", "[p]" + marker.dropFirst()])
        #expect(ps.stdout.isEmpty, "sandbox processes survived the cancel: \(ps.stdout)")
        let retry = try expectOK(server.ssh(nil, ["run", "retry", "1"]))
        #expect(retry.stdout.contains("run 2 queued (retry of 1)"))
        try expectOK(server.ssh(nil, ["run", "cancel", "2"]))
        #expect(try server.waitForRun(2)["status"] as? String == "canceled")
        let again = try server.ssh(nil, ["run", "cancel", "2"])
        #expect(again.status == 1 && again.stderr.contains("only queued or running"))
    }

    @Test("a repository directory without a database row is nobody's: strangers cannot take it over, a failed push never deletes it")
    func orphanRepository() throws {
        let server = try TestServer()
        let bob = try server.addUser("bob")
        try expectOK(run("/usr/bin/git", ["init", "-q", "--bare", server.repoRoot + "/orphan.git"]))
        let work = try server.makeWorkTree("w", repo: "orphan", commits: 1)
        let stranger = try server.git(["push", "origin", "main"], in: work, key: bob)
        #expect(stranger.status != 0 && stranger.stderr.contains("not found"))
        #expect(FileManager.default.fileExists(atPath: server.repoRoot + "/orphan.git/HEAD"), "a refused push must not delete the repository")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "an admin adopts it")
        let info = try server.json(nil, ["repo", "info", "orphan", "--json"]) as! [String: Any]
        #expect(info["owner"] as? String == "admin")
    }

    @Test("run diff is the exact patch; --stat and run logs strip terminal escape sequences")
    func diffEscapes() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("w", repo: "esc", commits: 1)
        try server.write(
            work, ".patchd/task.md",
            TestServer.commandTask(
                "printf 'red \\033[31mtext\\033]0;title\\007\\n' > ESC.txt\nprintf 'say \\033[31mred\\007\\n'"))
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work))
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:ESC.txt"], in: work).stdout.contains("\u{1b}"), "the file itself keeps its bytes")
        let diff = try expectOK(server.ssh(nil, ["run", "diff", "1"])).stdout
        #expect(diff.contains("red \u{1b}[31mtext"), "the patch is the file's bytes")
        let stat = try expectOK(server.ssh(nil, ["run", "diff", "1", "--stat"])).stdout
        #expect(stat.contains("ESC.txt") && !stat.contains("\u{1b}"))
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("say") && !logs.contains("\u{1b}") && !logs.contains("\u{07}"), "escape sequences reached the terminal")
    }
}
