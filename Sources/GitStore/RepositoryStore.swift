// GitStore: the bare repositories under DATA/repos: create, configure, delete, and how git is spawned on them.

import Foundation
package import PatchdCore
package import PatchdSystem

/// Bare repositories on disk, `ROOT/NAME.git`. Names are validated `RepositoryName`s,
/// so no path here is built from unchecked input.
package final class RepositoryStore: Sendable {
    package let root: String
    /// Settings written into every repository's config at creation and at each start.
    package let serverConfig: [(String, String)]
    package let gitExecutable: String
    private let gitHome: String

    /// Hook name -> script, written into every repository's hooks/.
    package let hooks: [String: String]
    /// The agent for tasks that name none (the hooks and `run start` need it).
    package let defaultAgent: String

    /// - Parameters:
    ///   - gitHome: patchd's own HOME for git processes (no user config leaks in).
    ///   - maxPushBytes: receive.maxInputSize.
    package init(
        root: String, gitExecutable: String, gitHome: String, maxPushBytes: Int64, hooks: [String: String] = [:],
        defaultAgent: String = "builtin"
    ) {
        self.root = root
        self.hooks = hooks
        self.defaultAgent = defaultAgent
        self.gitExecutable = gitExecutable
        self.gitHome = gitHome
        serverConfig = [
            ("receive.fsckObjects", "true"),
            ("receive.advertisePushOptions", "true"),
            ("receive.maxInputSize", String(maxPushBytes)),
            // Keep pushed packs as packs: clones then reuse them instead of re-deflating loose objects.
            ("transfer.unpackLimit", "1"),
            ("uploadpack.allowFilter", "true"),
            ("uploadarchive.allowUnreachable", "false"),
            ("core.logAllRefUpdates", "false"),
        ]
    }

    package func path(for name: RepositoryName) -> String { "\(root)/\(name.value).git" }

    package func exists(_ name: RepositoryName) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path(for: name) + "/objects", isDirectory: &isDir) && isDir.boolValue
    }

    /// Creates an empty bare repository with HEAD at refs/heads/main.
    package func create(_ name: RepositoryName) throws(GitError) {
        let repo = try GitRepository.createBare(at: path(for: name), initialBranch: "main")
        try repo.setConfig(serverConfig)
        installHooks(name)
    }

    /// Rewrites the server-owned settings and hooks (done at every start, so upgrades apply).
    package func refreshConfig(_ name: RepositoryName) throws(GitError) {
        try GitRepository(openBare: path(for: name)).setConfig(serverConfig)
        installHooks(name)
        // Run refs written loose since the last push (or by an older patchd) are packed now; a
        // failure leaves them loose, which is correct, and the next push's hook tries again.
        _ = try? packRefsIfMany(name)
    }

    private func installHooks(_ name: RepositoryName) {
        let dir = path(for: name) + "/hooks"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (hook, script) in hooks {
            let file = "\(dir)/\(hook)"
            let temp = file + ".patchd-tmp"
            // Written aside and renamed: a push running meanwhile sees the old or the new script, never half.
            guard
                FileManager.default.createFile(
                    atPath: temp, contents: Data(script.utf8),
                    attributes: [.posixPermissions: 0o755])
            else { continue }
            _ = rename(temp, file)
        }
    }

    /// `git diff [--stat] BASE RESULT` in the bare repository (safe: the config is patchd's), as
    /// text for people: not byte-exact (invalid UTF-8 is replaced); `binaryDiff` is the patch.
    package func diff(_ name: RepositoryName, base: String, result: String, stat: Bool) -> String {
        let args = ["diff", "--no-color", "--no-ext-diff"] + (stat ? ["--stat=100"] : []) + [base, result, "--"]
        guard let r = try? runProcess(gitExecutable, args, environment: gitEnvironment(), workingDirectory: path(for: name)) else {
            return ""
        }
        return String(decoding: r.stdout, as: UTF8.self)
    }

    /// Why `binaryDiff` has no patch to give.
    package struct DiffError: Error, CustomStringConvertible {
        package let description: String
    }

    /// The exact bytes of `git diff --binary BASE RESULT`: CRLF, Latin-1 and binary files
    /// included, so `git apply --binary` at BASE reproduces RESULT. No textconv, no colour.
    package func binaryDiff(_ name: RepositoryName, base: String, result: String) throws(DiffError) -> [UInt8] {
        let args = ["diff", "--binary", "--full-index", "--no-color", "--no-ext-diff", "--no-textconv", base, result, "--"]
        let r: (status: Int32, stdout: [UInt8], stderr: [UInt8])
        do { r = try runProcess(gitExecutable, args, environment: gitEnvironment(), workingDirectory: path(for: name)) } catch {
            throw DiffError(description: "cannot run git diff in '\(name)': \(error)")
        }
        guard r.status == 0 else {
            let why = Terminal.sanitize(String(decoding: r.stderr.prefix(300), as: UTF8.self)).trimmingCharacters(in: .whitespacesAndNewlines)
            throw DiffError(description: "git diff \(base.prefix(12)) \(result.prefix(12)) in '\(name)' failed (exit \(r.status)): \(why)")
        }
        return r.stdout
    }

    package func delete(_ name: RepositoryName) {
        try? FileManager.default.removeItem(atPath: path(for: name))
        if let group = name.group {
            // An empty group directory goes too; a non-empty one stays (rmdir fails).
            _ = rmdir("\(root)/\(group)")
        }
    }

    /// True when the repository has no references at all (nothing was ever pushed).
    package func isEmpty(_ name: RepositoryName) -> Bool {
        ((try? GitRepository(openBare: path(for: name)).referenceNames()) ?? []).isEmpty
    }

    /// After the first push into a new repository: HEAD names `main` if it was pushed,
    /// else the first of `pushedBranches`, else the first branch there is.
    package func pointHeadAtFirstBranch(_ name: RepositoryName, pushedBranches: [String] = []) {
        guard let repo = try? GitRepository(openBare: path(for: name)) else { return }
        // The usual case, at every push: HEAD names a branch that exists. Checked by name, since
        // listing every ref costs as much as the repository has runs.
        if let current = repo.headTarget, current.hasPrefix(PatchdRefs.branchPrefix), (try? repo.resolve(current)) != nil { return }
        guard let refs = try? repo.referenceNames() else { return }
        let heads = refs.filter { $0.hasPrefix("refs/heads/") }
        if let current = repo.headTarget, heads.contains(current) { return }
        let choice =
            heads.contains("refs/heads/main")
            ? "refs/heads/main"
            : pushedBranches.first(where: heads.contains) ?? heads.sorted().first
        if let choice { try? repo.setHead(choice) }
    }

    /// The environment every git process gets: nothing from the daemon's own,
    /// patchd's HOME, no system or global config, plus `extra` (GIT_PROTOCOL, hook context).
    package func gitEnvironment(extra: [String: String] = [:]) -> [String: String] {
        GitEnvironment.make(home: gitHome, extra: extra)
    }

    /// `git upload-pack` / `git receive-pack` on a repository, run in its directory with
    /// `.` as the path so the name can never be read as an option.
    package func spawnPackProtocol(
        _ service: PackService, repository name: RepositoryName,
        environment extra: [String: String]
    ) throws(SystemError) -> ChildProcess {
        try ChildProcess(
            executable: gitExecutable,
            arguments: packProtocolArguments(service, repository: name, gitProtocol: extra["GIT_PROTOCOL"]),
            environment: gitEnvironment(extra: extra),
            workingDirectory: path(for: name), stdin: .pipe, stdout: .pipe, stderr: .pipe)
    }

    /// git's arguments for `service` on `name`, for a client whose `GIT_PROTOCOL` is `gitProtocol`.
    package func packProtocolArguments(_ service: PackService, repository name: RepositoryName, gitProtocol: String?) -> [String] {
        var args = ["-c", "protocol.file.allow=never", "-c", "core.hooksPath=\(path(for: name))/hooks"]
        switch service {
        case .uploadPack:
            // Run refs grow by one per run: only a v2 client (which asks for ref prefixes) sees
            // them; a v0/v1 client is spared their advertisement and fetches a run by its commit.
            if !PatchdRefs.speaksV2(gitProtocol: gitProtocol) {
                args += PatchdRefs.hiddenFromV0Fetch.flatMap { ["-c", "uploadpack.hideRefs=\($0)"] }
                args += ["-c", "uploadpack.allowTipSHA1InWant=true"]
            }
            args += ["upload-pack", "--strict", "."]
        case .receivePack:
            // patchd's refs are not offered to pushers: a `git push --mirror` from a clone without
            // them does not delete them, and an update of one is refused for that ref alone.
            args.insert(contentsOf: PatchdRefs.hidden.flatMap { ["-c", "receive.hideRefs=\($0)"] }, at: 0)
            // The connectivity check of a push (`rev-list --not --exclude-hidden=receive --all
            // --alternate-refs` in the quarantine) also lists the repository's refs as the
            // quarantine's "alternate", hidden ones included, and parses every commit they name:
            // 100,000 run refs made each push ~0.5 s slower. Branches and tags (agent/* among
            // them) are all the walk needs to stop early; --all already has the visible refs.
            args.insert(contentsOf: ["-c", "core.alternateRefsPrefixes=\(PatchdRefs.alternateRefsPrefixes)"], at: 0)
            args += ["receive-pack", "."]
        }
        return args
    }

    /// Every repository on disk (for start-up refresh and listings).
    package func allNames() -> [RepositoryName] {
        let fm = FileManager.default
        var names: [RepositoryName] = []
        for entry in (try? fm.contentsOfDirectory(atPath: root)) ?? [] {
            if entry.hasSuffix(".git"), let name = try? RepositoryName(String(entry.dropLast(4))) {
                names.append(name)
            } else if !entry.hasSuffix(".git") {
                for sub in (try? fm.contentsOfDirectory(atPath: "\(root)/\(entry)")) ?? [] where sub.hasSuffix(".git") {
                    if let name = try? RepositoryName("\(entry)/\(sub.dropLast(4))") { names.append(name) }
                }
            }
        }
        return names.sorted()
    }
}

/// The two pack protocol services.
package enum PackService: String, Sendable {
    case uploadPack = "git-upload-pack"
    case receivePack = "git-receive-pack"

    package var writes: Bool { self == .receivePack }
}
