// Offsite: the daemon's replication thread: learns of changes, queues them durably, uploads them in the background with backoff.

import Foundation
import GRDB
package import GitStore
package import Logging
package import PatchdCore
import PatchdSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs on its own OS thread in the daemon, never inside a push: a push only sends a
/// datagram (`OffsiteNotify`), so replication adds nothing to its latency.
///
/// How changes are learnt: a datagram on DATA/offsite.sock from the post-receive hook (the
/// repository's name); `PRAGMA data_version` of patchd.sqlite every second (runs finished,
/// users, keys, ACLs: queue a database snapshot, and the repositories of runs that finished);
/// a comparison of every repository's refs with what was replicated at start and every
/// `scan_seconds` (catches anything missed: a lost datagram, a crash, `repo create`/`delete`).
/// Everything learnt goes into `OffsiteState`'s queue before it is worked on.
package final class Replicator: Sendable {
    package let configuration: OffsiteConfiguration
    let layout: DataLayout
    let repositories: RepositoryStore
    package let state: OffsiteState
    let logger: Logger
    let socketFD: Int32
    let socketPath: String
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<OSThread?>(nil)
    private let done = DispatchSemaphore(value: 0)

    package init(configuration: OffsiteConfiguration, layout: DataLayout, repositories: RepositoryStore, logger: Logger) throws {
        self.configuration = configuration
        self.layout = layout
        self.repositories = repositories
        self.logger = logger
        state = try OffsiteState(path: layout.offsiteQueue)
        socketPath = layout.offsiteSocket
        socketFD = try UnixSocket.bind(.datagram, path: socketPath)
        _ = try AgeCipher()
    }

    deinit {
        close(socketFD)
        unlink(socketPath)
    }

    var temporaryDirectory: String { layout.offsiteScratch }
    var shouldStop: Bool { stopping.load(ordering: .relaxed) }

    package func start() throws {
        try? FileManager.default.removeItem(atPath: temporaryDirectory)
        try FileManager.default.createDirectory(
            atPath: temporaryDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let started = try OSThread(name: "offsite") { [self] in
            defer { done.signal() }
            do { try loop() } catch {
                logger.error("offsite replication stopped: \(error)")
            }
        }
        thread.withLock { $0 = started }
    }

    /// Asks the thread to stop and waits up to `grace` seconds for the upload in progress;
    /// what is not finished stays queued for the next start.
    package func stop(grace: Double = 10) {
        stopping.store(true, ordering: .relaxed)
        UnixSocket.sendDatagram([0], to: socketPath)
        guard
            let started = thread.withLock({ t -> OSThread? in
                defer { t = nil }; return t
            })
        else { return }
        if done.wait(timeout: .now() + grace) == .success {
            started.join()
        } else {
            logger.warning("offsite: an upload is still running at stop; it is abandoned and stays queued")
            started.detach()
        }
    }

    // MARK: - The loop

    private func loop() throws {
        let s3 = try S3Client(configuration: configuration)
        let watcher = try DatabaseWatcher(path: layout.database)
        try enqueueStartupWork()
        var lastScan = MonotonicClock.now
        var lastWarning: Double?
        while !shouldStop {
            drainNotifications()
            if try watcher.changed() {
                let snapshotAt = (try state.meta("db_snapshot_at")).flatMap(Double.init) ?? 0
                try state.enqueue(.database, notBefore: snapshotAt + configuration.databaseIntervalSeconds)
                for repo in try watcher.reposOfFinishedRuns() { try state.enqueue(.repo, repo) }
                try enqueueAddedOrRemovedRepositories()
            }
            if MonotonicClock.now - lastScan >= configuration.scanSeconds {
                try scanRepositories()
                lastScan = MonotonicClock.now
            }
            // Bounded, so a queue that cannot record its own failures (a full disk) cannot spin.
            var worked = 0
            while !shouldStop, worked < 64, let item = try state.nextDue() {
                process(item, s3)
                drainNotifications()
                worked += 1
            }
            lastWarning = try reportLag(lastWarning: lastWarning)
            let wait = min(1.0, try state.secondsUntilNextDue() ?? 1.0)
            waitForNotification(timeoutMs: Int32(max(10, wait * 1000)))
        }
    }

    /// At start: host keys if they changed, every repository whose refs differ from the
    /// bucket's, and one database snapshot.
    private func enqueueStartupWork() throws {
        // A restart (after fixing the credentials, say) retries at once, whatever the backoff was.
        try state.retryNow()
        try state.enqueue(.hostkeys)
        try scanRepositories()
        try state.enqueue(.database)
    }

    /// Queues every repository whose refs or HEAD differ from its last uploaded manifest, and
    /// every replicated one that is gone from disk.
    func scanRepositories() throws {
        let git = GitReplication(git: repositories.gitExecutable, home: layout.home)
        for name in repositories.allNames() {
            let manifest = try state.manifest(name.value)
            guard let current = try? git.refs(repositories.path(for: name)) else { continue }
            if manifest == nil || manifest?.refs != current.refs || manifest?.head != current.head {
                try state.enqueue(.repo, name.value)
            }
        }
        try enqueueAddedOrRemovedRepositories()
    }

    /// Cheap (a directory listing): repositories created or deleted since the last upload.
    private func enqueueAddedOrRemovedRepositories() throws {
        let onDisk = Set(repositories.allNames().map(\.value))
        let replicated = Set(try state.replicatedNames())
        for name in onDisk.symmetricDifference(replicated) { try state.enqueue(.repo, name) }
    }

    private func drainNotifications() {
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(socketFD, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n > 0 else { return }
            let text = String(decoding: buffer[0..<n], as: UTF8.self)
            // Only a valid repository name is queued; anything else is ignored.
            if let name = try? RepositoryName(text) {
                do { try state.enqueue(.repo, name.value) } catch {
                    logger.error("offsite: cannot queue \(name): \(error)")
                }
            }
        }
    }

    private func waitForNotification(timeoutMs: Int32) {
        var pfd = pollfd(fd: socketFD, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, timeoutMs)
    }

    /// Works on one queued item; a failure is recorded with a backoff, never thrown.
    private func process(_ item: OffsiteState.Item, _ s3: S3Client) {
        let started = OffsiteState.now
        do {
            switch item.kind {
            case .repo: try replicateRepository(item.target, s3)
            case .database: try replicateDatabase(s3)
            case .hostkeys: try replicateHostKeys(s3)
            }
            try state.finished(item, startedAt: started)
            try state.setMeta("last_success_at", String(OffsiteState.now))
            if item.attempts > 0 { logger.info("offsite: \(item.kind.rawValue) \(item.target) replicated after \(item.attempts) failed attempt(s)") }
        } catch {
            let delay = (try? state.failed(item, error: "\(error)")) ?? 0
            logger.warning(
                "offsite: \(item.kind.rawValue) \(item.target) not replicated (attempt \(item.attempts + 1), next in \(Int(delay)) s): \(error)")
        }
    }

    private func reportLag(lastWarning: Double?) throws -> Double? {
        let status = try state.status()
        if status.lagSeconds >= configuration.lagWarnSeconds {
            if lastWarning == nil || MonotonicClock.now - lastWarning! >= configuration.lagWarnSeconds {
                logger.warning(
                    "offsite replication lag \(Int(status.lagSeconds)) s (threshold \(Int(configuration.lagWarnSeconds)) s): \(status.pending) change(s) pending\(status.lastError.map { "; last error: \($0)" } ?? "")"
                )
                return MonotonicClock.now
            }
            return lastWarning
        }
        if lastWarning != nil && status.pending == 0 { logger.info("offsite replication caught up") }
        return status.pending == 0 ? nil : lastWarning
    }

    // MARK: - Repositories

    func replicateRepository(_ nameText: String, _ s3: S3Client) throws {
        let name = try RepositoryName(nameText)
        let previous = try state.manifest(name.value)
        guard repositories.exists(name) else {
            if previous != nil {
                try state.removeManifest(name.value)
                try uploadIndex(s3)
                logger.info("offsite: repo \(name) deleted: removed from repos.json (its objects stay in the bucket)")
            }
            return
        }
        let git = GitReplication(git: repositories.gitExecutable, home: layout.home)
        let path = repositories.path(for: name)
        let seq = (previous?.seq ?? 0) + 1
        var bundles = previous?.bundles ?? []
        let consolidate = previous == nil || bundles.count >= 32
        let excluding = consolidate ? [] : try git.present(Set(previous!.refs.values), in: path)
        let bundlePath = temporaryDirectory + "/repo.bundle"
        try? FileManager.default.removeItem(atPath: bundlePath)
        defer { try? FileManager.default.removeItem(atPath: bundlePath) }

        var current = try git.refs(path)
        var bytes: Int64 = 0
        if !current.refs.isEmpty, try git.createBundle(path, to: bundlePath, excluding: excluding) {
            current.refs = try manifestRefs(bundle: bundlePath, before: current.refs, git: git, repo: path)
            let file = BucketLayout.bundleFile(seq)
            try s3.put(BucketLayout.bundle(name, file), file: bundlePath, shouldStop: { shouldStop })
            bytes = (try? FileManager.default.attributesOfItem(atPath: bundlePath)[.size] as? NSNumber)?.int64Value ?? 0
            bundles = consolidate ? [file] : bundles + [file]
        } else {
            let again = try git.refs(path)
            guard again.refs == current.refs else {
                throw OffsiteError.local("refs of \(name) moved while it was being bundled; retrying")
            }
            if consolidate { bundles = [] }
        }
        if let previous, previous.refs == current.refs, previous.head == current.head, previous.bundles == bundles { return }
        let manifest = RepositoryManifest(
            repository: name.value, seq: seq, bundles: bundles, head: current.head,
            refs: current.refs, updatedAt: JSONCoding.now)
        try s3.put(BucketLayout.manifest(name), bytes: try JSONCoding.encode(manifest), contentType: "application/json")
        try state.setManifest(manifest)
        if previous == nil { try uploadIndex(s3) }
        if consolidate, let previous {
            for old in previous.bundles where !bundles.contains(old) { try? s3.delete(BucketLayout.bundle(name, old)) }
        }
        logger.info("offsite: repo \(name): manifest \(seq), \(current.refs.count) refs\(bytes > 0 ? ", bundle of \(bytes) bytes" : "")")
    }

    /// The refs the manifest may name once `bundle` is uploaded: those the bundle records, at
    /// the values it holds, plus the refs it leaves out. git records only refs whose tips are
    /// new (an incremental bundle skips a ref whose tip the previous upload already has), so
    /// a ref missing from the bundle keeps its value from before bundling, if it did not move
    /// meanwhile (then its objects were in the earlier bundles); if it moved, this sync is
    /// retried rather than naming objects the bucket may not hold.
    func manifestRefs(bundle: String, before: [String: String], git: GitReplication, repo: String) throws -> [String: String] {
        var refs = try bundleHeads(bundle, git: git, repo: repo)
        let after = try git.refs(repo).refs
        for (name, oid) in before where refs[name] == nil {
            guard after[name] == oid else {
                throw OffsiteError.local("ref \(name) moved while it was being bundled; retrying")
            }
            refs[name] = oid
        }
        return refs
    }

    /// The refs a bundle carries (HEAD left out: it is recorded as a symbolic ref).
    private func bundleHeads(_ bundle: String, git: GitReplication, repo: String) throws -> [String: String] {
        let r = try runProcess(git.git, ["bundle", "list-heads", bundle], environment: git.environment, workingDirectory: repo)
        guard r.status == 0 else { throw OffsiteError.local("git bundle list-heads \(bundle): \(String(decoding: r.stderr, as: UTF8.self))") }
        var refs: [String: String] = [:]
        for line in String(decoding: r.stdout, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[1] != "HEAD" { refs[String(parts[1])] = String(parts[0]) }
        }
        return refs
    }

    private func uploadIndex(_ s3: S3Client) throws {
        let index = RepositoriesIndex(repositories: try state.replicatedNames(), updatedAt: JSONCoding.now)
        try s3.put(BucketLayout.repositoriesIndex, bytes: try JSONCoding.encode(index), contentType: "application/json")
    }

    // MARK: - Database and host keys

    /// An online backup of patchd.sqlite (consistent while the daemon writes), age-encrypted,
    /// uploaded, then `db/latest.json` pointed at it; snapshots past `keep_snapshots` are deleted.
    func replicateDatabase(_ s3: S3Client) throws {
        let plain = temporaryDirectory + "/patchd.sqlite"
        let sealed = plain + ".age"
        for path in [plain, sealed] { try? FileManager.default.removeItem(atPath: path) }
        defer { for path in [plain, sealed] { try? FileManager.default.removeItem(atPath: path) } }
        let takenAt = OffsiteState.now
        do {
            var readOnly = Configuration()
            readOnly.readonly = true
            let source = try DatabaseQueue(path: layout.database, configuration: readOnly)
            let copy = try DatabaseQueue(path: plain)
            try source.backup(to: copy)
            try copy.close()
            try source.close()
        }
        try AgeCipher().encrypt(plain, to: sealed, recipients: configuration.recipients)
        let stamp = Self.stamp(takenAt)
        let key = BucketLayout.databaseSnapshot(stamp)
        try s3.put(key, file: sealed, shouldStop: { shouldStop })
        let previous = (try state.meta("db_manifest")).flatMap { try? JSONDecoder().decode(DatabaseManifest.self, from: Data($0.utf8)) }
        var kept = (previous?.kept ?? []) + [key]
        let dropped = kept.count > configuration.keepSnapshots ? Array(kept.prefix(kept.count - configuration.keepSnapshots)) : []
        kept.removeFirst(dropped.count)
        let size = (try? FileManager.default.attributesOfItem(atPath: sealed)[.size] as? NSNumber)?.int64Value ?? 0
        let manifest = DatabaseManifest(snapshot: key, takenAt: Date(timeIntervalSince1970: takenAt).formatted(.iso8601), bytes: size, kept: kept)
        let json = try JSONCoding.encode(manifest)
        try s3.put(BucketLayout.databaseLatest, bytes: json, contentType: "application/json")
        try state.setMeta("db_manifest", String(decoding: json, as: UTF8.self))
        try state.setMeta("db_snapshot_at", String(takenAt))
        for old in dropped { try? s3.delete(old) }
        logger.info("offsite: database snapshot \(stamp) (\(size) bytes, encrypted)")
    }

    static func stamp(_ time: Double) -> String {
        var seconds = time_t(time)
        var tm = tm()
        gmtime_r(&seconds, &tm)
        return String(
            format: "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, Int((time - time.rounded(.down)) * 1000))
    }

    /// The host keys, encrypted, and their public halves in clear; skipped when the public
    /// keys are those already uploaded.
    func replicateHostKeys(_ s3: S3Client) throws {
        let present = BucketLayout.hostKeyNames.filter { FileManager.default.fileExists(atPath: layout.root + "/" + $0) }
        let publics = try present.map { try String(contentsOfFile: layout.root + "/" + $0 + ".pub", encoding: .utf8) }.joined()
        if try state.meta("host_keys") == publics { return }
        let cipher = try AgeCipher()
        for name in present {
            let sealed = temporaryDirectory + "/" + name + ".age"
            defer { try? FileManager.default.removeItem(atPath: sealed) }
            try cipher.encrypt(layout.root + "/" + name, to: sealed, recipients: configuration.recipients)
            try s3.put(BucketLayout.hostKey(name + ".age"), file: sealed)
            try s3.put(BucketLayout.hostKey(name + ".pub"), file: layout.root + "/" + name + ".pub", contentType: "text/plain")
        }
        try state.setMeta("host_keys", publics)
        logger.info("offsite: host keys uploaded (encrypted)")
    }
}

/// Notices commits to patchd.sqlite by other connections (`PRAGMA data_version`), and which
/// repositories had runs finish since the last look.
final class DatabaseWatcher {
    let queue: DatabaseQueue
    private var version: Int?
    private var finishedSince = "1970-01-01"

    init(path: String) throws {
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: config)
        finishedSince = try queue.read { db in
            try String.fetchOne(db, sql: "SELECT COALESCE(MAX(finished_at), '1970-01-01') FROM runs") ?? "1970-01-01"
        }
    }

    func changed() throws -> Bool {
        let now = try queue.read { db in try Int.fetchOne(db, sql: "PRAGMA data_version") ?? 0 }
        defer { version = now }
        return version != nil && version != now
    }

    func reposOfFinishedRuns() throws -> [String] {
        let since = finishedSince
        let rows = try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT repo, finished_at FROM runs WHERE finished_at > ? ORDER BY finished_at", arguments: [since])
        }
        if let last = rows.last { finishedSince = last["finished_at"] }
        return Array(Set(rows.map { $0["repo"] as String }))
    }
}
