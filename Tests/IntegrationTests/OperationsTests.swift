// IntegrationTests: operating patchd: backup while serving, restore into a new data dir.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("operations", .serialized)
struct OperationsTests {
    @Test("patchd backup while serving, patchd restore into a new data dir: repos, runs, refs, notes, users and host keys come back")
    func backupAndRestore() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("w", repo: "team/app", commits: 3)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo restored > R.txt"))
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work))
        try expectOK(server.ssh(nil, ["repo", "create", "empty-one"]))
        _ = try server.addUser("bob")
        let fingerprint = server.log.components(separatedBy: "patchd: host key ").last?.split(separator: " ").first.map(String.init)

        let backup = server.tmp.path + "/backup"
        let made = try expectOK(run(patchdBinary, ["backup", backup, "--data-dir", server.dataDir]), "patchd backup")
        #expect(made.stdout.contains("backup complete"))
        #expect(FileManager.default.fileExists(atPath: backup + "/repos/team/app.bundle"))
        let again = try run(patchdBinary, ["backup", backup, "--data-dir", server.dataDir])
        #expect(again.status == 1 && again.stderr.contains("is not empty"))
        let mode = try FileManager.default.attributesOfItem(atPath: backup + "/ssh_host_ed25519_key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        server.stop()

        // A new data dir from the backup, served by a new process on the old port.
        let restoredDir = server.tmp.path + "/restored"
        try expectOK(run(patchdBinary, ["restore", backup, "--data-dir", restoredDir]), "patchd restore")
        let refused = try run(patchdBinary, ["restore", backup, "--data-dir", restoredDir])
        #expect(refused.status == 1 && refused.stderr.contains("is not empty"))
        try FileManager.default.removeItem(atPath: server.dataDir)
        try FileManager.default.moveItem(atPath: restoredDir, toPath: server.dataDir)
        try server.start()

        let clone = server.tmp.path + "/clone"
        try expectOK(server.git(["clone", "-q", server.url("team/app"), clone], in: server.tmp.path), "clone after restore")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main", "refs/notes/patchd:refs/notes/patchd"], in: clone))
        #expect(try server.git(["show", "FETCH_HEAD:R.txt"], in: clone).stdout == "restored\n")
        #expect(try server.git(["notes", "--ref=patchd", "show", "FETCH_HEAD"], in: clone).stdout.contains("\"status\" : \"succeeded\""))
        #expect(try server.runJSON(1)["status"] as? String == "succeeded")
        let repos = try server.json(nil, ["repo", "list", "--json"]) as! [[String: Any]]
        #expect(Set(repos.compactMap { $0["name"] as? String }) == ["empty-one", "team/app"])
        #expect(try server.ssh(nil, ["user", "list"]).stdout.contains("bob"))
        let newFingerprint = server.log.components(separatedBy: "patchd: host key ").last?.split(separator: " ").first.map(String.init)
        #expect(fingerprint != nil && newFingerprint == fingerprint, "the host key must survive a restore")
        // Hooks were reinstalled at start: a new task runs.
        try server.write(clone, ".patchd/task.md", TestServer.commandTask("echo again > S.txt"))
        try server.commitAll(clone, "task again")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: clone))
        #expect(push.stderr.contains("run 2 succeeded"))
        try expectOK(run("/usr/bin/git", ["fsck", "--no-progress"], cwd: server.repoRoot + "/team/app.git"), "fsck")
    }

    @Test("stats --prometheus counts connections, auth failures, transfers, runs and cost; admins only")
    func stats() throws {
        let server = try TestServer()
        let bob = try server.addUser("bob")
        let work = try server.makeWorkTree("w", repo: "m", commits: 1)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo x > X.txt"))
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work))
        try expectOK(server.git(["fetch", "-q", "origin"], in: work))
        let stranger = try TestKey.generate(in: server.tmp.path, name: "stranger")
        #expect(try server.ssh(stranger, ["whoami"]).status == 255)
        let denied = try server.ssh(bob, ["stats"])
        #expect(denied.status == 1 && denied.stderr.contains("only admins"))

        let text = try expectOK(server.ssh(nil, ["stats", "--prometheus"])).stdout
        func value(_ sample: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(sample + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        #expect(text.contains("# TYPE patchd_ssh_connections_total counter"))
        #expect((value("patchd_ssh_connections_total") ?? 0) >= 4)
        #expect((value("patchd_ssh_auth_failures_total") ?? 0) >= 1)
        #expect(value("patchd_git_transfers_total{service=\"git-receive-pack\",result=\"ok\"}") == 1)
        #expect((value("patchd_git_transfers_total{service=\"git-upload-pack\",result=\"ok\"}") ?? 0) >= 1)
        #expect(value("patchd_runs{status=\"succeeded\"}") == 1)
        #expect(value("patchd_run_queue_depth") == 0)
        let json = try server.json(nil, ["stats", "--json"]) as! [String: Any]
        #expect((json["runs"] as? [String: Int])?["succeeded"] == 1)
    }

    @Test("patchd doctor: one line per check, exit 0 on a healthy data dir, exit 1 with the fix when a check fails")
    func doctor() throws {
        let server = try TestServer()
        server.stop()
        let healthy = try run(patchdBinary, ["doctor", "--data-dir", server.dataDir, "--listen", "127.0.0.1:0"])
        #expect(healthy.status == 0, "\(healthy.output)")
        for name in ["libssh", "libgit2", "git", "bwrap", "data dir", "database", "host keys", "disk", "egress", "age"] {
            #expect(healthy.stdout.contains("ok   \(name):"), "doctor lacks an ok \(name) line:\n\(healthy.stdout)")
        }
        // Overlays depend on the kernel and its user-namespace policy: ok or warn, never missing.
        #expect(healthy.stdout.contains(" environment cache: "), "\(healthy.stdout)")
        chmod(server.dataDir + "/ssh_host_ed25519_key", 0o644)
        let broken = try run(patchdBinary, ["doctor", "--data-dir", server.dataDir, "--listen", "127.0.0.1:0"])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("fail host keys:") && broken.stdout.contains("chmod 600"))
    }
}

@Suite("executables in PATH")
struct ExecutablesInPathTests {
    @Test("doctor finds claude in a PATH directory outside /usr/bin (the default claude_path)")
    func doctorFindsClaudeInPath() throws {
        let tmp = TempDir("path")
        let bin = tmp.path + "/opt-bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(
            atPath: bin + "/claude", contents: Data("#!/bin/sh\necho 1.0\n".utf8),
            attributes: [.posixPermissions: 0o755])
        let r = try run(
            patchdBinary, ["doctor", "--data-dir", tmp.path + "/data", "--listen", "127.0.0.1:0"],
            env: ["PATH": "\(bin):/usr/local/bin:/usr/bin:/bin"])
        #expect(r.stdout.contains("\(bin)/claude"), "\(r.output)")
    }
}
