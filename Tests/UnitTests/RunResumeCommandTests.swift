// UnitTests: `run resume`: which runs it continues, and the linked run it queues (budgets, start, instructions).

import Foundation
import PatchdCore
import Testing

@testable import PatchdCommands

@Suite struct RunResumeCommandTests {
    @Test("resume queues a new run linked to the old one, on its branch and base, from its result, with the new budgets and instructions")
    func queuesLinkedRun() throws {
        let h = try CommandHarness()
        let olive = try h.user("olive")
        try h.repo("proj", owner: olive)
        var old = try h.queueRun("proj", status: .failed, agent: .builtin)
        old.limitHit = "turns"
        old.result = try h.head("proj")
        try h.services.runs.update(old)

        let r = h.run(
            ["run", "resume", "\(old.id!)", "--max-turns", "5", "--max-cost-usd", "1.5", "--timeout", "20m", "--", "also", "add", "tests"], as: olive)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("run 2 queued (resumes run 1 from "), "\(r.stdout)")
        let new = try #require(try h.services.runs.run(id: 2))
        #expect(new.resumedFrom == 1)
        #expect(new.status == .queued && new.branch == old.branch && new.base == old.base && new.agent == "builtin")
        #expect(new.startCommit == old.result)
        #expect(new.resumeInstructions == "also add tests")
        #expect(new.taskSource == "resume")
        let spec = try #require(new.taskSpec)
        #expect(spec.maxTurns == 5 && spec.maxCostUSD == 1.5 && spec.timeoutSeconds == 1200)
        #expect(spec.body == "Do the thing.", "the builtin agent gets the instructions as a message, not in the task")
        #expect(h.wakes.value == 1)

        let json = h.run(["run", "show", "2", "--json"], as: olive)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["resumed_from"] as? Int == 1)
        #expect(object?.keys.contains("checkpoint_ref") == true)
    }

    @Test("resume refuses a run that succeeded, is still queued, or used the command agent, and bad budgets")
    func refusals() throws {
        let h = try CommandHarness()
        let olive = try h.user("olive")
        try h.repo("proj", owner: olive)
        try h.queueRun("proj", status: .succeeded, agent: .builtin)
        try h.queueRun("proj", status: .queued, agent: .builtin)
        try h.queueRun("proj", status: .failed)
        try h.queueRun("proj", status: .failed, agent: .builtin)
        var r = h.run(["run", "resume", "1"], as: olive)
        #expect(r.status == 1 && r.stderr.contains("cannot be resumed: it succeeded"), "\(r.stderr)")
        r = h.run(["run", "resume", "2"], as: olive)
        #expect(r.status == 1 && r.stderr.contains("cannot be resumed: it is queued"), "\(r.stderr)")
        r = h.run(["run", "resume", "3"], as: olive)
        #expect(r.status == 1 && r.stderr.contains("use run retry 3"), "\(r.stderr)")
        for bad in [["--max-turns", "0"], ["--max-cost-usd", "-1"], ["--timeout", "soon"]] {
            r = h.run(["run", "resume", "4"] + bad, as: olive)
            #expect(r.status == 2, "\(bad): \(r.stderr)")
        }
        #expect(try h.services.runs.list().count == 4, "nothing was queued")
    }
}
