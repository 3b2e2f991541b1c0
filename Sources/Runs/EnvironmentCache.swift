// Runs: the environment cache: the key of what setup produces, restoring a cached environment as copy-on-write layers (or copies), saving one after setup, the package download caches, eviction.

import Foundation
import GitStore
import PatchdCore
import PatchdSystem
import Sandboxing

#if canImport(Glibc)
import Glibc
#endif

/// The server's environment cache settings (config: environment_cache, environment_cache_max_bytes,
/// environment_cache_repo_max_bytes).
package struct EnvironmentCacheSettings: Sendable, Equatable {
    package var enabled = true
    /// All repositories together; least recently used entries go first.
    package var maxBytes: Int64 = 20 << 30
    /// One repository (its entries and its package download caches).
    package var maxBytesPerRepository: Int64 = 5 << 30
    package init() {}
}

/// What the cache key is made of.
enum EnvironmentKey {
    /// Dependency manifests and lockfiles, matched by file name anywhere in the pushed tree,
    /// when the task gives no `cache_key:`.
    static let defaultManifests = [
        "requirements*.txt", "pyproject.toml", "uv.lock", "poetry.lock", "package.json", "package-lock.json",
        "pnpm-lock.yaml", "yarn.lock", "Cargo.toml", "Cargo.lock", "go.mod", "go.sum", "Gemfile.lock",
    ]

    /// Whether `path` (from the tree) is one of the key's files: by `patterns` (paths or globs;
    /// `**` crosses directories) or, without, by the default manifests' file names.
    static func matches(_ path: String, patterns: [String]?) -> Bool {
        if let patterns {
            return patterns.contains { p in fnmatch(p, path, p.contains("**") ? 0 : FNM_PATHNAME) == 0 }
        }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return defaultManifests.contains { fnmatch($0, name, 0) == 0 }
    }

    /// SHA-256 (hex) of the key material.
    static func hash(_ material: [UInt8]) throws -> String {
        let r = try runProcess(try Executable.find("sha256sum"), ["-b", "-"], environment: ["PATH": SandboxEnvironment.path], stdinBytes: material)
        let hex = String(decoding: r.stdout.prefix(64), as: UTF8.self)
        guard r.status == 0, hex.count == 64 else { throw SandboxSetupError("sha256sum failed: \(String(decoding: r.stderr, as: UTF8.self))") }
        return hex
    }
}

/// One tracked entry of the pushed tree, from `git ls-tree -r`.
struct TreeEntry {
    let path: String
    let oid: String
}

/// The cache as a run uses it. `prepare` runs before the sandbox opens (a hit mounts or copies
/// the cached layers then); `setupSucceeded` saves a miss.
struct EnvironmentCache {
    let env: RunEnvironment
    let store: EnvironmentStore

    /// Where the package download caches appear inside the sandbox, and each manager's variable.
    static let packagesInside = "/patchd/packages"
    static let packageVariables = [
        "PIP_CACHE_DIR": "pip", "UV_CACHE_DIR": "uv", "npm_config_cache": "npm", "YARN_CACHE_FOLDER": "yarn",
        "GOMODCACHE": "go/mod", "GOCACHE": "go/build",
    ]

