// IntegrationTests: starts the real `patchd serve` binary on port 0 and drives it with real ssh and git.

import Foundation
@_exported import PatchdSystem
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Where the built binary is: $PATCHD_BIN (set by `make test`) or the debug build.
let patchdBinary: String = {
    if let bin = ProcessInfo.processInfo.environment["PATCHD_BIN"], !bin.isEmpty { return bin }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/patchd").path
}()

struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
    var output: String { stdout + stderr }
}

/// A scratch directory removed at deinit.
final class TempDir {
    let path: String
    init(_ label: String = "patchd-test") {
        let template = NSTemporaryDirectory() + "/\(label)-XXXXXX"
        var bytes = Array(template.utf8CString)
        path = String(cString: mkdtemp(&bytes)!)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// An SSH key pair made with ssh-keygen.
struct TestKey {
    let privatePath: String
    let publicLine: String
    var publicPath: String { privatePath + ".pub" }

    static func generate(in dir: String, name: String, type: String = "ed25519") throws -> TestKey {
        let path = "\(dir)/\(name)"
        var args = ["-q", "-t", type, "-N", "", "-C", "\(name)@test", "-f", path]
        if type == "rsa" { args += ["-b", "2048"] }
        let r = try run("/usr/bin/ssh-keygen", args)
        guard r.status == 0 else { throw TestFailure("ssh-keygen failed: \(r.output)") }
        let line = try String(contentsOfFile: path + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return TestKey(privatePath: path, publicLine: line)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs a command with a hard timeout (so a hung server fails a test instead of the suite).
func run(
    _ executable: String, _ args: [String], cwd: String? = nil, env extra: [String: String] = [:],
    stdin: String? = nil, timeout: Int = 120
) throws -> CommandResult {
    let r = try runProcess(
        "/usr/bin/timeout", ["-k", "5", String(timeout), executable] + args, environment: clientEnvironment(extra),
        workingDirectory: cwd, stdinBytes: stdin.map { Array($0.utf8) })
    return CommandResult(
        status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self),
        stderr: String(decoding: r.stderr, as: UTF8.self))
}

/// The environment `run` gives every client command, plus `extra`.
func clientEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var env = [
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0",
    ]
    env.merge(extra) { _, new in new }
    return env
}

/// Starts a client command in the background (its own process group, so `signalGroup`
/// reaches ssh and git's helpers too); stdout and stderr go to `outputPath`.
func startBackground(
    _ executable: String, _ args: [String], cwd: String? = nil, env extra: [String: String] = [:],
    outputPath: String
) throws -> ChildProcess {
    let fd = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw TestFailure("cannot open \(outputPath)") }
    defer { close(fd) }
    return try ChildProcess(
        executable: executable, arguments: args, environment: clientEnvironment(extra),
        workingDirectory: cwd, stdin: .null, stdout: .fd(fd), stderr: .fd(fd))
}

/// A running `patchd serve` with its own data dir, and an admin key.
final class TestServer {
    let tmp = TempDir("patchd-it")
    let dataDir: String
    let logPath: String
    let admin: TestKey
    private(set) var port = 0
    private(set) var process: ChildProcess?
    let extraArgs: [String]
    let extraEnv: [String: String]

    init(
        extraArgs: [String] = [], adminKeyType: String = "ed25519", env: [String: String] = [:], config: String? = nil,
        dataDir customDataDir: String? = nil
    ) throws {
        extraEnv = env
        dataDir = customDataDir ?? tmp.path + "/data"
        logPath = tmp.path + "/server.log"
        var args = extraArgs
        if let config {
            try config.write(toFile: tmp.path + "/patchd.yaml", atomically: true, encoding: .utf8)
            args += ["--config", tmp.path + "/patchd.yaml"]
        }
        self.extraArgs = args
        admin = try TestKey.generate(in: tmp.path, name: "admin", type: adminKeyType)
        try start()
    }

    /// Starts (or restarts) the server on a new port, and waits for its ready line.
    func start() throws {
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(logFD) }
        let marker = (try? String(contentsOfFile: logPath, encoding: .utf8))?.utf8.count ?? 0
        process = try ChildProcess(
            executable: patchdBinary,
            // A restart keeps the port, so remotes in work trees stay valid.
            arguments: ["serve", "--data-dir", dataDir, "--listen", "127.0.0.1:\(port)", "--admin-key", admin.publicPath] + extraArgs,
            environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp.path].merging(extraEnv) { _, n in n },
            // Its own working directory, so a stray relative write shows up in the test, not the checkout.
            workingDirectory: tmp.path,
            stdin: .null, stdout: .fd(logFD), stderr: .fd(logFD))
        port = try waitForReadyLine(in: logPath, marker: "patchd: listening on 127.0.0.1:", after: marker, exited: { process?.poll() })
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM (or another signal) and wait; returns the exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Double = 30) -> Int32 {
        guard let process else { return -1 }
        // A server a test already saw exit (and reaped) is not signalled: its pid may be reused.
        if process.poll() == nil { kill(process.pid, signal) }
        let status = process.wait(timeout: timeout)
        self.process = nil
        return status
    }

