// IntegrationTests: the SSH security checklist (ARCHITECTURE.md) against the real server with stock clients:
// authentication, hostile exec strings, client environment, refused requests, limits and hostile bytes.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("SSH security", .serialized)
struct SSHSecurityTests {
    // MARK: - Authentication

    @Test("ed25519, ecdsa-nistp256 and rsa-2048 admin keys each log in as admin")
    func adminKeyTypes() throws {
        let keys = TempDir("patchd-keys")
        let ecdsa = try TestKey.generate(in: keys.path, name: "ecdsa", type: "ecdsa")
        let rsa = try TestKey.generate(in: keys.path, name: "rsa", type: "rsa")
        #expect(ecdsa.publicLine.hasPrefix("ecdsa-sha2-nistp256 "))
        let server = try TestServer(extraArgs: ["--admin-key", ecdsa.publicPath, "--admin-key", rsa.publicPath])
        for key in [server.admin, ecdsa, rsa] {
            let r = try server.ssh(key, ["whoami"])
            #expect(r.status == 0, "\(key.publicLine.prefix(20)): \(r.output)")
            #expect(r.stdout == "admin (admin)\n", "\(key.publicLine.prefix(20))")
        }
        let log = server.log
        #expect(log.contains("Accepted publickey for admin from 127.0.0.1 port"))
        #expect(log.contains("ssh2: ecdsa-sha2-nistp256 SHA256:"))
        #expect(log.contains("ssh2: ssh-rsa SHA256:"))
        #expect(log.contains("ssh2: ssh-ed25519 SHA256:"))
    }

