// UnitTests: best of N: the winner rule, queueing a group, claiming attempts side by side, deciding once, -o attempts=N.

import Foundation
import TestSupport
import Testing

@testable import PatchdCore
@testable import Runs

@Suite struct AttemptGroupTests {
    func makeStore() throws -> (RunStore, String) {
        let dir = NSTemporaryDirectory() + "/patchd-unit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (RunStore(db: try PatchdDatabase(path: dir + "/db.sqlite")), dir)
    }

    func newRun(branch: String = "feat", check: String? = nil) -> RunStore.NewRun {
        var spec = TaskSpec(agent: .builtin, body: "Do it")
        spec.check = check
        return .init(
            repo: "r", branch: branch, base: String(repeating: "a", count: 40), agent: .builtin, spec: spec, source: "file",
            requestedBy: nil)
    }

    /// An attempt as the rule sees it once finished.
    func attempt(
        _ id: Int64, _ status: RunStatus, check: String? = nil, lines: Int? = nil, finished: Double? = nil, result: Bool = true
    ) -> RunRecord {
        var run = RunRecord(
            id: id, repo: "r", branch: "feat", base: "b", status: status, agent: "command", model: nil, title: "", spec: "{}",
            taskSource: "file", requestedBy: nil, result: result && status != .queued ? "c\(id)" : nil, changed: nil, checkStatus: check,
            limitHit: nil, error: nil, summary: nil, attempts: 1, inputTokens: 0, outputTokens: 0, costUSD: 0, createdAt: Date(),
            startedAt: nil, finishedAt: finished.map { Date(timeIntervalSince1970: $0) })
        run.attemptGroup = 1
        run.attemptNumber = Int(id)
        run.attemptOf = 3
        run.diffLines = lines
        return run
    }

    // MARK: the rule

    @Test func withCheckOnlyThePassingAttemptWins() {
        let attempts = [
            attempt(1, .failed, check: "failed", lines: 1, finished: 1), attempt(2, .succeeded, check: "passed", lines: 9, finished: 3),
            attempt(3, .failed, check: "failed", lines: 2, finished: 2),
        ]
        let decision = AttemptRule.decide(attempts, hasCheck: true, cancelRest: false)
        #expect(decision == .init(winner: 2, reason: "the only attempt whose check passed (9 lines)"))
    }

    @Test func withCheckTheGroupWaitsForEveryAttempt() {
        let attempts = [attempt(1, .succeeded, check: "passed", lines: 4, finished: 1), attempt(2, .running), attempt(3, .queued)]
        #expect(AttemptRule.decide(attempts, hasCheck: true, cancelRest: false) == nil)
        // With attempts_cancel_rest the first to pass wins at once.
        let now = AttemptRule.decide(attempts, hasCheck: true, cancelRest: true)
        #expect(now?.winner == 1)
        #expect(now?.reason == "first to pass its check (4 lines); the unfinished attempts are canceled (attempts_cancel_rest)")
    }

    @Test func severalPassTheSmallestDiffWinsTiesToTheFirstFinished() {
        let attempts = [
            attempt(1, .succeeded, check: "passed", lines: 12, finished: 1), attempt(2, .succeeded, check: "passed", lines: 3, finished: 5),
            attempt(3, .succeeded, check: "passed", lines: 3, finished: 4),
        ]
        let decision = AttemptRule.decide(attempts, hasCheck: true, cancelRest: false)
        #expect(decision?.winner == 3)
        #expect(decision?.reason == "check passed, smallest diff (3 lines) of the 3 that passed, finished first of the 2 that size")
    }

    @Test func noneWinsAndEachOutcomeIsNamed() {
        let attempts = [
            attempt(1, .failed, check: "failed", finished: 1), attempt(2, .canceled, finished: 2),
            attempt(3, .succeeded, check: "passed", finished: 3, result: false),
        ]
        let decision = AttemptRule.decide(attempts, hasCheck: true, cancelRest: false)
        #expect(decision?.winner == nil)
        #expect(decision?.reason == "no attempt passed its check (1: check failed; 2: canceled; 3: succeeded without changes)")
    }

    @Test func withoutCheckTheFirstSuccessWinsAtOnce() {
        let attempts = [
            attempt(1, .running), attempt(2, .succeeded, lines: 50, finished: 2), attempt(3, .succeeded, lines: 1, finished: 1, result: false),
        ]
        let decision = AttemptRule.decide(attempts, hasCheck: false, cancelRest: false)
        #expect(decision == .init(winner: 2, reason: "first to succeed (50 lines)"))
        #expect(AttemptRule.decide([attempt(1, .failed, finished: 1), attempt(2, .running)], hasCheck: false, cancelRest: false) == nil)
    }

    // MARK: the store

    @Test func planCapsAndSpreadsModels() {
        var spec = TaskSpec(body: "x")
        spec.attempts = 6
        spec.models = ["a", "b"]
        let plan = RunStore.AttemptPlan(spec: spec, option: nil, cap: 4)
        #expect(plan.count == 4 && plan.requested == 6 && plan.capped)
        #expect((1...4).map { plan.model(of: $0) } == ["a", "b", "a", "b"])
        #expect(plan.capNote == "attempts: 6 asked for, 4 run: the server runs at most 4 (its max_attempts)")
        #expect(RunStore.AttemptPlan(spec: spec, option: 2, cap: 4).count == 2, "the push option wins over the task")
        spec.attempts = nil
        #expect(RunStore.AttemptPlan(spec: spec, option: nil, cap: 4).count == 2, "models alone: one attempt per model")
        #expect(RunStore.AttemptPlan(spec: TaskSpec(body: "x"), option: nil, cap: 4).count == 1)
    }

