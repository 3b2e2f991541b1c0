// Runs: checkpoints while an agent works: the workspace as a commit on refs/patchd/checkpoints/ID after each turn that changed files, with the agent's conversation.

import Agents
import Foundation
import GitStore
import PatchdCore
import PatchdSystem
import Synchronization

/// Takes the workspace as trees in the bare repository, the same way for checkpoints and for the
/// result: the snapshot (only changed files re-read, thanks to the baseline), and the agent's work
/// (with a setup, the change since the snapshot after setup, applied to the tree the run started
/// from, so setup's writes stay out).
struct WorkspaceTaker: Sendable {
    let barePath: String
    let workspace: String
    /// The pushed commit: `changed` is against its tree.
    let base: String
    /// The commit whose tree the workspace started from (`base`, or a resumed run's checkpoint).
    let start: String
    let excludes: [String]
    let maxFileBytes: Int64
    let baseline: WorkspaceBaseline?

    /// The workspace's files as a tree (untracked caches excluded), written into the bare repository.
    func snapshot() throws -> RunExecutor.TakenResult {
        let writer = try ResultWriter(bareRepository: barePath)
        try writer.addExcludeRules(excludes)
        let s = try writer.snapshot(workspace: workspace, baseCommit: base, maxFileBytes: maxFileBytes, baseline: baseline)
        return RunExecutor.TakenResult(tree: s.tree, changed: s.changed, notes: s.notes)
    }

    /// The agent's work as the result tree: the snapshot, or with `afterSetup` the change from it
    /// applied onto the start.
    func agentWork(afterSetup: String?) throws -> RunExecutor.TakenResult {
        try agentWork(of: snapshot(), afterSetup: afterSetup)
    }

    /// The agent's work in a snapshot already taken.
    func agentWork(of snapshot: RunExecutor.TakenResult, afterSetup: String?) throws -> RunExecutor.TakenResult {
        var result = snapshot
        guard let afterSetup else { return result }
        let writer = try ResultWriter(bareRepository: barePath)
        result.tree = try writer.applyChanges(from: afterSetup, to: result.tree, onto: start).tree
        result.changed = try result.tree != writer.tree(ofCommit: base)
        return result
    }
}

/// The executor's `AgentCheckpointer` for one run. Each checkpoint is an ordinary commit whose
/// parent is the previous checkpoint (the ref's tip, so a commit written just before a crash is
/// never dropped from the chain), the first's the commit the run started from.
final class RunCheckpointer: AgentCheckpointer {
    private let runs: RunStore
    private let runID: Int64
    private let taker: WorkspaceTaker
    private let identity: GitIdentity
    private let log: @Sendable (RunEvent) -> Void
    /// Takes the server's paths out of error texts before they reach the run log.
    private let scrub: @Sendable (String) -> String
    private let state: Mutex<State>

    private struct State {
        /// Set once setup succeeded: checkpoints hold the agent's work only, as the result does.
        var afterSetup: String?
        var lastTree: String?
        /// The workspace's own tree at the last save: when it has not moved, the turn changed nothing
        /// (and the agent-only tree need not be computed again).
        var lastSnapshot: String?
        var lastCommit: String?
        var failed = false
    }

    /// - Parameter lastCommit: the run's own latest checkpoint (a run resumed after a crash).
    init(
        runs: RunStore, runID: Int64, taker: WorkspaceTaker, lastCommit: String?, identity: GitIdentity,
        scrub: @escaping @Sendable (String) -> String, log: @escaping @Sendable (RunEvent) -> Void
    ) {
        self.scrub = scrub
        self.runs = runs
        self.runID = runID
        self.taker = taker
        self.identity = identity
        self.log = log
        // A turn that leaves the workspace as the run found it adds no checkpoint.
        let startTree = try? ResultWriter(bareRepository: taker.barePath).tree(ofCommit: taker.start)
        state = Mutex(State(lastTree: startTree, lastCommit: lastCommit))
    }

    func setAfterSetup(_ tree: String?) { state.withLock { $0.afterSetup = tree } }

    func save(conversation: Data?, turns: Int, workspace: Bool) {
        var (afterSetup, lastTree, lastSnapshot, commit) = state.withLock { ($0.afterSetup, $0.lastTree, $0.lastSnapshot, $0.lastCommit) }
        let started = MonotonicClock.now
        var made: String?
        if workspace {
            do {
                let raw = try taker.snapshot()
                let tree = raw.tree == lastSnapshot ? lastTree : try taker.agentWork(of: raw, afterSetup: afterSetup).tree
                lastSnapshot = raw.tree
                if let tree, tree != lastTree {
                    let writer = try ResultWriter(bareRepository: taker.barePath)
                    let ref = PatchdRefs.checkpoints(runID)
                    let parent = writer.reference(ref) ?? taker.start
                    let message = "patchd checkpoint: run \(runID), turn \(turns)\n\nPatchd-Run: \(runID)\nPatchd-Checkpoint: \(turns)\n"
                    let new = try writer.commit(tree: tree, parent: parent, message: message, identity: identity)
                    try writer.setReference(ref, to: new, log: "patchd: run \(runID) checkpoint")
                    made = new
                    commit = new
                    lastTree = tree
                }
            } catch {
                // Said once: the run goes on; a crash would lose the turns since the last checkpoint.
                let first = state.withLock { s in
                    defer { s.failed = true }
                    return !s.failed
                }
                if first { log(RunEvent(.info, "checkpoint failed (the run goes on without it): \(scrub("\(error)"))")) }
            }
        }
        state.withLock {
            $0.lastTree = lastTree
            $0.lastSnapshot = lastSnapshot
            $0.lastCommit = commit
        }
        do {
            try runs.saveCheckpoint(runID: runID, commit: commit, turns: turns, conversation: conversation)
        } catch {
            log(RunEvent(.info, "the conversation could not be saved (the run goes on): \(scrub("\(error)"))"))
        }
        if let made {
            // The whole cost of the turn's checkpoint: snapshot, commit, ref, conversation (bench/checkpoints.sh reads it).
            let ms = Int((MonotonicClock.now - started) * 1000)
            log(RunEvent(.info, "checkpoint after turn \(turns): \(made.prefix(12)) on \(PatchdRefs.checkpoints(runID)) (\(ms) ms)"))
        }
    }
}
