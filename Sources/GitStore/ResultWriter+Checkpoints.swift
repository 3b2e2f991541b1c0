// GitStore: what checkpoints and resumed runs need of the result writer: a commit's tree, a ref's target when it exists.
import CLibGit2
import PatchdSystem

extension ResultWriter {
    /// The tree of `commit` (hex).
    package func tree(ofCommit commit: String) throws(GitError) -> String {
        var oid = try Self.oid(commit)
        var object: OpaquePointer?
        try git("lookup commit \(commit.prefix(12))") { git_commit_lookup(&object, repo.raw, &oid) }
        defer { git_commit_free(object) }
        var tree = git_commit_tree_id(object).pointee
        return Self.hex(&tree)
    }

    /// The commit `name` points at, or nil when there is no such reference.
    package func reference(_ name: String) -> String? {
        try? repo.resolve(name)
    }
}
