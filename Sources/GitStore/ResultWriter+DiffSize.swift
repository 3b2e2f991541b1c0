// GitStore: a result's size against its base in lines added + removed (best of N picks the smallest).
import CLibGit2

extension ResultWriter {
    /// Lines added plus lines removed between two commits' trees, as `git diff --shortstat`
    /// counts them (a binary file counts no lines). Computed with libgit2 in the bare repository.
    package func changedLines(from base: String, to result: String) throws(GitError) -> Int {
        var oids = [try Self.oid(base), try Self.oid(result)]
        var commits: [OpaquePointer?] = [nil, nil]
        var trees: [OpaquePointer?] = [nil, nil]
        defer {
            for tree in trees { git_tree_free(tree) }
            for commit in commits { git_commit_free(commit) }
        }
        for i in 0..<2 {
            try git("lookup commit \(i == 0 ? base : result)") { git_commit_lookup(&commits[i], repo.raw, &oids[i]) }
            try git("read the tree of \(i == 0 ? base : result)") { git_commit_tree(&trees[i], commits[i]) }
        }
        var diff: OpaquePointer?
        try git("diff base and result") { git_diff_tree_to_tree(&diff, repo.raw, trees[0], trees[1], nil) }
        defer { git_diff_free(diff) }
        var stats: OpaquePointer?
        try git("count the changed lines") { git_diff_get_stats(&stats, diff) }
        defer { git_diff_stats_free(stats) }
        return git_diff_stats_insertions(stats) + git_diff_stats_deletions(stats)
    }
}
