// IntegrationTests: the server's life cycle: clients killed mid-push, host keys across restarts, SIGTERM during a clone.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("server life cycle", .serialized)
struct ServerLifecycleTests {
    @Test("a client killed mid-push leaves an existing repository fsck-clean with its old refs, and no git behind")
    func killedPushExistingRepo() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "kept", commits: 3)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "first push")
        let repo = server.repoRoot + "/kept.git"
        let refsBefore = try refs(of: repo)
        #expect(refsBefore.contains("refs/heads/main"))

        try addBigCommit(in: work, server: server, megabytes: 64)
        let push = try startBackground(
            "/usr/bin/git", ["push", "origin", "main"], cwd: work,
            env: server.gitEnv(server.admin), outputPath: server.tmp.path + "/push.out")
        try killWhenReceiving(push, repo: repo, server: server)

        let serverPID = try #require(server.process?.pid)
        waitUntil(timeout: 15) { leftoverGit(serverPID: serverPID, dataDir: server.dataDir).isEmpty }
        #expect(
            leftoverGit(serverPID: serverPID, dataDir: server.dataDir).isEmpty,
            "git processes left behind: \(leftoverGit(serverPID: serverPID, dataDir: server.dataDir))")
        #expect(try refs(of: repo) == refsBefore)
        let fsck = try run("/usr/bin/git", ["fsck", "--strict", "--no-progress", "--no-dangling"], cwd: repo)
        #expect(fsck.status == 0, "fsck: \(fsck.output)")
        #expect(quarantineDirs(repo).isEmpty, "quarantine left behind: \(quarantineDirs(repo))")

        // The same push, not interrupted, goes through afterwards.
        #expect(server.process?.poll() == nil)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work, timeout: 300), "push after the killed one")
        #expect(try server.git(["rev-parse", "main"], in: repo).stdout == server.git(["rev-parse", "HEAD"], in: work).stdout)
    }

    @Test("a client killed during the push that creates a repository leaves no repository behind")
    func killedPushNewRepo() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "fresh", commits: 1)
        try addBigCommit(in: work, server: server, megabytes: 64)
        let repo = server.repoRoot + "/fresh.git"
        let push = try startBackground(
            "/usr/bin/git", ["push", "origin", "main"], cwd: work,
            env: server.gitEnv(server.admin), outputPath: server.tmp.path + "/push.out")
        try killWhenReceiving(push, repo: repo, server: server)

        let serverPID = try #require(server.process?.pid)
        waitUntil(timeout: 15) {
            leftoverGit(serverPID: serverPID, dataDir: server.dataDir).isEmpty && !FileManager.default.fileExists(atPath: repo)
        }
        #expect(
            leftoverGit(serverPID: serverPID, dataDir: server.dataDir).isEmpty,
            "git processes left behind: \(leftoverGit(serverPID: serverPID, dataDir: server.dataDir))")
        #expect(!FileManager.default.fileExists(atPath: repo), "the half-created repository is still there")
        #expect(try server.sql("SELECT count(*) FROM repos WHERE name = 'fresh'") == "0")

        // The name is free again.
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work, timeout: 300), "push after the killed one")
        try expectOK(run("/usr/bin/git", ["fsck", "--strict", "--no-progress"], cwd: repo), "fsck")
    }

    @Test("host keys are created 0600 in a 0700 data dir and survive a restart")
    func hostKeysPersist() throws {
        let server = try TestServer()
        waitUntil(timeout: 10) { hostKeyFingerprints(server.log).count >= 1 }
        let first = hostKeyFingerprints(server.log)
        #expect(first.count == 1)
        for key in ["ssh_host_ed25519_key", "ssh_host_rsa_key"] {
            #expect(try mode(server.dataDir + "/" + key) == 0o600, "\(key)")
        }
        #expect(try mode(server.dataDir) == 0o700)
        // What the server printed is the key on disk.
        let onDisk = try expectOK(run("/usr/bin/ssh-keygen", ["-lf", server.dataDir + "/ssh_host_ed25519_key.pub"])).stdout
        #expect(onDisk.contains(first[0]), "\(onDisk) vs \(first[0])")

        // A client that pinned the key on the first connection still trusts the server after a restart.
        let knownHosts = server.tmp.path + "/known_hosts"
        let pin = ["-o", "HostKeyAlias=patchd-test", "-o", "UserKnownHostsFile=\(knownHosts)", "-o", "HostKeyAlgorithms=ssh-ed25519"]
        let learn = try run("/usr/bin/ssh", pinnedOptions(server) + pin + ["-o", "StrictHostKeyChecking=accept-new", "git@127.0.0.1", "whoami"])
        #expect(learn.stdout == "admin (admin)\n", "\(learn.output)")
        try server.restart()
        // The host key line follows the ready line the harness waits for.
        waitUntil(timeout: 10) { hostKeyFingerprints(server.log).count >= 2 }
        let fingerprints = hostKeyFingerprints(server.log)
        #expect(fingerprints.count == 2)
        #expect(Set(fingerprints).count == 1, "the ED25519 host key changed across a restart: \(fingerprints)")
        let again = try run("/usr/bin/ssh", pinnedOptions(server) + pin + ["-o", "StrictHostKeyChecking=yes", "git@127.0.0.1", "whoami"])
        #expect(again.stdout == "admin (admin)\n", "\(again.output)")
        for key in ["ssh_host_ed25519_key", "ssh_host_rsa_key"] {
            #expect(try mode(server.dataDir + "/" + key) == 0o600, "\(key) after restart")
        }
        #expect(try mode(server.dataDir) == 0o700)
    }

    @Test("SIGTERM during a clone: the clone completes, new connections are refused, the server exits 0")
    func sigtermDuringClone() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "big", commits: 1)
        try addBigCommit(in: work, server: server, megabytes: 64)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work, timeout: 300), "push")

        // The clone reads through a relay limited to ~12 MB/s, so it is surely in flight
        // (and stays so for a few seconds) when the signal arrives.
        let relay = server.tmp.path + "/slow-relay.py"
        try """
        import os, sys, time
        while True:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view):]
            time.sleep(0.005)

        """.write(toFile: relay, atomically: true, encoding: .utf8)
        let slowSSH = server.tmp.path + "/slow-ssh"
        let sshLine = (["/usr/bin/ssh"] + server.sshOptions(server.admin).filter { $0 != "-p" && $0 != String(server.port) })
            .joined(separator: " ")
        try "#!/bin/sh\n\(sshLine) \"$@\" | /usr/bin/python3 \(relay)\n".write(toFile: slowSSH, atomically: true, encoding: .utf8)
        chmod(slowSSH, 0o755)
        var env = server.gitEnv(server.admin)
        env["GIT_SSH_COMMAND"] = slowSSH
        env["GIT_SSH_VARIANT"] = "ssh"

        let clonePath = server.tmp.path + "/clone"
        let clone = try startBackground(
            "/usr/bin/git", ["clone", server.url("big"), clonePath], cwd: server.tmp.path,
            env: env, outputPath: server.tmp.path + "/clone.out")
        defer { clone.signalGroup(SIGKILL); clone.wait() }
        let serverProcess = try #require(server.process)
        // Wait until pack data is arriving in the clone.
        waitUntil(timeout: 60) { packBytes(in: clonePath + "/.git/objects/pack", prefix: "tmp_pack_") > 1 << 20 }
        #expect(packBytes(in: clonePath + "/.git/objects/pack", prefix: "tmp_pack_") > 1 << 20, "the clone never started receiving")
        #expect(clone.poll() == nil, "the clone finished before the signal")

        kill(serverProcess.pid, SIGTERM)
        usleep(600_000)
        #expect(serverProcess.poll() == nil, "the server did not wait for the clone in flight")
        let refused = try server.ssh(nil, ["whoami"], options: ["-o", "ConnectTimeout=5"], timeout: 20)
        #expect(refused.status == 255, "\(refused.output)")
        #expect(refused.stderr.contains("Connection refused"), "\(refused.output)")

        let cloneStatus = clone.wait(timeout: 180)
        let cloneOutput = (try? String(contentsOfFile: server.tmp.path + "/clone.out", encoding: .utf8)) ?? ""
        #expect(cloneStatus == 0, "clone: \(cloneOutput)\nserver log:\n\(server.log.suffix(3000))")
        guard cloneStatus == 0 else { return }
        let serverStatus = serverProcess.wait(timeout: 60)
        #expect(serverStatus == 0, "server exit status \(serverStatus); log:\n\(server.log.suffix(2000))")
        try expectOK(run("/usr/bin/git", ["fsck", "--strict", "--no-progress"], cwd: clonePath), "fsck of the clone")
        let a = try Data(contentsOf: URL(fileURLWithPath: work + "/big.bin"))
        let b = try Data(contentsOf: URL(fileURLWithPath: clonePath + "/big.bin"))
        #expect(a == b)
        // The transfer finished after the server was told to stop.
        let log = server.log
        let stopping = log.range(of: "patchd: stopping")
        let audit = log.range(of: "cmd=git-upload-pack:big")
        #expect(stopping != nil && audit != nil && stopping!.lowerBound < audit!.lowerBound, "\(log)")
        #expect(log.contains("patchd: stopped"))
    }
}

