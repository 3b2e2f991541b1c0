// IntegrationTests: replication to a real S3 implementation (moto, SigV4 checked) and restore onto a new data dir and port.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension TestServer {
    /// `git for-each-ref` of a repository on this server's disk: every ref and its object id.
    func refs(_ repo: String, dataDir dir: String? = nil) throws -> String {
        try expectOK(
            run(
                "/usr/bin/git", ["for-each-ref", "--format=%(objectname) %(refname)"],
                cwd: (dir ?? dataDir) + "/repos/\(repo).git"), "for-each-ref \(repo)"
        ).stdout
    }

    /// The `offsite` part of `stats --json`.
    func offsiteStatus() throws -> [String: Any] {
        let r = try expectOK(ssh(nil, ["stats", "--json"]), "stats --json")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        guard let offsite = json?["offsite"] as? [String: Any] else { throw TestFailure("stats --json has no offsite: \(r.stdout)") }
        return offsite
    }

    /// Waits until nothing is queued and each of `repos` has its refs, as on disk, in the
    /// bucket's manifest (seen twice, a second apart, so a change just learnt is not missed).
    func waitForReplication(_ store: S3TestStore, prefix: String = "test/", repos: [String], timeout: Double = 90) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var calm = 0
        var last = ""
        while Date() < deadline {
            let status = try offsiteStatus()
            var inBucket = true
            for repo in repos {
                let local = Dictionary(
                    uniqueKeysWithValues: try refs(repo).split(separator: "\n").map { line in
                        let p = line.split(separator: " "); return (String(p[1]), String(p[0]))
                    })
                let manifest = try? JSONSerialization.jsonObject(with: store.object("\(prefix)repos/\(repo).git/refs.json")) as? [String: Any]
                if (manifest?["refs"] as? [String: String]) != local { inBucket = false }
            }
            last = "\(status)"
            if inBucket && status["pending"] as? Int == 0 { calm += 1 } else { calm = 0 }
            if calm >= 2 { return }
            usleep(1_000_000)
        }
        throw TestFailure("replication did not catch up in \(Int(timeout)) s; offsite status \(last)\n\(log)")
    }
}