    /// The run's session with the cache, or nil when the task has no setup (nothing to cache) or
    /// the cache is off. Never fails the run: a cache that cannot be used is a miss, logged.
    func prepare(
        run: RunRecord, spec: TaskSpec, repoID: Int64?, barePath: String, workspace: Workspace, egress: RunEgress?,
        mounts: inout SandboxMounts, log: @escaping @Sendable (RunEvent) -> Void
    ) -> EnvironmentSession? {
        guard let repoID, let setup = spec.setup, !setup.isEmpty else { return nil }
        var secrets: [String: String] = [:]
        if let secretStore = env.secrets {
            do { secrets = try secretStore.values(repoID: repoID) } catch {
                log(RunEvent(.error, "setup's secrets cannot be opened: \(error); setup runs without them"))
            }
        }
        guard env.environmentCache.enabled else {
            return EnvironmentSession(key: "", hit: false, repoID: repoID, secrets: secrets, packagesHost: nil, store: store, cache: self)
        }
        do {
            let tree = try trackedEntries(barePath: barePath, commit: run.base)
            var material = "patchd-environment-v1\0setup\0\(setup)\0sandbox\0\(env.sandbox.environmentIdentity)\0"
            if let egress {
                material += "egress\0\(egress.mode.rawValue)\0" + egress.entries.sorted().joined(separator: "\0") + "\0"
            } else {
                material += "egress\0host network\0"
            }
            material += "manifests\0" + (spec.cacheKey?.joined(separator: "\0") ?? "default") + "\0"
            for entry in tree where EnvironmentKey.matches(entry.path, patterns: spec.cacheKey) {
                material += entry.path + "\0" + entry.oid + "\0"
            }
            material += "secrets\0" + secrets.keys.sorted().joined(separator: "\0")
            let key = try EnvironmentKey.hash(Array(material.utf8))
            let short = key.prefix(12)
            let packages = preparePackages(repoID: repoID, mounts: &mounts)
            let session = EnvironmentSession(
                key: key, hit: false, repoID: repoID, secrets: secrets, packagesHost: packages, store: store, cache: self)
            session.tracked = tree
            if let entry = try store.entry(repoID: repoID, key: key) {
                let dir = store.directory(repoID: repoID, key: key)
                if let lock = EnvironmentStore.lock(dir, exclusive: false, wait: false) {
                    do {
                        let how = try restore(from: dir, workspace: workspace, mounts: &mounts)
                        try? store.recordHit(repoID: repoID, key: key)
                        session.hit = true
                        session.lock = lock
                        log(RunEvent(.info, "environment: cache hit \(short) (\(ByteCount.text(entry.sizeBytes)), \(how)); setup skipped"))
                        return session
                    } catch {
                        close(lock)
                        log(RunEvent(.info, "environment: cache entry \(short) cannot be used (\(env.layout.scrub("\(error)"))); setup runs"))
                    }
                } else {
                    // Gone between the lookup and the lock (evicted or cleared): a miss.
                    try? store.remove(repoID: repoID, key: key)
                }
            }
            log(RunEvent(.info, "environment: cache miss \(short); setup runs and its environment is kept"))
            return session
        } catch {
            log(RunEvent(.info, "environment: no cache for this run (\(env.layout.scrub("\(error)")))"))
            return EnvironmentSession(key: "", hit: false, repoID: repoID, secrets: secrets, packagesHost: nil, store: store, cache: self)
        }
    }

    /// Every blob of `commit`'s tree (path, oid), read from the bare repository with git.
    func trackedEntries(barePath: String, commit: String) throws -> [TreeEntry] {
        let r = try runProcess(
            env.repositories.gitExecutable, ["ls-tree", "-r", "-z", "--full-tree", commit], environment: env.repositories.gitEnvironment(),
            workingDirectory: barePath)
        guard r.status == 0 else { throw SandboxSetupError("git ls-tree failed: \(String(decoding: r.stderr, as: UTF8.self))") }
        return r.stdout.split(separator: 0).compactMap { record in
            guard let tab = record.firstIndex(of: 9) else { return nil }
            let fields = record[..<tab].split(separator: 32)
            guard fields.count == 3 else { return nil }
            return TreeEntry(path: String(decoding: record[(tab + 1)...], as: UTF8.self), oid: String(decoding: fields[2], as: UTF8.self))
        }
    }

    /// The package download caches: the repository's directory seen read-write by setup at
    /// /patchd/packages; with overlays through a copy-on-write layer whose new files are kept
    /// only when setup succeeds (so nothing a later phase writes reaches them).
    private func preparePackages(repoID: Int64, mounts: inout SandboxMounts) -> String? {
        let host = store.packages(repoID: repoID)
        do {
            try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            if env.sandbox.supportsOverlays(scratch: env.layout.work) {
                let base = mounts.scratch + "/env/packages"
                for dir in ["upper", "work", "merged"] {
                    try FileManager.default.createDirectory(atPath: base + "/" + dir, withIntermediateDirectories: true)
                }
                mounts.overlays.append(SandboxOverlay(lower: host, upper: base + "/upper", work: base + "/work", target: base + "/merged"))
                mounts.extra.append(SandboxBind(host: base + "/merged", inside: Self.packagesInside, writable: true))
                return base + "/upper"
            }
            mounts.extra.append(SandboxBind(host: host, inside: Self.packagesInside, writable: true))
            return nil
        } catch {
            return nil
        }
    }