// MARK: - Helpers

/// Commits `megabytes` of incompressible data as big.bin (stored uncompressed, so the client's
/// side of a push is quick and the transfer itself is what takes the time).
func addBigCommit(in work: String, server: TestServer, megabytes: Int) throws {
    try expectOK(server.git(["config", "core.compression", "0"], in: work))
    let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    defer { close(fd) }
    let bytes = try readAll(fd, limit: megabytes << 20)
    try Data(bytes.prefix(megabytes << 20)).write(to: URL(fileURLWithPath: work + "/big.bin"))
    try expectOK(server.git(["add", "big.bin"], in: work))
    try expectOK(server.git(["commit", "-q", "-m", "big"], in: work))
}

/// Waits until the server is writing the pushed pack into `repo`'s quarantine, then kills
/// the whole client (git, ssh, pack-objects) with SIGKILL.
func killWhenReceiving(_ push: ChildProcess, repo: String, server: TestServer) throws {
    defer { push.signalGroup(SIGKILL); push.wait() }
    let deadline = Date().addingTimeInterval(120)
    var received = 0
    while Date() < deadline && push.poll() == nil {
        received = quarantineDirs(repo).map { packBytes(in: $0 + "/pack", prefix: "tmp_pack_") }.reduce(0, +)
        if received > 1 << 20 { break }
        usleep(5_000)
    }
    let output = (try? String(contentsOfFile: server.tmp.path + "/push.out", encoding: .utf8)) ?? ""
    guard push.poll() == nil else { throw TestFailure("the push ended (\(push.poll()!)) before it could be killed: \(output)") }
    guard received > 1 << 20 else { throw TestFailure("the server never received pack data: \(output)\n\(server.log)") }
    push.signalGroup(SIGKILL)
}