    @Test("an unknown key is refused at auth and the refusal is logged with the client address")
    func unknownKeyRefused() throws {
        let server = try TestServer()
        let stranger = try TestKey.generate(in: server.tmp.path, name: "stranger")
        let r = try server.ssh(stranger, ["whoami"])
        #expect(r.status == 255)
        #expect(r.stderr.contains("Permission denied"))
        #expect(!r.stdout.contains("admin"))
        let failed = server.log.split(separator: "\n").filter { $0.contains("Failed publickey for ") }
        #expect(
            failed.contains { $0.range(of: #"Failed publickey for \S+ from 127\.0\.0\.1 port [0-9]+"#, options: .regularExpression) != nil },
            "log: \(server.log)")
        #expect(!server.log.contains("Accepted publickey"))
    }

    @Test("password and keyboard-interactive are never offered")
    func noPasswordAuth() throws {
        let server = try TestServer()
        // An askpass that would answer any prompt: if the server offered password or
        // keyboard-interactive, ssh would use it instead of giving up.
        let askpass = server.tmp.path + "/askpass"
        try "#!/bin/sh\necho hunter2\n".write(toFile: askpass, atomically: true, encoding: .utf8)
        chmod(askpass, 0o755)
        let args = [
            "-v", "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no",
            "-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-p", String(server.port), "git@127.0.0.1", "whoami",
        ]
        let r = try run(
            "/usr/bin/ssh", args, env: ["SSH_ASKPASS": askpass, "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"],
            timeout: 30)
        #expect(r.status == 255)
        #expect(r.stderr.contains("Permission denied"))
        #expect(!r.stdout.contains("admin"))
        // What the server advertises after the "none" request: public key only.
        let methods = r.stderr.split(whereSeparator: \.isNewline).filter { $0.contains("Authentications that can continue:") }
        #expect(!methods.isEmpty, "ssh -v output: \(r.stderr)")
        for line in methods {
            #expect(line.hasSuffix("Authentications that can continue: publickey"), "\(line)")
        }
    }

    @Test("offering admin's key unsigned and then signing with bob's key makes you bob, never admin")
    func probeThenSign() throws {
        let server = try TestServer()
        let bob = try TestKey.generate(in: server.tmp.path, name: "bob")
        try server.addUser("bob", key: bob)
        // A file holding only admin's PUBLIC key: ssh offers it (an unsigned probe), the server
        // answers "would be accepted", ssh then cannot load a private half and moves on to bob's.
        let probe = server.tmp.path + "/probe-only.pub"
        try (server.admin.publicLine + "\n").write(toFile: probe, atomically: true, encoding: .utf8)
        chmod(probe, 0o600)
        let options = [
            "-v", "-i", probe, "-i", bob.privatePath, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-p", String(server.port), "git@127.0.0.1",
        ]
        let r = try run("/usr/bin/ssh", options + ["whoami"], timeout: 30)
        // The probe really happened and was answered positively: the case this test is about.
        #expect(r.stderr.contains("Server accepts key: \(probe)"), "ssh -v: \(r.stderr)")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout == "bob\n")
        #expect(server.log.contains("Accepted publickey for bob"))
        #expect(!server.log.contains("Accepted publickey for admin"))

        // The probe alone (no key that can sign) gets nobody in.
        let alone = try run("/usr/bin/ssh", ["-i", probe] + options.dropFirst(5) + ["whoami"], timeout: 30)
        #expect(alone.status == 255)
        #expect(alone.stderr.contains("Permission denied"))
        #expect(!alone.stdout.contains("admin"))
    }

    // MARK: - Exec strings

    @Test("hostile exec strings fail with a clean error, run nothing, and the server keeps serving")
    func hostileExec() throws {
        let server = try TestServer()
        let marker = server.tmp.path + "/x"
        let tmpXExisted = FileManager.default.fileExists(atPath: "/tmp/x")
        let passwdBefore = try FileManager.default.attributesOfItem(atPath: "/etc/passwd")[.modificationDate] as? Date
        let long = String(repeating: "a", count: 10_000)
        let cases: [(command: String, expected: String)] = [
            ("git-upload-pack 'x'; id", "shell syntax"),
            ("git-upload-pack x | id", "shell syntax"),
            ("git-upload-pack x && touch \(marker)", "shell syntax"),
            ("git-upload-pack $(touch \(marker))", "shell syntax"),
            ("git-upload-pack `touch \(marker)`", "shell syntax"),
            ("git-upload-pack x > \(marker)", "shell syntax"),
            ("git-upload-pack x\ntouch \(marker)", "newline"),
            ("git-upload-pack 'x", "unbalanced"),
            ("git-upload-pack \"x", "unbalanced"),
            ("git-upload-pack x\\", "backslash"),
            ("git-upload-pack --upload-pack=touch \(marker)", "usage"),
            ("git-upload-pack '--upload-pack=touch \(marker)'", "invalid repository name"),
            ("git-upload-pack -oProxyCommand=x", "invalid repository name"),
            ("git-receive-pack '--receive-pack=touch \(marker)'", "invalid repository name"),
            ("git-upload-pack ../../etc", "invalid repository name"),
            ("git-upload-pack '../../etc'", "invalid repository name"),
            ("git-upload-pack 'x.git/../../y'", "invalid repository name"),
            ("git-upload-pack '~root'", "invalid repository name"),
            ("git-upload-pack /etc/passwd", "repository 'etc/passwd' not found"),
            ("git-receive-pack '/etc/passwd/../shadow'", "invalid repository name"),
            ("git-upload-pack '\(long)'", "longer than"),
            ("git-upload-pack \(long)", "longer than"),
            ("whoami \(long)", "longer than"),
            (String(repeating: "x ", count: 5_000), "unknown command"),
            ("sh", "unknown command 'sh'"),
            ("bash -c id", "unknown command 'bash'"),
            ("scp -t /tmp", "unknown command 'scp'"),
            ("git-upload-archive 'x'", "upload-archive is disabled"),
            ("git upload-archive 'x'", "upload-archive is disabled"),
            ("git -c core.sshCommand=x upload-pack x", "not a git service"),
            ("git-shell -c id", "not a git service"),
        ]
        for (command, expected) in cases {
            let shown = String(command.prefix(60))
            let r = try server.ssh(nil, [command], timeout: 30)
            // A clean refusal: patchd's own message and a non-zero status that is not ssh's 255.
            #expect(r.status != 0 && r.status != 255, "\(shown): exit \(r.status)")
            #expect(r.stderr.hasPrefix("patchd: error: "), "\(shown): \(r.stderr.prefix(300))")
            #expect(r.stderr.contains(expected), "\(shown): \(r.stderr.prefix(300))")
            #expect(r.stdout.isEmpty, "\(shown): \(r.stdout.prefix(300))")
            #expect(r.stderr.utf8.count < 1_000, "\(shown): the error echoes too much back")
            // And the server still serves.
            let who = try server.ssh(nil, ["whoami"])
            #expect(who.stdout == "admin (admin)\n", "after \(shown): \(who.output)")
        }
        #expect(server.process?.poll() == nil, "the server exited")
        #expect(!FileManager.default.fileExists(atPath: marker))
        if !tmpXExisted { #expect(!FileManager.default.fileExists(atPath: "/tmp/x")) }
        let passwdAfter = try FileManager.default.attributesOfItem(atPath: "/etc/passwd")[.modificationDate] as? Date
        #expect(passwdBefore == passwdAfter)
        // Nothing was created, neither on disk nor in the database.
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.repoRoot).isEmpty)
        #expect(try server.sql("SELECT count(*) FROM repos") == "0")
    }

    // MARK: - Environment

