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
    /// Not advertised to a fetch that does not speak protocol v2 (`uploadpack.hideRefs`): a v0/v1
    /// upload-pack sends every ref it shows on each fetch, and a repository gains one run ref per
    /// run (100,000 runs: 6.4 MB per fetch). A v2 client asks only for the prefixes it fetches
    /// (`ls-refs` with `ref-prefix`), so it sees them all and `git fetch origin refs/patchd/runs/ID`
    /// works; a v0 client fetches a run by its commit id (`uploadpack.allowTipSHA1InWant`).
    /// `agent/*` and the single notes ref stay advertised: users fetch them by name.
    package static let hiddenFromV0Fetch = [runsRoot]
    /// Where the run refs (and later checkpoints and attempts) live; patchd packs them when
    /// enough are loose (`RepositoryStore.packRefsIfMany`).
    package static let runsRoot = "refs/patchd"

    /// The refs receive-pack's connectivity check reads from the repository as the push
    /// quarantine's alternate (`core.alternateRefsPrefixes`, space-separated): not `refs/patchd`.
    package static let alternateRefsPrefixes = "refs/heads/ refs/tags/"

    /// Whether a client's `GIT_PROTOCOL` (colon-separated `key=value` items) asks for protocol v2,
    /// by git's own rule (`determine_protocol_version_server`): an item `version=2`.
    package static func speaksV2(gitProtocol: String?) -> Bool {
        (gitProtocol ?? "").split(separator: ":").contains("version=2")
    }

    /// Whether `ref` (a full name, `refs/...`) is one patchd writes.
    package static func isReserved(_ ref: String) -> Bool {
        hidden.contains { ref == $0 || ref.hasPrefix($0 + "/") }
    }

    package static let branchPrefix = "refs/heads/"
}