    /// Makes the cached entry in `dir` the run's: each layer (a directory setup made) as an
    /// overlay bound at its place, or copied where overlays are not available; loose files copied.
    /// Refuses (a miss) when the fresh checkout has something at a layer's place.
    private func restore(from dir: String, workspace: Workspace, mounts: inout SandboxMounts) throws -> String {
        let manifest = try EnvironmentManifest.read(dir + "/manifest.json")
        let home = RunSandboxPaths.home(mounts)
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let overlays = env.sandbox.supportsOverlays(scratch: env.layout.work)
        var copied: [(String, [String])] = [("home", manifest.homeFiles), ("workspace", manifest.workspaceFiles)]
        var layers = 0
        for (area, paths) in [("home", manifest.homeLayers), ("workspace", manifest.workspaceLayers)] {
            let target = area == "home" ? home : workspace.path
            let inside = area == "home" ? RunSandboxPaths.homeInside : env.sandbox.workspacePath
            for path in paths {
                try Self.checkPlace(path, in: target, layer: true)
                guard overlays else { continue }
                layers += 1
                let base = mounts.scratch + "/env/layer-\(layers)"
                for sub in ["upper", "work", "merged"] {
                    try FileManager.default.createDirectory(atPath: base + "/" + sub, withIntermediateDirectories: true)
                }
                mounts.overlays.append(
                    SandboxOverlay(lower: "\(dir)/\(area)/\(path)", upper: base + "/upper", work: base + "/work", target: base + "/merged"))
                mounts.extra.append(SandboxBind(host: base + "/merged", inside: inside + "/" + path, writable: true))
            }
            if !overlays { copied.append((area, paths)) }
        }
        for (area, paths) in copied where !paths.isEmpty {
            let target = area == "home" ? home : workspace.path
            for path in paths { try Self.checkPlace(path, in: target, layer: false) }
            try Self.copy(paths, from: "\(dir)/\(area)", to: target, sandboxed: false)
        }
        return overlays ? "\(layers) copy-on-write layers" : "copied"
    }

    /// A cached path may go to `target` only below real directories (never through a symlink the
    /// pushed tree has), and a layer only where the checkout has nothing.
    static func checkPlace(_ path: String, in target: String, layer: Bool) throws {
        let parts = path.split(separator: "/").map(String.init)
        guard !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else { throw SandboxSetupError("bad cached path \(path)") }
        var current = target
        for (index, part) in parts.enumerated() {
            current += "/" + part
            var st = stat()
            guard lstat(current, &st) == 0 else { return }
            let isLast = index == parts.count - 1
            if isLast {
                if layer { throw SandboxSetupError("the checkout has \(path), where the cached environment has a directory") }
                return
            }
            guard st.st_mode & S_IFMT == S_IFDIR else { throw SandboxSetupError("\(path): a parent in the checkout is not a directory") }
        }
    }

    /// `cp -a --reflink=auto --parents` of `paths` (relative to `source`) into `target`, without
    /// replacing what is there. `sandboxed`: the source is a run's (setup may still be changing
    /// it), so cp runs in a bwrap that sees only the two directories: a symlink swapped in cannot
    /// make it read a host file.
    static func copy(_ paths: [String], from source: String, to target: String, sandboxed: Bool) throws {
        guard !paths.isEmpty else { return }
        let cp = try Executable.find("cp")
        for chunk in stride(from: 0, to: paths.count, by: 500).map({ Array(paths[$0..<min($0 + 500, paths.count)]) }) {
            var argv = [cp, "-a", "--reflink=auto", "--parents", "--no-clobber"]
            var cwd = source
            if sandboxed, let bwrap = try? Executable.find("bwrap") {
                argv = [
                    bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--dev", "/dev", "--proc", "/proc",
                    "--ro-bind", source, "/src", "--bind", target, "/dst", "--chdir", "/src", "--",
                    "/usr/bin/cp", "-a", "--reflink=auto", "--parents", "--no-clobber", "-t", "/dst", "--",
                ]
                cwd = "/"
            } else {
                argv += ["-t", target, "--"]
            }
            let r = try runProcess(argv[0], Array(argv.dropFirst()) + chunk, environment: ["PATH": SandboxEnvironment.path], workingDirectory: cwd)
            guard r.status == 0 else {
                throw SandboxSetupError("copying the environment failed: \(String(decoding: r.stderr.suffix(2000), as: UTF8.self))")
            }
        }
    }

