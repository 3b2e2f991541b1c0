// Offsite: `patchd restore --from-offsite`: a new data dir from the bucket: repositories with every ref, the database, host keys.

import Foundation
import GRDB
import GitStore
import PatchdCore

/// Rebuilds an empty data dir from what `Replicator` wrote: each repository in `repos.json`
/// from its bundles (applied in order) and refs manifest, checked with `git fsck`; the newest
/// database snapshot and the host keys, decrypted with the admin's age identity. It also
/// records what the bucket holds in DATA/offsite.sqlite, so the new server continues the
/// bucket's bundle chains instead of uploading every repository again.
package struct OffsiteRestore {
    package let configuration: OffsiteConfiguration
    package let dataDir: String
    package let identity: String
    let git: String
    let say: (String) -> Void

    package init(configuration: OffsiteConfiguration, dataDir: String, identity: String, git: String, say: @escaping (String) -> Void) {
        self.configuration = configuration
        self.dataDir = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        self.identity = identity
        self.git = git
        self.say = say
    }

    package func restore() throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: dataDir), !((try? fm.contentsOfDirectory(atPath: dataDir)) ?? []).isEmpty {
            throw OffsiteError.local("\(dataDir) is not empty; restore into a new data directory (and stop any server using the old one)")
        }
        guard fm.isReadableFile(atPath: identity) else {
            throw OffsiteError.configuration(
                "offsite: cannot read the age identity file \(identity) (the key whose public half is in age_recipients)")
        }
        let existed = fm.fileExists(atPath: dataDir)
        do { try restoreInto(fm) } catch {
            // Leave the directory as it was (absent or empty), so the restore can simply be run again.
            if existed {
                for entry in (try? fm.contentsOfDirectory(atPath: dataDir)) ?? [] { try? fm.removeItem(atPath: dataDir + "/" + entry) }
            } else {
                try? fm.removeItem(atPath: dataDir)
            }
            throw error
        }
    }

    private func restoreInto(_ fm: FileManager) throws {
        let cipher = try AgeCipher()
        let s3 = try S3Client(configuration: configuration)
        let layout = DataLayout(root: dataDir)
        try layout.create()
        let scratch = layout.offsiteScratch
        try fm.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? fm.removeItem(atPath: scratch) }
        let state = try OffsiteState(path: layout.offsiteQueue)

        // The database first: without it there are no users, and nothing else is worth having.
        guard let latest = try s3.get(BucketLayout.databaseLatest) else {
            throw OffsiteError.bucket(
                "no \(s3.fullKey(BucketLayout.databaseLatest)) in bucket \(configuration.bucket): nothing was replicated here (check bucket and prefix)"
            )
        }
        let dbManifest = try JSONCoding.decode(DatabaseManifest.self, latest, what: BucketLayout.databaseLatest)
        let sealed = scratch + "/patchd.sqlite.age"
        try s3.download(dbManifest.snapshot, to: sealed)
        try cipher.decrypt(sealed, to: layout.database, identity: identity)
        chmod(layout.database, 0o600)
        let check = try DatabaseQueue(path: layout.database).read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        guard check == "ok" else { throw OffsiteError.bucket("database snapshot \(dbManifest.snapshot) fails integrity_check: \(check ?? "?")") }
        try state.setMeta("db_manifest", String(decoding: try JSONCoding.encode(dbManifest), as: UTF8.self))
        say("database: snapshot of \(dbManifest.takenAt) restored")

        for name in BucketLayout.hostKeyNames {
            let path = layout.root + "/" + name
            let sealedKey = scratch + "/" + name + ".age"
            guard (try? s3.download(BucketLayout.hostKey(name + ".age"), to: sealedKey)) != nil else {
                say("host key \(name): not in the bucket; a new one will be made at start (clients will see a changed host key)")
                continue
            }
            try cipher.decrypt(sealedKey, to: path, identity: identity)
            chmod(path, 0o600)
            try s3.download(BucketLayout.hostKey(name + ".pub"), to: path + ".pub")
            chmod(path + ".pub", 0o644)
            say("host key \(name): restored")
        }

        let gitOps = GitReplication(git: git, home: layout.home)
        let repos = RepositoryStore(root: layout.repos, gitExecutable: git, gitHome: layout.home, maxPushBytes: 0)
        let index =
            try s3.get(BucketLayout.repositoriesIndex).map {
                try JSONCoding.decode(RepositoriesIndex.self, $0, what: BucketLayout.repositoriesIndex)
            } ?? RepositoriesIndex(repositories: [], updatedAt: "")
        for raw in index.repositories {
            let name = try RepositoryName(raw)
            guard let bytes = try s3.get(BucketLayout.manifest(name)) else {
                throw OffsiteError.bucket("repos.json lists \(name) but \(s3.fullKey(BucketLayout.manifest(name))) is missing")
            }
            let manifest = try JSONCoding.decode(RepositoryManifest.self, bytes, what: BucketLayout.manifest(name))
            let path = repos.path(for: name)
            try gitOps.initBare(path)
            for file in manifest.bundles {
                let local = scratch + "/" + file
                try s3.download(BucketLayout.bundle(name, file), to: local)
                try gitOps.unbundle(local, into: path)
                try? FileManager.default.removeItem(atPath: local)
            }
            try gitOps.setRefs(manifest.refs, head: manifest.head, in: path)
            if !manifest.refs.isEmpty { try gitOps.fsck(path) }
            try state.setManifest(manifest)
            say("repo \(name): \(manifest.refs.count) refs from \(manifest.bundles.count) bundle(s), fsck clean")
        }
        // Host keys are in the bucket already: the new server need not upload them again.
        let publics = BucketLayout.hostKeyNames.filter { fm.fileExists(atPath: layout.root + "/" + $0) }
            .compactMap { try? String(contentsOfFile: layout.root + "/" + $0 + ".pub", encoding: .utf8) }.joined()
        try state.setMeta("host_keys", publics)
        say("restore complete: start patchd with --data-dir \(dataDir) and the same offsite: settings")
    }
}
