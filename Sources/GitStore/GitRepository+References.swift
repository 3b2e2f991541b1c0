// GitStore: reference bookkeeping for patchd's own refs: which existing refs block a new name, deleting one.

import CLibGit2

extension GitRepository {
    /// The existing references that make `name` impossible to create: git stores refs as files,
    /// so `refs/heads/agent/feat` blocks `refs/heads/agent/feat/x` and the other way round
    /// (a directory/file conflict). Sorted; empty when `name` can be created or already exists.
    /// Looks up only the names that can conflict (a repository may hold 100,000 run refs).
    package func referencesBlocking(_ name: String) throws(GitError) -> [String] {
        guard !exists(name) else { return [] }
        var blocking: [String] = []
        var prefix = ""
        for component in name.split(separator: "/").dropLast() {
            prefix += (prefix.isEmpty ? "" : "/") + component
            if exists(prefix) { blocking.append(prefix) }
        }
        blocking += try referenceNames(below: name)
        return blocking.sorted()
    }

    /// Whether the reference `name` exists (its target need not).
    func exists(_ name: String) -> Bool {
        var ref: OpaquePointer?
        guard git_reference_lookup(&ref, raw, name) == 0 else { return false }
        git_reference_free(ref)
        return true
    }

    /// The references under `name/` (libgit2 walks only that directory of loose refs).
    func referenceNames(below name: String) throws(GitError) -> [String] {
        var iterator: OpaquePointer?
        try git("list references below \(name)") { git_reference_iterator_glob_new(&iterator, raw, name + "/*") }
        defer { git_reference_iterator_free(iterator) }
        var names: [String] = []
        var next: UnsafePointer<CChar>?
        while true {
            let rc = git_reference_next_name(&next, iterator)
            if rc == GIT_ITEROVER.rawValue { break }
            try git("list references below \(name)") { rc }
            // A glob character in `name` cannot widen the match: git forbids them in ref names.
            if let next, case let found = String(cString: next), found.hasPrefix(name + "/") { names.append(found) }
        }
        return names
    }

    /// Deletes the reference `name`. - Throws: `GitError` when it does not exist or cannot be removed.
    package func deleteReference(_ name: String) throws(GitError) {
        var ref: OpaquePointer?
        try git("look up \(name)") { git_reference_lookup(&ref, raw, name) }
        defer { git_reference_free(ref) }
        try git("delete \(name)") { git_reference_delete(ref) }
    }
}
