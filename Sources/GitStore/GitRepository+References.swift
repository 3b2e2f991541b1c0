// GitStore: reference bookkeeping for patchd's own refs: which existing refs block a new name, deleting one.

import CLibGit2

extension GitRepository {
    /// The existing references that make `name` impossible to create: git stores refs as files,
    /// so `refs/heads/agent/feat` blocks `refs/heads/agent/feat/x` and the other way round
    /// (a directory/file conflict). Sorted; empty when `name` can be created or already exists.
    package func referencesBlocking(_ name: String) throws(GitError) -> [String] {
        let existing = Set(try referenceNames())
        guard !existing.contains(name) else { return [] }
        var blocking: [String] = []
        var prefix = ""
        for component in name.split(separator: "/").dropLast() {
            prefix += (prefix.isEmpty ? "" : "/") + component
            if existing.contains(prefix) { blocking.append(prefix) }
        }
        blocking += existing.filter { $0.hasPrefix(name + "/") }
        return blocking.sorted()
    }

    /// Deletes the reference `name`. - Throws: `GitError` when it does not exist or cannot be removed.
    package func deleteReference(_ name: String) throws(GitError) {
        var ref: OpaquePointer?
        try git("look up \(name)") { git_reference_lookup(&ref, raw, name) }
        defer { git_reference_free(ref) }
        try git("delete \(name)") { git_reference_delete(ref) }
    }
}
