// GitStore: the result as the agent's changes only: what changed between the snapshot after setup and the one after the agent, applied to the pushed tree; exclude rules for caches.
import CLibGit2
import PatchdSystem

extension ResultWriter {
    /// Adds `.gitignore`-syntax rules that keep untracked paths out of the next `snapshot`s of
    /// this writer (tracked files are never excluded: the snapshot applies ignore rules to
    /// untracked paths only). They take precedence over the workspace's own `.gitignore`.
    package func addExcludeRules(_ patterns: [String]) throws(GitError) {
        let rules = patterns.filter { !$0.isEmpty && !$0.contains("\n") && !$0.contains("\0") }
        guard !rules.isEmpty else { return }
        try git("add exclude rules") { git_ignore_add_rule(repo.raw, rules.joined(separator: "\n")) }
    }

    /// The tree of `baseCommit` with the changes from `before` to `after` applied: a path whose
    /// entry (blob id and mode) is the same in both keeps its pushed version (or stays absent);
    /// a path that differs gets its `after` entry; one `after` lacks is removed. So what setup
    /// wrote, and the agent did not touch, is not in the result. Returns the tree and whether
    /// it differs from the pushed one.
    package func applyChanges(
        from before: String, to after: String, onto baseCommit: String
    ) throws(GitError)
        -> (tree: String, changed: Bool)
    {
        var baseOID = try Self.oid(baseCommit)
        var commit: OpaquePointer?
        try git("lookup base commit \(baseCommit)") { git_commit_lookup(&commit, repo.raw, &baseOID) }
        defer { git_commit_free(commit) }
        var baseTreeOID = git_commit_tree_id(commit).pointee
        var trees: [OpaquePointer?] = [nil, nil, nil]
        defer { for tree in trees { git_tree_free(tree) } }
        var beforeOID = try Self.oid(before), afterOID = try Self.oid(after)
        try git("lookup base tree") { git_tree_lookup(&trees[0], repo.raw, &baseTreeOID) }
        try git("lookup tree after setup") { git_tree_lookup(&trees[1], repo.raw, &beforeOID) }
        try git("lookup tree after the agent") { git_tree_lookup(&trees[2], repo.raw, &afterOID) }
        var diff: OpaquePointer?
        try git("diff the snapshots") { git_diff_tree_to_tree(&diff, repo.raw, trees[1], trees[2], nil) }
        defer { git_diff_free(diff) }
        var index: OpaquePointer?
        try git("in-memory index") { git_index_new(&index) }
        defer { git_index_free(index) }
        try git("read the pushed tree") { git_index_read_tree(index, trees[0]) }
        let count = git_diff_num_deltas(diff)
        // Removals first, so a file replaced by a directory (or the other way round) fits.
        for pass in 0..<2 {
            for i in 0..<count {
                guard let delta = git_diff_get_delta(diff, i)?.pointee else { continue }
                if pass == 0, delta.status == GIT_DELTA_DELETED || delta.status == GIT_DELTA_TYPECHANGE, let path = delta.old_file.path {
                    let rc = git_index_remove(index, path, 0)
                    if rc != 0 && rc != GIT_ENOTFOUND.rawValue { try git("remove \(String(cString: path))") { rc } }
                }
                if pass == 1, delta.status != GIT_DELTA_DELETED, let path = delta.new_file.path {
                    var entry = git_index_entry()
                    entry.mode = UInt32(delta.new_file.mode)
                    entry.id = delta.new_file.id
                    entry.path = path
                    try git("add \(String(cString: path))") { git_index_add(index, &entry) }
                }
            }
        }
        var tree = git_oid()
        try git("write the result tree") { git_index_write_tree_to(&tree, index, repo.raw) }
        let changed = git_oid_equal(&tree, &baseTreeOID) == 0
        return (Self.hex(&tree), changed)
    }
}
