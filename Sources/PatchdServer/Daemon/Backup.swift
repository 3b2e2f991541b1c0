// PatchdServer: `patchd backup` and `patchd restore`: a consistent copy of a data dir, taken while it serves.

import Foundation
import GRDB
import GitStore
import PatchdCore
import PatchdSystem

/// A backup directory holds:
/// - `patchd.sqlite`: the database, copied with SQLite's online backup API (consistent
///   even while the daemon writes);
/// - `repos/NAME.bundle`: `git bundle create --all` of each repository (every ref:
///   branches, tags, agent/*, refs/patchd/runs/*, refs/notes/patchd), each a consistent
///   snapshot; an empty repository is listed in `repos/EMPTY` instead;
/// - `ssh_host_*`: the host keys (0600), so clients keep trusting the server;
/// - `MANIFEST`: what was copied, when, by which version.
/// Restore recreates a data dir from it; patchd rewrites each repository's hooks and
/// config at its next start.
package struct Backup {
    package let dataDir: String
    package let git: String
    let say: (String) -> Void

    package init(dataDir: String, say: @escaping (String) -> Void) throws {
        self.dataDir = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        self.git = try PatchdDaemon.findExecutable("git")
        self.say = say
    }

    package struct Failure: Error, CustomStringConvertible {
        package let description: String
        init(_ d: String) { description = d }
    }

    var environment: [String: String] {
        GitEnvironment.make(home: DataLayout(root: dataDir).home)
    }

    package func backup(to target: String) throws {
        let fm = FileManager.default
        // A backup directory has the data directory's own layout (database, repos/, host keys).
        let data = DataLayout(root: dataDir), copyLayout = DataLayout(root: target)
        guard fm.fileExists(atPath: data.database) else { throw Failure("\(dataDir) is not a patchd data directory (no patchd.sqlite)") }
        if fm.fileExists(atPath: target), !((try? fm.contentsOfDirectory(atPath: target)) ?? []).isEmpty {
            throw Failure("\(target) is not empty; back up into a new directory")
        }
        try fm.createDirectory(atPath: copyLayout.repos, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(target, 0o700)

        let source = try DatabasePool(path: data.database)
        let copy = try DatabaseQueue(path: copyLayout.database)
        try source.backup(to: copy)
        // Cached environments are not backed up (their files are rebuilt by setup): no rows either.
        try copy.write { try $0.execute(sql: "DELETE FROM environments") }
        say("database: copied")

        var empty: [String] = []
        let repos = RepositoryStore(root: data.repos, gitExecutable: git, gitHome: data.home, maxPushBytes: 0)
        for name in repos.allNames() {
            let bundle = "\(target)/repos/\(name.value).bundle"
            try fm.createDirectory(atPath: (bundle as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if repos.isEmpty(name) { empty.append(name.value); continue }
            let r = try runProcess(
                git, ["bundle", "create", "--quiet", bundle, "--all"], environment: environment,
                workingDirectory: repos.path(for: name))
            guard r.status == 0 else {
                throw Failure("git bundle of \(name) failed: \(String(decoding: r.stderr, as: UTF8.self))")
            }
            say("repo \(name): bundled")
        }
        try (empty.joined(separator: "\n") + (empty.isEmpty ? "" : "\n")).write(toFile: target + "/repos/EMPTY", atomically: true, encoding: .utf8)
        for key in DataLayout.hostKeyNames.flatMap({ [$0, $0 + ".pub"] }) where fm.fileExists(atPath: dataDir + "/" + key) {
            try fm.copyItem(atPath: dataDir + "/" + key, toPath: target + "/" + key)
            chmod(target + "/" + key, key.hasSuffix(".pub") ? 0o644 : 0o600)
        }
        let manifest = """
            patchd backup
            version: \(PatchdVersion.current)
            source: \(dataDir)
            date: \(Date().formatted(.iso8601))
            repositories: \(repos.allNames().count) (\(empty.count) empty)

            """
        try manifest.write(toFile: target + "/MANIFEST", atomically: true, encoding: .utf8)
        say("backup complete: \(target)")
    }

    /// Recreates `dataDir` (which must be new or empty) from a backup.
    package func restore(from source: String) throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: source + "/MANIFEST"), fm.fileExists(atPath: DataLayout(root: source).database) else {
            throw Failure("\(source) is not a patchd backup (no MANIFEST or patchd.sqlite)")
        }
        if fm.fileExists(atPath: dataDir), !((try? fm.contentsOfDirectory(atPath: dataDir)) ?? []).isEmpty {
            throw Failure("\(dataDir) is not empty; restore into a new data directory (and stop the server using the old one)")
        }
        let layout = DataLayout(root: dataDir)
        try layout.create()
        try fm.copyItem(atPath: DataLayout(root: source).database, toPath: layout.database)
        for key in DataLayout.hostKeyNames.flatMap({ [$0, $0 + ".pub"] }) where fm.fileExists(atPath: source + "/" + key) {
            try fm.copyItem(atPath: source + "/" + key, toPath: layout.root + "/" + key)
            chmod(layout.root + "/" + key, key.hasSuffix(".pub") ? 0o644 : 0o600)
        }
        let repos = RepositoryStore(root: layout.repos, gitExecutable: git, gitHome: layout.home, maxPushBytes: 0)
        let bundles = (fm.enumerator(atPath: source + "/repos")?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".bundle") }
        for relative in bundles.sorted() {
            let name = try RepositoryName(String(relative.dropLast(".bundle".count)))
            let path = repos.path(for: name)
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let r = try runProcess(git, ["clone", "--quiet", "--mirror", source + "/repos/" + relative, path], environment: environment)
            guard r.status == 0 else { throw Failure("restoring \(name) failed: \(String(decoding: r.stderr, as: UTF8.self))") }
            // A mirror clone keeps the bundle as its origin: not wanted in a served repository.
            _ = try? runProcess(git, ["remote", "remove", "origin"], environment: environment, workingDirectory: path)
            say("repo \(name): restored")
        }
        let empty = ((try? String(contentsOfFile: source + "/repos/EMPTY", encoding: .utf8)) ?? "").split(separator: "\n")
        for raw in empty {
            let name = try RepositoryName(String(raw))
            try repos.create(name)
            say("repo \(name): restored (empty)")
        }
        say("restore complete: start patchd with --data-dir \(dataDir)")
    }
}