    func restart() throws {
        stop()
        try start()
    }

    /// A server still running at the end of a test is SIGKILLed; with PATCHD_TEST_STOP=term
    /// it gets SIGTERM first (15 s, then SIGKILL), so a sanitizer build of the server runs its
    /// exit-time checks (LeakSanitizer) for every test. See docs/SANITIZERS.md.
    deinit {
        if ProcessInfo.processInfo.environment["PATCHD_TEST_STOP"] == "term" { stop(signal: SIGTERM, timeout: 15) }
        stop(signal: SIGKILL)
    }

    // MARK: clients

    func sshOptions(_ key: TestKey) -> [String] {
        [
            "-i", key.privatePath, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-p", String(port),
        ]
    }

    /// `ssh -p PORT git@127.0.0.1 COMMAND...`
    func ssh(
        _ key: TestKey? = nil, _ command: [String], options: [String] = [], stdin: String? = nil,
        timeout: Int = 60
    ) throws -> CommandResult {
        try run("/usr/bin/ssh", sshOptions(key ?? admin) + options + ["git@127.0.0.1"] + command, stdin: stdin, timeout: timeout)
    }

    func gitEnv(_ key: TestKey) -> [String: String] {
        [
            "GIT_SSH_COMMAND": "/usr/bin/ssh " + sshOptions(key).filter { $0 != "-p" && $0 != String(port) }.joined(separator: " "),
            "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
        ]
    }

    func url(_ repo: String) -> String { "ssh://git@127.0.0.1:\(port)/\(repo)" }

    /// `git ARGS` in `cwd`, talking to this server with `key`.
    @discardableResult
    func git(_ args: [String], in cwd: String, key: TestKey? = nil, timeout: Int = 300) throws -> CommandResult {
        try run("/usr/bin/git", args, cwd: cwd, env: gitEnv(key ?? admin), timeout: timeout)
    }

    /// A work tree with `commits` commits on `main`, remote `origin` at `repo`.
    func makeWorkTree(_ name: String, repo: String, commits: Int = 3) throws -> String {
        let dir = tmp.path + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try expectOK(git(["init", "-q", "-b", "main"], in: dir))
        for i in 1...max(commits, 1) {
            try "line \(i)\n".write(toFile: "\(dir)/file\(i).txt", atomically: true, encoding: .utf8)
            try expectOK(git(["add", "."], in: dir))
            try expectOK(git(["commit", "-q", "-m", "commit \(i)"], in: dir))
        }
        try expectOK(git(["remote", "add", "origin", url(repo)], in: dir))
        return dir
    }

    var repoRoot: String { dataDir + "/repos" }
}

@discardableResult
func expectOK(_ r: CommandResult, _ what: String = "") throws -> CommandResult {
    guard r.status == 0 else { throw TestFailure("\(what) exited \(r.status):\n\(r.output)") }
    return r
}

// MARK: - the database, as an operator's tool would change it

extension TestServer {
    var databasePath: String { dataDir + "/patchd.sqlite" }

    /// Runs SQL against DATA/patchd.sqlite with the sqlite3 CLI (the server has it open in WAL mode).
    @discardableResult
    func sql(_ statement: String) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") else {
            throw TestFailure("these tests need the sqlite3 CLI: apt-get install -y sqlite3")
        }
        let r = try run("/usr/bin/sqlite3", ["-bail", "-cmd", ".timeout 10000", databasePath, statement], timeout: 30)
        guard r.status == 0 else { throw TestFailure("sqlite3 '\(statement)' exited \(r.status): \(r.output)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Adds a non-admin user who logs in with `key` (names are test constants: no quoting needed).
    /// Straight into the database, not through `user create`: tests that read the log (key
    /// probing, auth timeouts) must not see an admin session. CommandTests' `addUser(_:admin:)`
    /// goes through the command.
    func addUser(_ name: String, key: TestKey) throws {
        let fields = key.publicLine.split(separator: " ")
        let listing = try expectOK(run("/usr/bin/ssh-keygen", ["-lf", key.publicPath]), "ssh-keygen -lf").stdout
        let fingerprint = listing.split(separator: " ")[1]
        try sql(
            """
            INSERT INTO users(name, is_admin, created_at) VALUES('\(name)', 0, datetime('now'));
            INSERT INTO ssh_keys(user_id, type, blob, fingerprint, comment, created_at)
              SELECT id, '\(fields[0])', '\(fields[1])', '\(fingerprint)', '\(name)@test', datetime('now')
              FROM users WHERE name = '\(name)';
            """)
    }
}