    /// What setup left: HOME's top-level directories as layers and its files, and the
    /// workspace's untracked files (directories holding nothing tracked as layers).
    static func collect(home: String, workspace: String, tracked: [TreeEntry]) -> EnvironmentManifest {
        var manifest = EnvironmentManifest()
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: home)) ?? []).sorted() {
            switch fileType(home + "/" + name) {
            case S_IFDIR: manifest.homeLayers.append(name)
            case S_IFREG, S_IFLNK: manifest.homeFiles.append(name)
            default: break
            }
        }
        let files = Set(tracked.map(\.path))
        var dirs = Set<String>()
        for path in files {
            var parts = path.split(separator: "/").dropLast()
            while !parts.isEmpty {
                dirs.insert(parts.joined(separator: "/"))
                parts = parts.dropLast()
            }
        }
        func walk(_ prefix: String) {
            let dir = prefix.isEmpty ? workspace : workspace + "/" + prefix
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                if prefix.isEmpty && name == ".git" { continue }
                let path = prefix.isEmpty ? name : prefix + "/" + name
                if files.contains(path) { continue }
                switch fileType(dir + "/" + name) {
                case S_IFDIR: if dirs.contains(path) { walk(path) } else { manifest.workspaceLayers.append(path) }
                case S_IFREG, S_IFLNK: manifest.workspaceFiles.append(path)
                default: break
                }
            }
        }
        walk("")
        return manifest
    }

    static func fileType(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0
    }

    /// Bytes under `path` (not following symlinks), counted by blocks the files take.
    static func diskUsage(_ path: String) -> Int64 {
        var total: Int64 = 0
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        while let name = walker.nextObject() as? String {
            var st = stat()
            if lstat(path + "/" + name, &st) == 0 { total += Int64(st.st_blocks) * 512 }
        }
        return total
    }

    /// Removes least recently used entries (never one a run holds) until the repository and
    /// the server are under their caps; a repository's package caches go when its entries alone
    /// cannot bring it under.
    func evict(repoID: Int64, log: (String) -> Void) {
        store.sweep()
        let settings = env.environmentCache
        guard var all = try? store.leastRecentlyUsed() else { return }
        func packagesSize(_ repo: Int64) -> Int64 { Self.diskUsage(store.packages(repoID: repo)) }
        func remove(_ entry: EnvironmentEntry) -> Bool {
            let dir = store.directory(repoID: entry.repoID, key: entry.key)
            guard let lock = EnvironmentStore.lock(dir, exclusive: true, wait: false) else { return false }
            close(lock)
            try? store.delete(repoID: entry.repoID, key: entry.key)
            log("environment: evicted \(entry.key.prefix(12)) (\(ByteCount.text(entry.sizeBytes)), last used \(RunJSON.iso(entry.lastUsedAt)))")
            return true
        }
        var repoTotal = all.filter { $0.repoID == repoID }.reduce(0) { $0 + $1.sizeBytes } + packagesSize(repoID)
        for entry in all where entry.repoID == repoID && repoTotal > settings.maxBytesPerRepository {
            if remove(entry) {
                repoTotal -= entry.sizeBytes
                all.removeAll { $0.repoID == entry.repoID && $0.key == entry.key }
            }
        }
        if repoTotal > settings.maxBytesPerRepository {
            store.discard(store.packages(repoID: repoID))
            log("environment: cleared the package download caches (over the repository's cap)")
        }
        var total = all.reduce(0) { $0 + $1.sizeBytes }
        for entry in all where total > settings.maxBytes {
            if remove(entry) { total -= entry.sizeBytes }
        }
    }
}

/// What an entry holds (manifest.json): paths relative to HOME and to the workspace.
struct EnvironmentManifest: Codable {
    var homeLayers: [String] = []
    var homeFiles: [String] = []
    var workspaceLayers: [String] = []
    var workspaceFiles: [String] = []

    static func read(_ path: String) throws -> EnvironmentManifest {
        guard let data = FileManager.default.contents(atPath: path) else { throw SandboxSetupError("the entry has no manifest") }
        return try JSONDecoder().decode(EnvironmentManifest.self, from: data)
    }
}

/// One run's use of the cache: the key, hit or miss, setup's secrets and package caches, the lock
/// on the entry it uses. Used only by its run's thread.
final class EnvironmentSession: @unchecked Sendable {
    let key: String
    var hit: Bool
    let repoID: Int64
    let secrets: [String: String]
    /// The package caches' copy-on-write upper directory (nil: bound directly, or none).
    let packagesUpper: String?
    let hasPackages: Bool
    var lock: Int32?
    var tracked: [TreeEntry] = []
    var seconds = 0.0
    let store: EnvironmentStore
    let cache: EnvironmentCache

    init(
        key: String, hit: Bool, repoID: Int64, secrets: [String: String], packagesHost: String?, store: EnvironmentStore,
        cache: EnvironmentCache
    ) {
        self.key = key
        self.hit = hit
        self.repoID = repoID
        self.secrets = secrets
        self.packagesUpper = packagesHost
        self.hasPackages = !key.isEmpty
        self.store = store
        self.cache = cache
    }

