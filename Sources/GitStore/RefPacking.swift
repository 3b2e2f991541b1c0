// GitStore: packs a repository's refs once patchd's own run refs pile up as loose files.

import Foundation
package import PatchdCore
import PatchdSystem

/// Why `git pack-refs` could not run or failed in a repository.
package struct RefPackingError: Error, CustomStringConvertible {
    package let description: String
}

extension RepositoryStore {
    /// Loose refs under `refs/patchd` at which `packRefsIfMany` packs. libgit2 writes each run's
    /// ref as its own file, and every `git push` (receive-pack advertises all refs, hidden ones
    /// included in its walk) and v0 fetch reads each of them: 100,000 loose refs cost seconds per
    /// push, one packed-refs file a fraction of that. Packing rewrites packed-refs (~7 MB at
    /// 100,000 refs, ~0.2 s), so it is done once per this many runs, not per run.
    package static let loosePatchdRefsToPack = 256

    /// Loose ref files under `refs/patchd` of `name`, counted up to `limit` (the walk stops there).
    package func loosePatchdRefs(_ name: RepositoryName, limit: Int = .max) -> Int {
        let dir = URL(fileURLWithPath: path(for: name) + "/" + PatchdRefs.runsRoot, isDirectory: true)
        guard let walk = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey]) else { return 0 }
        var count = 0
        while count < limit, let entry = walk.nextObject() as? URL {
            let isFile = (try? entry.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) ?? false
            if isFile == true, !entry.lastPathComponent.hasSuffix(".lock") { count += 1 }
        }
        return count
    }

    /// `git pack-refs --all --prune` when `refs/patchd` holds `loosePatchdRefsToPack` loose refs or
    /// more; true when it packed. git's own pack-refs takes packed-refs.lock before it reads, and
    /// deletes a loose ref only if it still holds the packed value, so a push or a run writing a
    /// ref meanwhile loses nothing. (libgit2's `git_refdb_compress` reads before it locks.)
    @discardableResult
    package func packRefsIfMany(_ name: RepositoryName) throws(RefPackingError) -> Bool {
        guard loosePatchdRefs(name, limit: Self.loosePatchdRefsToPack) >= Self.loosePatchdRefsToPack else { return false }
        try packRefs(name)
        return true
    }

    /// `git pack-refs --all --prune` in `name`.
    package func packRefs(_ name: RepositoryName) throws(RefPackingError) {
        let r: (status: Int32, stdout: [UInt8], stderr: [UInt8])
        do {
            r = try runProcess(
                gitExecutable, ["pack-refs", "--all", "--prune"], environment: gitEnvironment(), workingDirectory: path(for: name))
        } catch {
            throw RefPackingError(description: "cannot run git pack-refs in '\(name)': \(error)")
        }
        guard r.status == 0 else {
            let why = Terminal.sanitize(String(decoding: r.stderr.prefix(300), as: UTF8.self)).trimmingCharacters(in: .whitespacesAndNewlines)
            throw RefPackingError(
                description:
                    "git pack-refs in '\(name)' failed (exit \(r.status)): \(why); the refs stay loose (correct, slower); "
                    + "a stale packed-refs.lock left by a crash is removed with: rm \(path(for: name))/packed-refs.lock")
        }
    }
}
