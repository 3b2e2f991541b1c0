// PatchdCore: the names of the refs patchd writes (results, run refs, notes), in one place.

/// patchd's own refs in every repository. Nobody but patchd writes them; receive-pack hides
/// them (`receive.hideRefs`), so a `git push --mirror` neither deletes nor overwrites them.
package enum PatchdRefs {
    /// Where `git fetch origin agent/BRANCH` finds the latest successful result of BRANCH.
    package static func agentBranch(_ branch: String) -> String { "refs/heads/agent/" + branch }
    /// Every run's result (partial work included), kept for good: `refs/patchd/runs/ID`.
    package static func run(_ id: Int64) -> String { "refs/patchd/runs/\(id)" }
    /// A run's checkpoints while its agent works (`refs/patchd/checkpoints/ID`): a chain of commits,
    /// each the workspace after a turn that changed files, its parent the previous one (the first's:
    /// the pushed base, or the commit a resumed run started from). Kept apart from the run's result,
    /// which stays one commit on the base, so agent/BRANCH never carries work-in-progress commits.
    package static func checkpoints(_ id: Int64) -> String { "refs/patchd/checkpoints/\(id)" }
    /// The run records and transcripts, as git notes on the result commits.
    package static let notes = "refs/notes/patchd"
    /// Hidden from receive-pack; a ref equal to one of these or below it (`PREFIX/...`) is patchd's.
    /// (git's own rule for `receive.hideRefs`: the name itself or the name followed by a slash.)
    package static let hidden = ["refs/heads/agent", "refs/patchd", "refs/notes/patchd"]

    /// Whether `ref` (a full name, `refs/...`) is one patchd writes.
    package static func isReserved(_ ref: String) -> Bool {
        hidden.contains { ref == $0 || ref.hasPrefix($0 + "/") }
    }

    package static let branchPrefix = "refs/heads/"
}