    /// The script to run before the agent: setup on a miss, `maintenance:` (or nothing) on a hit.
    func script(_ spec: TaskSpec) -> String? { hit ? spec.maintenance : spec.setup }

    /// Setup's (or maintenance's) own variables: the secrets and the package cache locations.
    func setupEnvironment(_ sandbox: Sandbox) -> [String: String] {
        var vars = secrets
        if hasPackages {
            let root = sandbox.path(of: SandboxBind(host: store.packages(repoID: repoID), inside: EnvironmentCache.packagesInside, writable: true))
            for (name, sub) in EnvironmentCache.packageVariables { vars[name] = root + "/" + sub }
        }
        return vars
    }

    /// The values the run log masks (at least 4 bytes: shorter ones would mask ordinary text).
    var maskedValues: [String] {
        secrets.values.flatMap { value in [value] + value.split(separator: "\n").map(String.init) }.filter { $0.utf8.count >= 4 }
    }

    /// After setup (or maintenance) succeeded: keeps the package downloads and, on a miss, the
    /// environment. Failures are logged; the run goes on.
    func setupSucceeded(mounts: SandboxMounts, workspace: Workspace, runID: Int64, log: @escaping @Sendable (RunEvent) -> Void) {
        if let upper = packagesUpper { Self.keepNew(from: upper, into: store.packages(repoID: repoID)) }
        guard !hit, !key.isEmpty else { return }
        let started = MonotonicClock.now
        let repoDir = store.directory(repoID: repoID)
        let staging = store.root + "/.staging-\(runID)-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let home = RunSandboxPaths.home(mounts)
            let manifest = EnvironmentCache.collect(home: home, workspace: workspace.path, tracked: tracked)
            for area in ["home", "workspace"] {
                try FileManager.default.createDirectory(atPath: staging + "/" + area, withIntermediateDirectories: true)
            }
            try EnvironmentCache.copy(manifest.homeLayers + manifest.homeFiles, from: home, to: staging + "/home", sandboxed: true)
            try EnvironmentCache.copy(
                manifest.workspaceLayers + manifest.workspaceFiles, from: workspace.path, to: staging + "/workspace", sandboxed: true)
            try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: staging + "/manifest.json"))
            _ = FileManager.default.createFile(atPath: staging + "/lock", contents: nil)
            let size = EnvironmentCache.diskUsage(staging)
            try FileManager.default.createDirectory(atPath: repoDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let dir = store.directory(repoID: repoID, key: key)
            guard rename(staging, dir) == 0 else {
                // Another run of the same key saved first: theirs is as good.
                try? FileManager.default.removeItem(atPath: staging)
                return
            }
            let now = Date()
            try store.save(EnvironmentEntry(repoID: repoID, key: key, sizeBytes: size, createdAt: now, lastUsedAt: now, hits: 0))
            log(
                RunEvent(
                    .info,
                    "environment: kept \(key.prefix(12)) (\(ByteCount.text(size)): \(manifest.homeLayers.count + manifest.homeFiles.count) in HOME, "
                        + "\(manifest.workspaceLayers.count + manifest.workspaceFiles.count) untracked in the workspace) in "
                        + String(format: "%.2f s", MonotonicClock.now - started)))
            cache.evict(repoID: repoID) { log(RunEvent(.info, $0)) }
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            log(RunEvent(.info, "environment: not kept: \(cache.env.layout.scrub("\(error)"))"))
        }
    }

    /// Moves the regular files setup downloaded (the overlay's upper layer) into the repository's
    /// package caches; whiteouts, devices and symlinks are left behind.
    static func keepNew(from upper: String, into target: String) {
        guard let walker = FileManager.default.enumerator(atPath: upper) else { return }
        while let rel = walker.nextObject() as? String {
            let source = upper + "/" + rel, dest = target + "/" + rel
            switch EnvironmentCache.fileType(source) {
            case S_IFDIR:
                if EnvironmentCache.fileType(dest) != S_IFDIR {
                    try? FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: false)
                }
            case S_IFREG:
                _ = rename(source, dest)
            default: break
            }
        }
    }

    /// The record for `run show --json`.
    var record: String? {
        guard !key.isEmpty else { return nil }
        let value = RunEnvironmentRecord(key: key, hit: hit, setupSeconds: (seconds * 1000).rounded() / 1000)
        return (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Releases the entry for eviction. Called when the run's sandbox has closed.
    func close() {
        if let lock { Glibc.close(lock) }
        lock = nil
    }

    deinit { close() }
}

/// Sizes for people: 1.2 MiB.
enum ByteCount {
    static func text(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
    }
}