@Suite("offsite replication", .serialized)
struct OffsiteTests {
    @Test(
        "push, run, users and keys replicate to S3 (SigV4 checked); restore --from-offsite into a new data dir on another port: refs, runs, notes, keys and host keys match; the AWS CLI reads the bucket"
    )
    func replicateAndRestore() throws {
        let store = try S3TestStore()
        let server = try TestServer(config: store.offsiteYAML())
        let work = try server.makeWorkTree("w", repo: "team/app", commits: 3)
        try server.write(work, ".patchd/task.md", TestServer.commandTask("echo restored > R.txt"))
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work))
        try expectOK(server.git(["tag", "-a", "-m", "v1", "v1"], in: work))
        try expectOK(server.git(["push", "-q", "origin", "v1"], in: work))
        try expectOK(server.ssh(nil, ["repo", "create", "empty-one"]))
        let bob = try server.addUser("bob")
        try expectOK(server.ssh(nil, ["repo", "collab", "add", "team/app", "bob", "read"]), "collab add")
        try server.waitForReplication(store, repos: ["team/app", "empty-one"])
        let refsBefore = try server.refs("team/app")
        #expect(
            refsBefore.contains("refs/notes/patchd") && refsBefore.contains("refs/patchd/runs/1")
                && refsBefore.contains("refs/heads/agent/main") && refsBefore.contains("refs/tags/v1"))
        let runBefore = try server.runJSON(1)
        let fingerprint = server.log.components(separatedBy: "patchd: host key ").last?.split(separator: " ").first.map(String.init)
        #expect(try server.offsiteStatus()["lagSeconds"] as? Double == 0)
        let doctor = try run(
            patchdBinary,
            [
                "doctor", "--config", server.tmp.path + "/patchd.yaml", "--data-dir", server.dataDir,
                "--listen", "127.0.0.1:0",
            ])
        #expect(
            doctor.stdout.contains(
                "ok   offsite: \(store.endpoint) bucket \(store.bucket) prefix test/: wrote, read back and removed a probe object"),
            "\(doctor.stdout)")
        #expect(doctor.stdout.contains("replication lag 0 s, 0 pending, 0 failing"), "\(doctor.stdout)")
        server.stop()

        // Interop: the bucket as the AWS CLI sees it, read the way docs/OPERATIONS.md describes.
        let keys = try store.keys(prefix: "test/")
        for key in [
            "test/repos.json", "test/repos/team/app.git/refs.json", "test/repos/empty-one.git/refs.json", "test/db/latest.json",
            "test/host-keys/ssh_host_ed25519_key.age", "test/host-keys/ssh_host_ed25519_key.pub",
        ] {
            #expect(keys[key] != nil, "\(key) missing from \(keys.keys.sorted())")
        }
        #expect(!keys.keys.contains { $0.hasPrefix("test/doctor-probe/") }, "the doctor's probe object must be removed")
        let manifest = try JSONSerialization.jsonObject(with: store.object("test/repos/team/app.git/refs.json")) as! [String: Any]
        let bundles = manifest["bundles"] as! [String]
        let scratch = server.tmp.path + "/interop"
        try expectOK(run("/usr/bin/git", ["init", "-q", "--bare", scratch]))
        for file in bundles {
            let local = scratch + "/" + file
            try store.object("test/repos/team/app.git/bundles/\(file)").write(to: URL(fileURLWithPath: local))
            try expectOK(run("/usr/bin/git", ["bundle", "verify", "--quiet", local], cwd: scratch), "git bundle verify \(file)")
            try expectOK(run("/usr/bin/git", ["bundle", "unbundle", local], cwd: scratch), "git bundle unbundle \(file)")
        }
        let latest = try JSONSerialization.jsonObject(with: store.object("test/db/latest.json")) as! [String: Any]
        let sealed = scratch + "/db.age"
        // Keys in the manifests are relative to the prefix.
        try store.object("test/" + (latest["snapshot"] as! String)).write(to: URL(fileURLWithPath: sealed))
        #expect(
            try run("/usr/bin/sqlite3", [sealed, "SELECT count(*) FROM sqlite_master"]).status != 0,
            "the snapshot in the bucket must not be a plain database")
        try expectOK(run("/usr/bin/age", ["-d", "-i", store.identityFile, "-o", scratch + "/db.sqlite", sealed]), "age -d")
        let users = try expectOK(run("/usr/bin/sqlite3", [scratch + "/db.sqlite", "SELECT name FROM users ORDER BY name"])).stdout
        #expect(users == "admin\nbob\n")

        // Restore onto a new data dir, served on another port.
        let restoredDir = server.tmp.path + "/restored"
        let missingIdentity = try run(
            patchdBinary,
            [
                "restore", "--from-offsite", "--config", server.tmp.path + "/patchd.yaml",
                "--data-dir", restoredDir,
            ])
        #expect(missingIdentity.status != 0 && missingIdentity.stderr.contains("--identity"))
        // A wrong identity fails at the database, and leaves no half-restored directory behind.
        let otherIdentity = server.tmp.path + "/other-identity.txt"
        try expectOK(run("/usr/bin/age-keygen", ["-o", otherIdentity]))
        let wrongKey = try run(
            patchdBinary,
            [
                "restore", "--from-offsite", "--config", server.tmp.path + "/patchd.yaml",
                "--data-dir", restoredDir, "--identity", otherIdentity,
            ])
        #expect(wrongKey.status == 1 && wrongKey.stderr.contains("age failed decrypting"), "\(wrongKey.output)")
        #expect(!FileManager.default.fileExists(atPath: restoredDir))
        let restored = try expectOK(
            run(
                patchdBinary,
                [
                    "restore", "--from-offsite", "--config", server.tmp.path + "/patchd.yaml",
                    "--data-dir", restoredDir, "--identity", store.identityFile,
                ]), "restore --from-offsite")
        #expect(restored.stdout.contains("repo team/app:") && restored.stdout.contains("fsck clean"))
        #expect(try server.refs("team/app", dataDir: restoredDir) == refsBefore, "every ref, with the same object ids")
        try expectOK(run("/usr/bin/git", ["fsck", "--strict", "--no-progress"], cwd: restoredDir + "/repos/team/app.git"), "fsck")
        let again = try run(
            patchdBinary,
            [
                "restore", "--from-offsite", "--config", server.tmp.path + "/patchd.yaml",
                "--data-dir", restoredDir, "--identity", store.identityFile,
            ])
        #expect(again.status == 1 && again.stderr.contains("is not empty"))

        let second = try TestServer(config: store.offsiteYAML(), dataDir: restoredDir)
        #expect(second.port != server.port || server.port == 0)
        #expect(try expectOK(second.ssh(bob, ["whoami"]), "bob's key on the restored server").stdout.contains("bob"))
        #expect(try expectOK(second.ssh(server.admin, ["whoami"]), "the old admin key").stdout.contains("admin"))
        let runAfter = try second.runJSON(1)
        for field in ["status", "branch", "base", "result", "agent", "changed"] {
            #expect("\(runAfter[field] ?? "nil")" == "\(runBefore[field] ?? "nil")", "run field \(field)")
        }
        let repos = try second.json(nil, ["repo", "list", "--json"]) as! [[String: Any]]
        #expect(Set(repos.compactMap { $0["name"] as? String }) == ["empty-one", "team/app"])
        #expect(try second.ssh(bob, ["repo", "list"]).stdout.contains("team/app"), "bob's read access came back")
        let newFingerprint = second.log.components(separatedBy: "patchd: host key ").last?.split(separator: " ").first.map(String.init)
        #expect(fingerprint != nil && newFingerprint == fingerprint, "the host key must survive")
        let clone = second.tmp.path + "/clone"
        try expectOK(second.git(["clone", "-q", second.url("team/app"), clone], in: second.tmp.path, key: bob), "bob clones")
        try expectOK(second.git(["fetch", "-q", "origin", "agent/main", "refs/notes/patchd:refs/notes/patchd"], in: clone, key: bob))
        #expect(try second.git(["show", "FETCH_HEAD:R.txt"], in: clone).stdout == "restored\n")
        #expect(try second.git(["notes", "--ref=patchd", "show", "FETCH_HEAD"], in: clone).stdout.contains("\"status\" : \"succeeded\""))
        // The restored server continues the bucket's chains: a new push (and the run its task
        // file starts) adds bundles after the ones already there.
        try server.write(clone, "more.txt", "more\n")
        try server.commitAll(clone, "more")
        try expectOK(second.git(["push", "-q", "origin", "HEAD:refs/heads/more"], in: clone))
        try second.waitForReplication(store, repos: ["team/app"])
        let continued = try JSONSerialization.jsonObject(with: store.object("test/repos/team/app.git/refs.json")) as! [String: Any]
        let chain = continued["bundles"] as! [String]
        #expect(chain.count > bundles.count && chain.starts(with: bundles), "\(continued)")
    }

    @Test("a push to one branch: the first manifest that has it still names every other ref (an incremental bundle records only new tips)")
    func incrementalManifestKeepsUnchangedRefs() throws {
        let store = try S3TestStore()
        let server = try TestServer(config: store.offsiteYAML())
        let work = try server.makeWorkTree("w", repo: "app", commits: 2)
        try expectOK(server.git(["push", "-q", "origin", "main", "main:other", "main:refs/tags/t1"], in: work))
        try server.waitForReplication(store, repos: ["app"])
        try "3\n".write(toFile: work + "/f3.txt", atomically: true, encoding: .utf8)
        try server.commitAll(work, "three")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let tip = try expectOK(server.git(["rev-parse", "HEAD"], in: work)).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var refs: [String: String] = [:]
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && refs["refs/heads/main"] != tip {
            let manifest = try? JSONSerialization.jsonObject(with: store.object("test/repos/app.git/refs.json")) as? [String: Any]
            refs = manifest?["refs"] as? [String: String] ?? [:]
        }
        #expect(refs["refs/heads/main"] == tip)
        #expect(Set(refs.keys) == ["refs/heads/main", "refs/heads/other", "refs/tags/t1"], "\(refs)")
    }

    @Test("the store down during pushes: pushes succeed, the lag grows and is logged past the threshold, replication catches up when it returns")
    func storeDownThenCatchUp() throws {
        let store = try S3TestStore()
        let server = try TestServer(config: store.offsiteYAML())
        let work = try server.makeWorkTree("w", repo: "app", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        try server.waitForReplication(store, repos: ["app"])

        store.cut()
        for i in 2...3 {
            try "change \(i)\n".write(toFile: work + "/f\(i).txt", atomically: true, encoding: .utf8)
            try server.commitAll(work, "change \(i)")
            let started = Date()
            try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "push \(i) with the store down")
            #expect(Date().timeIntervalSince(started) < 10, "a push must not wait for the store")
        }
        var status: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(30)
        repeat {
            usleep(500_000)
            status = try server.offsiteStatus()
        } while Date() < deadline && !((status["lagSeconds"] as? Double ?? 0) > 3 && server.log.contains("offsite replication lag"))
        #expect((status["pending"] as? Int ?? 0) >= 1 && (status["failing"] as? Int ?? 0) >= 1, "\(status)")
        #expect((status["lastError"] as? String ?? "").contains("unreachable"), "\(status)")
        #expect(server.log.contains("offsite replication lag"), "a warning past lag_warn_seconds")
        let text = try expectOK(server.ssh(nil, ["stats"])).stdout
        #expect(text.contains("offsite      lag "), "\(text)")
        let prometheus = try expectOK(server.ssh(nil, ["stats", "--prometheus"])).stdout
        #expect(prometheus.contains("# TYPE patchd_offsite_lag_seconds gauge"))
        let doctor = try run(
            patchdBinary,
            [
                "doctor", "--config", server.tmp.path + "/patchd.yaml", "--data-dir", server.dataDir,
                "--listen", "127.0.0.1:0",
            ])
        #expect(doctor.status == 1 && doctor.stdout.contains("fail offsite: offsite store unreachable"), "\(doctor.stdout)")

        try store.restore()
        try server.waitForReplication(store, repos: ["app"], timeout: 60)
        #expect(server.log.contains("offsite replication caught up"))
    }

    @Test("kill -9 of patchd in the middle of a multipart upload: after a restart nothing is missing in the bucket")
    func killDuringUpload() throws {
        let store = try S3TestStore()
        let server = try TestServer(config: store.offsiteYAML(extra: "  part_size_mb: 5"))
        let work = try server.makeWorkTree("w", repo: "big", commits: 1)
        // 40 MB that does not compress: a bundle of eight parts.
        let fd = open(work + "/blob.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let random = open("/dev/urandom", O_RDONLY)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<40 { _ = read(random, &buffer, buffer.count); _ = write(fd, buffer, buffer.count) }
        close(random)
        close(fd)
        try server.commitAll(work, "big")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))

        // The daemon itself opens the bundle only to upload it (git writes it in a child):
        // once its fd shows up in /proc, the upload is under way; kill -9 a moment later.
        let pid = try #require(server.process?.pid)
        var uploading = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !uploading {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? [] {
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)"),
                    target.hasSuffix("offsite-tmp/repo.bundle")
                {
                    uploading = true
                }
            }
            if !uploading { usleep(5_000) }
        }
        #expect(uploading, "the daemon never opened the bundle for upload")
        usleep(300_000)
        server.stop(signal: SIGKILL)
        #expect(!server.log.contains("offsite: repo big: manifest 2"), "killed before the manifest was written:\n\(server.log)")
        let uploads = try store.aws(
            [
                "--endpoint-url", store.motoEndpoint, "--region", "us-east-1", "s3api", "list-multipart-uploads",
                "--bucket", store.bucket,
            ], env: ["AWS_SHARED_CREDENTIALS_FILE": store.credentialsFile])
        #expect(uploads.stdout.contains("big.git/bundles/"), "an unfinished multipart upload was left: \(uploads.output)")

        try server.start()
        try server.waitForReplication(store, repos: ["big"], timeout: 120)
        server.stop()
        let restoredDir = server.tmp.path + "/restored"
        try expectOK(
            run(
                patchdBinary,
                [
                    "restore", "--from-offsite", "--config", server.tmp.path + "/patchd.yaml",
                    "--data-dir", restoredDir, "--identity", store.identityFile,
                ]), "restore after the crash")
        #expect(try server.refs("big", dataDir: restoredDir) == server.refs("big"))
        try expectOK(run("/usr/bin/git", ["fsck", "--no-progress"], cwd: restoredDir + "/repos/big.git"), "fsck")
    }
}
