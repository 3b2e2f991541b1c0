// Runs: best of N: settles a group of attempts (AttemptRule), moves agent/BRANCH to the winner, rewrites the notes.

import Foundation
import GitStore
import Logging
import PatchdCore
import Synchronization

extension RunExecutor {
    /// Decides `group` if it can be decided now (called after each attempt's record is stored,
    /// and by the scheduler's sweep). The decision and the move of agent/BRANCH happen under the
    /// database's write lock, so exactly one caller applies it. Never throws: a failure is logged
    /// and the sweep tries again.
    func settleAttempts(group: Int64) {
        let decided: (decision: AttemptRule.Decision, attempts: [RunRecord])?
        // What moving the branch says goes to the winner's log after the lock: the store is not reentrant.
        let moveEvents = Mutex<[RunEvent]>([])
        do {
            decided = try env.runs.decideAttempts(group: group, cancelRest: env.attemptsCancelRest) { decision, attempts in
                guard let winnerID = decision.winner, let winner = attempts.first(where: { $0.id == winnerID }),
                    let commit = winner.result
                else { return nil }
                do {
                    let name = try RepositoryName(winner.repo)
                    try moveAgentBranch(
                        winner.branch, to: commit, repository: name, runID: winnerID,
                        log: { event in moveEvents.withLock { $0.append(event) } })
                    return "agent/\(winner.branch) is \(commit.prefix(12))"
                } catch {
                    return "agent/\(winner.branch) could not be moved: \(env.layout.scrub("\(error)")) (the result is on \(PatchdRefs.run(winnerID)))"
                }
            }
        } catch {
            env.logger.error("Cannot settle attempt group \(group): \(error); the scheduler tries again")
            return
        }
        guard let decided else { return }
        if let winner = decided.decision.winner { env.runs.addEvents(runID: winner, moveEvents.withLock { $0 }) }
        env.logger.info("Attempt group \(group) decided: \(decided.decision.winner.map { "run \($0) won" } ?? "none won")")
        rewriteNotes(decided.attempts)
    }

    /// Each attempt's note was written before the group was decided: it is written again from
    /// the final record, so the note names the winner too. A failure loses nothing (the record has it).
    private func rewriteNotes(_ attempts: [RunRecord]) {
        guard let first = attempts.first, let name = try? RepositoryName(first.repo),
            let writer = try? ResultWriter(bareRepository: env.repositories.path(for: name))
        else { return }
        let identity = GitIdentity(name: "patchd", email: "patchd@\(env.hostName)")
        for run in attempts {
            guard let result = run.result, let id = run.id else { continue }
            let json = (try? RunJSON.encode(RunJSON(run))) ?? "{}"
            let events = (try? env.runs.events(runID: id)) ?? []
            let transcript = events.map { "[\($0.kind)] \($0.text)" }.joined(separator: "\n")
            let text = json + "\n\n--- transcript ---\n" + String(transcript.suffix(512 * 1024)) + "\n"
            try? writer.addNote(to: result, text: text, notesRef: PatchdRefs.notes, identity: identity)
        }
    }

    /// The scheduler's sweep: settles groups that have finished attempts and no decision (a queued
    /// attempt canceled, a crash between an attempt's end and the decision), and returns the running
    /// attempts to stop because another attempt won (only with `attempts_cancel_rest`).
    func sweepAttemptGroups() -> [Int64] {
        for group in (try? env.runs.undecidedAttemptGroups()) ?? [] { settleAttempts(group: group) }
        guard env.attemptsCancelRest else { return [] }
        return (try? env.runs.attemptsToStop()) ?? []
    }
}
