// GitStore: walking a commit's history (newest first), for finding the run a pushed tip continues.

import CLibGit2

extension GitRepository {
    /// `commit` (hex) and its ancestors, newest first (commit time, parents before children
    /// never), at most `limit`.
    /// - Throws: `GitError` with libgit2's message when `commit` is not a commit here.
    package func ancestors(of commit: String, limit: Int) throws(GitError) -> [String] {
        var walk: OpaquePointer?
        try git("start a history walk") { git_revwalk_new(&walk, raw) }
        defer { git_revwalk_free(walk) }
        git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_TIME.rawValue)
        var start = git_oid()
        try git("read commit id \(commit)") { git_oid_fromstr(&start, commit) }
        try git("walk from \(commit)") { git_revwalk_push(walk, &start) }
        var found: [String] = []
        var oid = git_oid()
        while found.count < limit, git_revwalk_next(&oid, walk) == 0 {
            found.append(String(cString: git_oid_tostr_s(&oid)))
        }
        return found
    }
}