/// `objects/tmp_objdir-incoming-*` quarantine directories of a bare repository.
func quarantineDirs(_ repo: String) -> [String] {
    let objects = repo + "/objects"
    return ((try? FileManager.default.contentsOfDirectory(atPath: objects)) ?? [])
        .filter { $0.contains("incoming-") }.map { objects + "/" + $0 }
}

/// Total size of the files named `prefix*` in `dir`.
func packBytes(in dir: String, prefix: String) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(prefix) }
        .compactMap { try? FileManager.default.attributesOfItem(atPath: dir + "/" + $0)[.size] as? Int }
        .reduce(0, +)
}

/// `refname sha` lines of a repository.
func refs(of repo: String) throws -> String {
    try expectOK(run("/usr/bin/git", ["for-each-ref", "--format=%(refname) %(objectname)"], cwd: repo)).stdout
}

/// Processes the server left behind: its children (zombies included), and anything whose
/// working directory is inside the data dir (git's helpers, even if re-parented).
func leftoverGit(serverPID: pid_t, dataDir: String) -> [String] {
    var found: [String] = []
    let data = URL(fileURLWithPath: dataDir).resolvingSymlinksInPath().path
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(entry), pid != getpid() else { continue }
        guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ppid = fields.count > 1 ? Int32(fields[1]) : nil
        let cwd = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/cwd")) ?? ""
        if ppid == serverPID || cwd == data || cwd.hasPrefix(data + "/") {
            let cmd = ((try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8)) ?? "")
                .replacingOccurrences(of: "\0", with: " ")
            found.append("\(pid) [\(fields.first ?? "?")] \(cmd) cwd=\(cwd)")
        }
    }
    return found
}

/// The ED25519 fingerprints from every "patchd: host key ..." line of the log.
func hostKeyFingerprints(_ log: String) -> [String] {
    log.split(separator: "\n").filter { $0.hasPrefix("patchd: host key ") }.compactMap { line in
        line.split(separator: " ").dropFirst(3).first.map(String.init)
    }
}

func mode(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? Int ?? -1) & 0o7777
}

/// Options for a client that checks the host key itself (the caller adds the known-hosts settings).
func pinnedOptions(_ server: TestServer) -> [String] {
    [
        "-i", server.admin.privatePath, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR",
        "-o", "BatchMode=yes", "-p", String(server.port),
    ]
}