    @Test func attemptsOfOneGroupAreClaimedSideBySideOthersStillWait() throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let earlier = try store.enqueue(newRun())
        var new = newRun()
        new.spec.models = ["m1", "m2"]
        let group = try store.enqueue(new, plan: RunStore.AttemptPlan(spec: new.spec, option: 3, cap: 4))
        let later = try store.enqueue(newRun())
        #expect(group.map(\.attemptNumber) == [1, 2, 3])
        #expect(group.allSatisfy { $0.attemptGroup == group[0].id && $0.attemptOf == 3 })
        #expect(group.map(\.model) == ["m1", "m2", "m1"])
        #expect(group.compactMap(\.taskSpec?.model) == ["m1", "m2", "m1"])

        #expect(try store.claimNext()?.id == earlier.id)
        #expect(try store.claimNext() == nil, "the group waits for the branch's earlier run")
        var done = try store.run(id: earlier.id!)!
        done.status = .succeeded
        try store.update(done)
        #expect(try store.claimNext()?.id == group[0].id)
        #expect(try store.claimNext()?.id == group[1].id, "attempt 2 does not wait for attempt 1")
        #expect(try store.claimNext()?.id == group[2].id)
        #expect(try store.claimNext() == nil, "a later run waits for the whole group")
        for run in group {
            var finished = try store.run(id: run.id!)!
            finished.status = .failed
            try store.update(finished)
        }
        #expect(try store.claimNext()?.id == later.id)
    }

    @Test func aGroupIsDecidedOnceUnderTheLock() throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = try store.enqueue(newRun(check: "true"), plan: RunStore.AttemptPlan(spec: TaskSpec(body: "x"), option: 3, cap: 4))
        let id = group[0].id!
        for (index, run) in group.enumerated() {
            var finished = try store.run(id: run.id!)!
            finished.status = index == 1 ? .succeeded : .failed
            finished.checkStatus = index == 1 ? "passed" : "failed"
            finished.result = "c\(index)"
            finished.diffLines = 2
            finished.finishedAt = Date()
            try store.update(finished)
        }
        // Many deciders at once: exactly one applies the decision.
        let applied = LockedCollector<Int>()
        DispatchQueue.concurrentPerform(iterations: 8) { caller in
            _ = try? store.decideAttempts(group: id, cancelRest: false) { _, _ in
                applied.append(caller)
                return nil
            }
        }
        #expect(applied.all.count == 1)
        let records = try store.attempts(inGroup: id)
        #expect(records.allSatisfy { $0.attemptWinner == group[1].id && $0.attemptReason == "the only attempt whose check passed (2 lines)" })
        #expect(try store.undecidedAttemptGroups().isEmpty)
        // An attempt's executor stores the copy it held before the decision: the decision stays.
        var stale = group[2]
        stale.status = .failed
        try store.update(stale)
        #expect(try store.run(id: group[2].id!)?.attemptWinner == group[1].id)
        #expect(try store.run(id: group[2].id!)?.attemptReason != nil)
        let json: String = try RunJSON.encode(RunJSON(records[0]))
        #expect(json.contains(#""attempt" : {"#) && json.contains(#""of" : 3"#) && json.contains(#""winner" : \#(group[1].id!)"#))
        let single: String = try RunJSON.encode(RunJSON(try store.enqueue(newRun(branch: "single"))))
        #expect(single.contains(#""attempt" : null"#))
    }

    @Test func cancelRestCancelsQueuedAttemptsAndNamesRunningOnes() throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = try store.enqueue(newRun(check: "true"), plan: RunStore.AttemptPlan(spec: TaskSpec(body: "x"), option: 3, cap: 4))
        _ = try store.claimNext()
        _ = try store.claimNext()
        var first = try store.run(id: group[0].id!)!
        first.status = .succeeded
        first.checkStatus = "passed"
        first.result = "c"
        first.finishedAt = Date()
        try store.update(first)
        #expect(try store.undecidedAttemptGroups() == [group[0].id!])
        let decided = try store.decideAttempts(group: group[0].id!, cancelRest: true) { _, _ in nil }
        #expect(decided?.decision.winner == group[0].id)
        #expect(try store.run(id: group[2].id!)?.status == .canceled)
        #expect(try store.run(id: group[2].id!)?.error?.contains("attempt 1 (run \(group[0].id!)) already won") == true)
        #expect(try store.attemptsToStop() == [group[1].id!])
    }

    @Test func pushOptionAttempts() throws {
        #expect(try PushOptions(options: ["attempts=3", "wait"]).attempts == 3)
        for bad in ["attempts=0", "attempts=65", "attempts=", "attempts=3x", "attempts=-1", "attempts=0003", "attempts=+2"] {
            #expect(throws: PushOptions.Invalid.self, "\(bad)") { try PushOptions(options: [bad]) }
        }
        #expect(throws: PushOptions.Invalid(description: "push option attempts= given twice; give it once")) {
            try PushOptions(options: ["attempts=2", "attempts=3"])
        }
        do {
            _ = try PushOptions(options: ["attempts=lots"])
        } catch {
            #expect(error.description == "push option attempts='lots' must be a whole number from 1 to 64, like -o attempts=3")
        }
    }
}