    @Test("of the client's env requests only GIT_PROTOCOL reaches git")
    func clientEnvironmentIgnored() throws {
        let server = try TestServer()
        let m1 = server.tmp.path + "/pwned-sshcommand", m2 = server.tmp.path + "/pwned-packhook"
        let trace = server.tmp.path + "/pwned-trace"
        // One SetEnv line: ssh uses only the first SetEnv directive it reads.
        let config = server.tmp.path + "/ssh_config"
        try """
        SetEnv GIT_CONFIG_PARAMETERS="'core.sshCommand=touch \(m1)' 'uploadpack.packObjectsHook=touch \(m2)'" \
        LD_PRELOAD=/nonexistent.so GIT_TRACE=\(trace) GIT_DIR=/etc HOME=/root

        """.write(toFile: config, atomically: true, encoding: .utf8)

        // The client really sends them.
        let probe = try server.ssh(nil, ["whoami"], options: ["-F", config, "-v"])
        #expect(probe.stdout == "admin (admin)\n")
        #expect(probe.stderr.contains("setting env GIT_CONFIG_PARAMETERS"), "\(probe.stderr)")
        #expect(probe.stderr.contains("setting env LD_PRELOAD"))

        var env = server.gitEnv(server.admin)
        env["GIT_SSH_COMMAND"]! += " -F \(config)"
        let work = try server.makeWorkTree("work", repo: "envtest", commits: 2)
        let push = try run("/usr/bin/git", ["push", "origin", "main"], cwd: work, env: env)
        #expect(push.status == 0, "\(push.output)")
        let clone = server.tmp.path + "/clone"
        var traced = env
        traced["GIT_TRACE_PACKET"] = "1"
        let cloned = try run(
            "/usr/bin/git", ["-c", "protocol.version=2", "clone", server.url("envtest"), clone],
            cwd: server.tmp.path, env: traced)
        #expect(cloned.status == 0, "\(cloned.output)")
        // GIT_PROTOCOL (set by git itself) still reaches upload-pack: the server spoke v2.
        #expect(cloned.stderr.contains("< version 2"), "no protocol v2 in the packet trace")
        for path in [m1, m2, trace] {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) exists: a client env var reached git")
        }
        for output in [push.output, cloned.output] {
            #expect(!output.contains("LD_PRELOAD") && !output.contains("ld.so"), "the loader saw LD_PRELOAD: \(output)")
        }
        try #require(cloned.status == 0)
        #expect(try server.git(["rev-parse", "HEAD"], in: clone).stdout == server.git(["rev-parse", "HEAD"], in: work).stdout)
        let fetch = try run("/usr/bin/git", ["fetch", "origin"], cwd: clone, env: env)
        #expect(fetch.status == 0, "\(fetch.output)")
        #expect(!fetch.output.contains("LD_PRELOAD"))
        #expect(!FileManager.default.fileExists(atPath: trace))
    }

    // MARK: - Requests that are refused

    @Test("pty requests are refused; a terminal user still gets the greeting")
    func ptyRefused() throws {
        let server = try TestServer()
        // -tt insists on a pty: the server refuses it (and OpenSSH then gives up by itself).
        let forced = try server.ssh(nil, ["whoami"], options: ["-tt"], timeout: 30)
        #expect(forced.stderr.contains("PTY allocation request failed"), "\(forced.output)")
        // An interactive user (stdin is a terminal, so ssh asks for a pty when it may):
        // refused, and the session goes on to the greeting.
        let sshLine = (["/usr/bin/ssh"] + server.sshOptions(server.admin) + ["git@127.0.0.1"]).joined(separator: " ")
        let r = try run("/usr/bin/script", ["-qec", sshLine, "/dev/null"], timeout: 30)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("PTY allocation request failed"), "\(r.output)")
        #expect(r.output.contains("Hi admin! patchd does not provide shell access."), "\(r.output)")
        #expect(try server.ssh(nil, ["whoami"]).stdout == "admin (admin)\n")
    }

    @Test("subsystems (sftp) are refused")
    func subsystemRefused() throws {
        let server = try TestServer()
        let r = try server.ssh(nil, ["-s", "sftp"], timeout: 30)
        #expect(r.status == 255)
        #expect(r.stderr.contains("subsystem request failed"), "\(r.output)")
        let sftpOptions = [
            "-b", "/dev/null", "-i", server.admin.privatePath, "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-P", String(server.port), "git@127.0.0.1",
        ]
        let sftp = try run("/usr/bin/sftp", sftpOptions, timeout: 30)
        #expect(sftp.status != 0, "\(sftp.output)")
        #expect(sftp.stderr.contains("subsystem request failed"), "\(sftp.output)")
        #expect(try server.ssh(nil, ["whoami"]).stdout == "admin (admin)\n")
    }

    @Test("local, stdio, remote and X11 forwarding are refused")
    func forwardingRefused() throws {
        let server = try TestServer()
        // ssh -W: a direct-tcpip channel to the server's own port.
        let stdio = try server.ssh(nil, [], options: ["-W", "127.0.0.1:\(server.port)"], timeout: 30)
        #expect(stdio.status == 255)
        #expect(stdio.stderr.contains("open failed") || stdio.stderr.contains("stdio forwarding failed"), "\(stdio.output)")
        #expect(!stdio.stdout.contains("SSH-2.0"), "the forward reached the server's port")

        // ssh -R: the tcpip-forward global request.
        let remote = try server.ssh(nil, [], options: ["-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:1"], timeout: 30)
        #expect(remote.status == 255, "\(remote.output)")
        #expect(remote.stderr.contains("remote port forwarding failed"), "\(remote.output)")

        // ssh -L: ssh listens locally and opens a direct-tcpip channel per connection; if the
        // server allowed it, the connection would reach the server's own SSH banner.
        let localPort = try freeLocalPort()
        let forwarder = try startBackground(
            "/usr/bin/ssh",
            ["-o", "LogLevel=VERBOSE"] + server.sshOptions(server.admin) + ["-N", "-L", "\(localPort):127.0.0.1:\(server.port)", "git@127.0.0.1"],
            outputPath: server.tmp.path + "/forwarder.out")
        defer { forwarder.signalGroup(SIGKILL); forwarder.wait() }
        var socket: RawSocket?
        let deadline = Date().addingTimeInterval(15)
        while socket == nil && Date() < deadline && forwarder.poll() == nil {
            socket = try? RawSocket(port: localPort)
            if socket == nil { usleep(50_000) }
        }
        let connected = try #require(socket, "ssh -L never listened")
        let (bytes, closed) = connected.readUntilClosed(timeout: 5)
        #expect(closed, "the forwarded connection stayed open")
        #expect(!String(decoding: bytes, as: UTF8.self).contains("SSH-2.0"), "the local forward reached the server's port")
        forwarder.signalGroup(SIGTERM)
        forwarder.wait(timeout: 5)
        let forwarderOutput = (try? String(contentsOfFile: server.tmp.path + "/forwarder.out", encoding: .utf8)) ?? ""
        #expect(forwarderOutput.contains("open failed"), "\(forwarderOutput)")

        // ssh -X: the x11-req channel request (the command itself still runs).
        let x11 = try run(
            "/usr/bin/ssh", server.sshOptions(server.admin) + ["-X", "git@127.0.0.1", "whoami"],
            env: ["DISPLAY": "127.0.0.1:0"], timeout: 30)
        #expect(x11.stderr.contains("X11 forwarding request failed"), "\(x11.output)")
        #expect(x11.stdout == "admin (admin)\n")
    }

    @Test("ssh with no command prints the greeting and exits 0")
    func greeting() throws {
        let server = try TestServer()
        let r = try server.ssh(nil, [])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.hasPrefix("Hi admin! patchd does not provide shell access.\n"), "\(r.stdout)")
        #expect(r.stdout.contains("whoami"))
        #expect(r.stderr.isEmpty, "\(r.stderr)")
    }

    // MARK: - Limits

    @Test("connections that do not authenticate within --auth-timeout are closed; the server keeps serving")
    func graceTime() throws {
        let server = try TestServer(extraArgs: ["--auth-timeout", "1"])
        let timeoutLines = { server.log.components(separatedBy: "Timeout before authentication").count - 1 }

        // A client that sends nothing at all.
        var start = Date()
        let silent = try RawSocket(port: server.port)
        let (banner, closed) = silent.readUntilClosed(timeout: 10)
        var elapsed = Date().timeIntervalSince(start)
        #expect(String(decoding: banner, as: UTF8.self).hasPrefix("SSH-2.0-"))
        #expect(closed && elapsed < 3.5, "silent connection closed=\(closed) after \(elapsed)s")
        #expect(elapsed > 0.5, "closed after \(elapsed)s: sooner than the grace time")

        // A client that sends its version banner and then nothing.
        start = Date()
        let bannerOnly = try RawSocket(port: server.port)
        bannerOnly.send(Array("SSH-2.0-OpenSSH_9.2p1 test\r\n".utf8))
        let second = bannerOnly.readUntilClosed(timeout: 10)
        elapsed = Date().timeIntervalSince(start)
        #expect(second.closed && elapsed < 3.5, "banner-only connection closed=\(second.closed) after \(elapsed)s")
        waitUntil(timeout: 5) { timeoutLines() >= 2 }
        #expect(timeoutLines() >= 2, "log: \(server.log)")

        // A real client that finishes key exchange, has its key accepted by a probe, and then
        // never signs (its passphrase prompt hangs): the timer after key exchange cuts it off.
        let slowKey = server.tmp.path + "/slow"
        try expectOK(run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "secret", "-C", "slow", "-f", slowKey]))
        try server.addUser("slow", key: TestKey(privatePath: slowKey, publicLine: String(contentsOfFile: slowKey + ".pub", encoding: .utf8)))
        let askpass = server.tmp.path + "/askpass-hangs"
        try "#!/bin/sh\nexec 2>/dev/null\nsleep 15\necho secret\n".write(toFile: askpass, atomically: true, encoding: .utf8)
        chmod(askpass, 0o755)
        let before = timeoutLines()
        let stalled = try startBackground(
            "/usr/bin/ssh",
            [
                "-v", "-i", slowKey, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=no", "-p", String(server.port), "git@127.0.0.1", "whoami",
            ],
            env: ["SSH_ASKPASS": askpass, "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"],
            outputPath: server.tmp.path + "/stalled.out")
        defer { stalled.signalGroup(SIGKILL); stalled.wait() }
        start = Date()
        waitUntil(timeout: 6) { timeoutLines() > before }
        elapsed = Date().timeIntervalSince(start)
        let clientLog = (try? String(contentsOfFile: server.tmp.path + "/stalled.out", encoding: .utf8)) ?? ""
        #expect(clientLog.contains("Server accepts key"), "the client never reached the signing step: \(clientLog)")
        #expect(timeoutLines() > before && elapsed < 4, "no timeout for a client that never signs (\(elapsed)s)")

        #expect(server.process?.poll() == nil)
        #expect(try server.ssh(nil, ["whoami"]).stdout == "admin (admin)\n")
    }

    @Test("after 6 failed keys the client is disconnected; a valid key offered later does not get in")
    func tooManyAuthAttempts() throws {
        let server = try TestServer()
        var options: [String] = []
        for i in 1...7 {
            let key = try TestKey.generate(in: server.tmp.path, name: "unknown\(i)")
            options += ["-i", key.privatePath]
        }
        options += [
            "-i", server.admin.privatePath, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-p", String(server.port), "git@127.0.0.1", "whoami",
        ]
        let r = try run("/usr/bin/ssh", options, timeout: 30)
        #expect(r.status == 255, "\(r.output)")
        #expect(!r.stdout.contains("admin"))
        waitUntil(timeout: 5) { server.log.contains("too many authentication failures") }
        let log = server.log
        #expect(log.contains("Disconnecting: too many authentication failures from 127.0.0.1 port"), "\(log)")
        #expect(!log.contains("Accepted publickey"))
        let failures = log.components(separatedBy: "Failed publickey for").count - 1
        #expect(failures >= 1 && failures <= 6, "\(failures) failed attempts logged")
        // The server itself is fine.
        #expect(try server.ssh(nil, ["whoami"]).stdout == "admin (admin)\n")
    }

    @Test("random bytes, garbage after a banner and truncated key exchanges do not hurt the server")
    func garbageInput() throws {
        let server = try TestServer()
        let banner = Array("SSH-2.0-OpenSSH_9.2p1 fuzz\r\n".utf8)
        var kexinitHead: [UInt8] = [0x00, 0x00, 0x04, 0x00, 0x08, 20] + randomBytes(16)
        kexinitHead += [0x00, 0x00, 0x01, 0x00] + Array("curve25519-sha256,ecdh-sha2-nistp256,diffie-hellman-group".utf8)
        let inputs: [(String, [UInt8])] = [
            ("64 KiB of random bytes", randomBytes(65_536)),
            ("a banner, then random bytes", banner + randomBytes(8_192)),
            ("a banner, then a packet claiming 4 GiB", banner + [0xff, 0xff, 0xff, 0xff] + randomBytes(64)),
            ("a banner, then a truncated KEXINIT", banner + kexinitHead),
            ("a 64 KiB banner line", Array("SSH-2.0-".utf8) + Array(repeating: UInt8(ascii: "A"), count: 65_536)),
            ("an SSH-1 banner", Array("SSH-1.5-old\r\n".utf8) + randomBytes(512)),
            ("NUL bytes", Array(repeating: 0, count: 4_096)),
        ]
        for (what, bytes) in inputs {
            let socket = try RawSocket(port: server.port)
            socket.send(bytes)
            socket.shutdownWrite()
            _ = socket.readUntilClosed(timeout: 10)
            #expect(server.process?.poll() == nil, "the server died after \(what)")
            let who = try server.ssh(nil, ["whoami"])
            #expect(who.stdout == "admin (admin)\n", "after \(what): \(who.output)")
        }
        // A real client's key exchange cut off halfway: read the server's KEXINIT, send part of ours.
        for _ in 0..<3 {
            let socket = try RawSocket(port: server.port)
            socket.send(banner)
            _ = socket.readSome(timeout: 2)
            socket.send(kexinitHead)
        }
        #expect(server.process?.poll() == nil)
        #expect(try server.ssh(nil, ["whoami"]).stdout == "admin (admin)\n")
        #expect(!server.log.contains("Fatal error"), "\(server.log)")
    }

    @Test("connections beyond the cap of unauthenticated ones are dropped at once; the server recovers")
    func unauthenticatedCap() throws {
        let server = try TestServer()
        // The default cap is 64: hold 64 connections that never authenticate.
        var held: [RawSocket] = []
        for _ in 0..<64 { held.append(try RawSocket(port: server.port)) }
        for socket in held { #expect(String(decoding: socket.readSome(timeout: 5), as: UTF8.self).hasPrefix("SSH-2.0-")) }
        let extra = try RawSocket(port: server.port)
        let (bytes, closed) = extra.readUntilClosed(timeout: 5)
        #expect(closed && bytes.isEmpty, "the 65th unauthenticated connection was served")
        #expect(server.log.contains("too many unauthenticated connections"))
        held.removeAll()
        var who = try server.ssh(nil, ["whoami"])
        waitUntil(timeout: 10) {
            who = (try? server.ssh(nil, ["whoami"])) ?? who
            return who.stdout == "admin (admin)\n"
        }
        #expect(who.stdout == "admin (admin)\n", "\(who.output)")
    }

    @Test("sequential commands through one OpenSSH ControlMaster all run on its one connection (11, then 100)")
    func sequentialSessionsShareOneConnection() throws {
        let server = try TestServer()
        // The bug report's setup: ControlMaster=auto with a persisting master. The first command
        // starts the master; every later one is a mux client asking it for one more session.
        let control = server.tmp.path + "/cm"
        let shared = ["-o", "ControlMaster=auto", "-o", "ControlPath=\(control)", "-o", "ControlPersist=120"]
        defer {
            _ = try? run(
                "/usr/bin/ssh", server.sshOptions(server.admin) + ["-o", "ControlPath=\(control)", "-O", "exit", "git@127.0.0.1"], timeout: 10)
        }
        func whoamiRuns(_ count: Int) throws -> [CommandResult] {
            try (0..<count).map { _ in try server.ssh(nil, ["whoami"], options: shared, timeout: 30) }
        }
        let first = try whoamiRuns(11)
        #expect(
            first.allSatisfy { $0.status == 0 && $0.stdout == "admin (admin)\n" && $0.stderr.isEmpty },
            "\(first.enumerated().filter { $0.element.stderr != "" }.map { "#\($0.offset + 1): \($0.element.output)" })")
        let check = try run(
            "/usr/bin/ssh", server.sshOptions(server.admin) + ["-o", "ControlPath=\(control)", "-O", "check", "git@127.0.0.1"], timeout: 10)
        #expect(check.status == 0, "the master is gone: \(check.output)")

        // The server's fds after the first 11, then 100 more: the same (nothing kept per session).
        let serverPID = try #require(server.process?.pid)
        let fdsBefore = openFDs(pid: serverPID)
        let rssBefore = residentKiB(pid: serverPID)
        let more = try whoamiRuns(100)
        #expect(
            more.allSatisfy { $0.status == 0 && $0.stdout == "admin (admin)\n" && $0.stderr.isEmpty },
            "\(more.enumerated().filter { $0.element.stderr != "" }.prefix(3).map { "#\($0.offset + 12): \($0.element.output)" })")
        // A session's fds are closed when the client's close arrives, just after the client exits.
        waitUntil(timeout: 5) { openFDs(pid: serverPID) <= fdsBefore }
        #expect(openFDs(pid: serverPID) <= fdsBefore, "fds grew over 100 sessions: \(fdsBefore) -> \(openFDs(pid: serverPID))")
        let rssAfter = residentKiB(pid: serverPID)
        // Under AddressSanitizer freed memory sits in its quarantine (and LeakSanitizer checks leaks
        // instead), so resident size says nothing there.
        if !patchdBinary.contains("asan") {
            #expect(rssAfter - rssBefore < 8 * 1024, "memory grew over 100 sessions: \(rssBefore) KiB -> \(rssAfter) KiB")
        }

        // One connection accepted and authenticated for all 111 commands (and this stats call).
        let stats = try server.ssh(nil, ["stats", "--prometheus"], options: shared, timeout: 30)
        #expect(stats.output.contains("patchd_ssh_connections_total 1\n"), "\(stats.output)")
        #expect(server.log.components(separatedBy: "Accepted publickey").count - 1 == 1, "\(server.log)")
        #expect(!server.log.contains("refused"))

        // The connection's audit line: one, with a bounded list of what ran.
        _ = try run("/usr/bin/ssh", server.sshOptions(server.admin) + ["-o", "ControlPath=\(control)", "-O", "exit", "git@127.0.0.1"], timeout: 10)
        waitUntil(timeout: 10) { server.log.contains("audit conn=") }
        let audits = server.log.split(separator: "\n").filter { $0.contains("audit conn=") }
        #expect(audits.count == 1, "\(audits)")
        #expect(
            audits.first?.contains("cmd=" + Array(repeating: "whoami", count: 32).joined(separator: ",") + ",+80 ") == true,
            "\(audits)")
    }

    @Test("one connection may have at most 10 sessions open at once; a closed one frees its slot")
    func concurrentSessionsPerConnection() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "held", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let control = server.tmp.path + "/ctl"
        let master = try startBackground(
            "/usr/bin/ssh", server.sshOptions(server.admin) + ["-M", "-S", control, "-o", "ControlPersist=no", "-N", "git@127.0.0.1"],
            outputPath: server.tmp.path + "/master.out")
        defer { master.signalGroup(SIGKILL); master.wait() }
        waitUntil(timeout: 15) { FileManager.default.fileExists(atPath: control) }
        let mux = ["-S", control, "-o", "ControlMaster=no"]
        let logins = { server.log.components(separatedBy: "Accepted publickey").count - 1 }
        let loginsBefore = logins()  // the push and the master

        // Ten sessions held open: upload-pack advertises its refs and waits for the client.
        var held: [ChildProcess] = []
        defer { for client in held { client.signalGroup(SIGKILL); client.wait() } }
        for i in 1...10 {
            let client = try ChildProcess(
                executable: "/usr/bin/ssh",
                arguments: server.sshOptions(server.admin) + mux + ["git@127.0.0.1", "git-upload-pack 'held'"],
                environment: clientEnvironment(), stdin: .pipe, stdout: .pipe, stderr: .null)
            held.append(client)
            let advert = readAvailable(client.stdout!.raw, until: "refs/heads/main", timeout: 15)
            try #require(advert.contains("refs/heads/main"), "session \(i) did not start: \(advert)")
        }
        // The 11th at the same time is refused. (OpenSSH's mux client then falls back to a
        // connection of its own, which is why its command still runs.)
        let eleventh = try server.ssh(nil, ["whoami"], options: mux, timeout: 30)
        #expect(eleventh.stderr.contains("Session open refused by peer"), "\(eleventh.output)")
        #expect(logins() == loginsBefore + 1, "the fallback is a connection of its own")

        // One ends (a flush packet: the client wants nothing; upload-pack exits 0): its slot is
        // free for the next session.
        let ending = held.removeFirst()
        #expect((try? writeAll(ending.stdin!.raw, "0000")) != nil)
        ending.stdin?.close()
        #expect(ending.wait(timeout: 15) == 0)
        let next = try server.ssh(nil, ["whoami"], options: mux, timeout: 30)
        #expect(next.stdout == "admin (admin)\n" && next.stderr.isEmpty, "\(next.output)")
        #expect(logins() == loginsBefore + 1, "the session after a close did not use the shared connection")
    }

    @Test("a session where nothing moves is dropped after --idle-timeout, and its git goes too")
    func idleTimeout() throws {
        let server = try TestServer(extraArgs: ["--idle-timeout", "2"])
        let work = try server.makeWorkTree("work", repo: "idle", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        // upload-pack advertises its refs and then waits for the client, which says nothing
        // (its stdin stays open).
        let client = try ChildProcess(
            executable: "/usr/bin/ssh",
            arguments: server.sshOptions(server.admin) + ["git@127.0.0.1", "git-upload-pack 'idle'"],
            environment: clientEnvironment(), stdin: .pipe, stdout: .pipe, stderr: .null)
        defer { client.signalGroup(SIGKILL); client.wait() }
        let start = Date()
        var status: Int32?
        waitUntil(timeout: 15) {
            status = client.poll()
            return status != nil
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(status != nil && elapsed > 1.5 && elapsed < 8, "ssh ended (\(String(describing: status))) after \(elapsed)s")
        let advertised = (try? readAll(client.stdout!.raw, limit: 1 << 20)) ?? []
        #expect(String(decoding: advertised, as: UTF8.self).contains("refs/heads/main"))
        #expect(server.log.contains("Idle timeout for 127.0.0.1 port"))
        let serverPID = try #require(server.process?.pid)
        waitUntil(timeout: 10) { leftoverGit(serverPID: serverPID, dataDir: server.dataDir).isEmpty }
        #expect(leftoverGit(serverPID: serverPID, dataDir: server.dataDir).isEmpty)
        #expect(try server.ssh(nil, ["whoami"]).stdout == "admin (admin)\n")
    }

    // MARK: - Authorization

    @Test("others cannot see a repository; read collaborators clone but cannot push; write collaborators push")
    func readOnlyByDefault() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "secret", commits: 2)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "admin's push")
        let carol = try TestKey.generate(in: server.tmp.path, name: "carol")
        try server.addUser("carol", key: carol)
        #expect(try server.ssh(carol, ["whoami"]).stdout == "carol\n")

        func patchdError(_ r: CommandResult, repo: String) -> String {
            r.stderr.split(separator: "\n").filter { $0.contains("patchd: error:") }
                .map { $0.replacingOccurrences(of: "'\(repo)'", with: "'NAME'") }.joined(separator: "\n")
        }
        // No role: exactly the message of a repository that does not exist.
        let missing = try server.git(["clone", server.url("no-such-repo"), server.tmp.path + "/c0"], in: server.tmp.path, key: carol)
        #expect(missing.status != 0)
        let missingMessage = patchdError(missing, repo: "no-such-repo")
        #expect(missingMessage.contains("not found"), "\(missing.output)")
        let hidden = try server.git(["clone", server.url("secret"), server.tmp.path + "/c1"], in: server.tmp.path, key: carol)
        #expect(hidden.status != 0)
        #expect(patchdError(hidden, repo: "secret") == missingMessage, "\(hidden.output)")
        #expect(!FileManager.default.fileExists(atPath: server.tmp.path + "/c1/file1.txt"))

        let carolWork = try server.makeWorkTree("carolwork", repo: "secret", commits: 1)
        let headBefore = try server.git(["rev-parse", "main"], in: server.repoRoot + "/secret.git").stdout
        let hiddenPush = try server.git(["push", "origin", "main:main", "main:carol"], in: carolWork, key: carol)
        #expect(hiddenPush.status != 0)
        #expect(patchdError(hiddenPush, repo: "secret") == missingMessage, "\(hiddenPush.output)")

        // A read collaborator: clone works, push is refused and says why.
        try server.sql(
            """
            INSERT INTO collaborators(repo_id, user_id, role)
              SELECT r.id, u.id, 'read' FROM repos r, users u WHERE r.name = 'secret' AND u.name = 'carol';
            """)
        let clone = server.tmp.path + "/carolclone"
        try expectOK(server.git(["clone", "-q", server.url("secret"), clone], in: server.tmp.path, key: carol), "read clone")
        try "carol\n".write(toFile: clone + "/carol.txt", atomically: true, encoding: .utf8)
        try expectOK(server.git(["add", "."], in: clone))
        try expectOK(server.git(["commit", "-q", "-m", "carol"], in: clone))
        let readPush = try server.git(["push", "origin", "main"], in: clone, key: carol)
        #expect(readPush.status != 0)
        #expect(readPush.stderr.contains("read access"), "\(readPush.output)")
        let newBranch = try server.git(["push", "origin", "main:carol-branch"], in: clone, key: carol)
        #expect(newBranch.status != 0)
        #expect(try server.git(["rev-parse", "main"], in: server.repoRoot + "/secret.git").stdout == headBefore)
        #expect(
            try server.git(["for-each-ref", "--format=%(refname)"], in: server.repoRoot + "/secret.git").stdout
                == "refs/heads/main\n")

        // Write: the same push goes through.
        try server.sql(
            """
            UPDATE collaborators SET role = 'write'
              WHERE user_id = (SELECT id FROM users WHERE name = 'carol');
            """)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: clone, key: carol), "write push")
        #expect(
            try server.git(["rev-parse", "main"], in: server.repoRoot + "/secret.git").stdout
                == server.git(["rev-parse", "HEAD"], in: clone).stdout)
    }
}

