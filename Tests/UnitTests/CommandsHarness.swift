// UnitTests: runs SSH commands in-process (real SQLite and git in a temp dir, output in a buffer), no SSH server.

import Foundation
import GitStore
import PatchdCommands
import PatchdCore
import PatchdSystem
import SSHKeys
import SSHServer
import Synchronization

/// One patchd world for command tests: a database, a repository root, users, and a router.
/// Runs are never executed: `run start` only queues; the scheduler's cancel marks the run canceled.
final class CommandHarness: Sendable {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        let bytes: [UInt8]
    }

    let dir: String
    let services: CommandServices
    let router: CommandRouter
    /// How often a command woke the scheduler.
    let wakes = Counter()

    init() throws {
        dir = NSTemporaryDirectory() + "/patchd-commands-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/repos", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
        let db = try PatchdDatabase(path: dir + "/patchd.sqlite")
        let runs = RunStore(db: db)
        let wakes = self.wakes
        services = CommandServices(
            users: UserStore(db: db), repoStore: RepoStore(db: db), runs: runs,
            repositories: RepositoryStore(
                root: dir + "/repos", gitExecutable: "/usr/bin/git", gitHome: dir + "/home",
                maxPushBytes: 0, defaultAgent: "command"),
            scheduler: SchedulerHandle(
                cancel: { id in
                    guard var run = try? runs.run(id: id), run.status == .running else { return false }
                    run.status = .canceled
                    try? runs.update(run)
                    return true
                },
                wake: { wakes.add() }),
            stats: { MetricsSnapshot() },
            parseKey: { try PublicKey(line: $0) },
            environments: EnvironmentStore(db: db, root: dir + "/environments"),
            secrets: SecretStore(db: db, keyFile: dir + "/secrets.key"))
        router = CommandRouter(services: services)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// A user with a made-up key (the stores do not parse keys; only `key add`/`user create` do).
    @discardableResult
    func user(_ name: String, admin: Bool = false) throws -> SSHIdentity {
        let fingerprint = "SHA256:test-\(name)-\(UUID().uuidString)"
        let key = PublicKey(type: "ssh-ed25519", base64: "AAAA" + name, fingerprint: fingerprint, comment: "")
        let user = try services.users.createUser(name: name, key: key, admin: admin)
        return SSHIdentity(userID: user.id!, userName: name, keyFingerprint: fingerprint)
    }

    /// A repository owned by `owner`, with one commit on each of `branches`, and collaborators.
    func repo(
        _ name: String, owner: SSHIdentity, branches: [String] = ["main"],
        collaborators: [(SSHIdentity, String)] = []
    ) throws {
        let repoName = try RepositoryName(name)
        let record = try services.repoStore.insert(name: repoName, ownerID: owner.userID)!
        try services.repositories.create(repoName)
        let gitDir = services.repositories.path(for: repoName)
        let tree = try git(["mktree"], gitDir, stdin: "")
        let commit = try git(["commit-tree", tree, "-m", "init"], gitDir)
        for branch in branches { _ = try git(["update-ref", "refs/heads/\(branch)", commit], gitDir) }
        for (user, role) in collaborators {
            try services.repoStore.setCollaborator(repoID: record.id!, userID: user.userID, role: role)
        }
    }

    /// The commit `branch` of `repo` points at.
    func head(_ repo: String, _ branch: String = "main") throws -> String {
        try git(["rev-parse", "refs/heads/\(branch)"], services.repositories.path(for: try RepositoryName(repo)))
    }

    /// A queued run on `repo` (as a push would make it).
    @discardableResult
    func queueRun(_ repo: String, branch: String = "main", status: RunStatus = .queued, agent: AgentKind = .command) throws -> RunRecord {
        var spec = TaskSpec(body: agent == .command ? "" : "Do the thing.")
        if agent == .command { spec.run = "true" }
        var run = try services.runs.enqueue(
            .init(
                repo: repo, branch: branch, base: try head(repo, branch), agent: agent,
                spec: spec, source: "file", requestedBy: nil))
        if status != .queued {
            run.status = status
            try services.runs.update(run)
        }
        return run
    }

    /// - Parameter input: the command's stdin (default: a value for `repo secret set`, nothing for others).
    func run(_ words: [String], as identity: SSHIdentity, input: [UInt8]? = nil) -> Result {
        let output = BufferedCommandOutput(input: input ?? (CommandRouter.readsInput(words) ? Array("s3cret-value\n".utf8) : nil))
        let status = router.run(words, identity: identity, output: output)
        return Result(status: status, stdout: output.stdout, stderr: output.stderr, bytes: output.stdoutBytes)
    }

    /// A valid OpenSSH key line, made by ssh-keygen.
    func freshKeyLine(_ name: String) throws -> String {
        let path = dir + "/key-\(name)-\(UUID().uuidString)"
        let r = try runProcess(
            "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "\(name)@test", "-f", path],
            environment: ["PATH": "/usr/bin:/bin"])
        guard r.status == 0 else { throw HarnessError("ssh-keygen failed: \(String(decoding: r.stderr, as: UTF8.self))") }
        return try String(contentsOfFile: path + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    func git(_ args: [String], _ gitDir: String, stdin: String? = nil) throws -> String {
        let env = [
            "PATH": "/usr/bin:/bin", "HOME": dir + "/home", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com",
        ]
        let r = try runProcess("/usr/bin/git", ["--git-dir", gitDir] + args, environment: env, stdinBytes: stdin.map { Array($0.utf8) })
        guard r.status == 0 else { throw HarnessError("git \(args.joined(separator: " ")): \(String(decoding: r.stderr, as: UTF8.self))") }
        return String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