// MARK: - Raw TCP, for clients that are not SSH clients

/// A TCP connection to 127.0.0.1 that sends and reads raw bytes (never raising SIGPIPE).
final class RawSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw TestFailure("connect to port \(port): errno \(e)")
        }
    }

    deinit { close(fd) }

    /// Sends all of `bytes`; false once the peer has closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    func shutdownWrite() { _ = shutdown(fd, Int32(SHUT_WR)) }

    /// Whatever arrives within `timeout` seconds (stops at the first pause after some data).
    func readSome(timeout: Double) -> [UInt8] {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? Array(buffer[0..<n]) : []
    }

    /// Reads until the peer closes (EOF or reset) or `timeout` seconds pass.
    func readUntilClosed(timeout: Double) -> (bytes: [UInt8], closed: Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return (received, false) }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(1, remaining * 1000)))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                received += buffer[0..<n]
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                return (received, true)
            }
        }
    }
}

/// A port nothing listens on right now (bound to 0 and released).
func freeLocalPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw TestFailure("cannot find a free port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

/// Reads what `fd` delivers until the text contains `marker`, it closes, or `timeout` seconds pass.
func readAvailable(_ fd: Int32, until marker: String, timeout: Double) -> String {
    let deadline = Date().addingTimeInterval(timeout)
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while !String(decoding: received, as: UTF8.self).contains(marker) {
        let remaining = deadline.timeIntervalSinceNow
        if remaining <= 0 { break }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&pfd, 1, Int32(max(1, remaining * 1000))) <= 0 { continue }
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        received += buffer[0..<n]
    }
    return String(decoding: received, as: UTF8.self)
}

/// How many fds process `pid` has open.
func openFDs(pid: pid_t) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}

/// Process `pid`'s resident memory (VmRSS) in KiB.
func residentKiB(pid: pid_t) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass (then just returns).
func waitUntil(timeout: Double, _ condition: () throws -> Bool) rethrows {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(50_000)
    }
}
