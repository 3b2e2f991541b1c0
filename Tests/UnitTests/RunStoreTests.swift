// UnitTests: the run queue in a real SQLite database: claim order, crash recovery, the follower's heartbeat.

import Foundation
import TestSupport
import Testing

@testable import PatchdCore
@testable import PatchdServer
@testable import Runs

@Suite struct RunStoreTests {
    func makeStore() throws -> (RunStore, String) {
        let dir = NSTemporaryDirectory() + "/patchd-unit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (RunStore(db: try PatchdDatabase(path: dir + "/db.sqlite")), dir)
    }

    func enqueue(_ store: RunStore, branch: String) throws -> RunRecord {
        var spec = TaskSpec(body: "")
        spec.run = "true"
        return try store.enqueue(
            .init(
                repo: "r", branch: branch, base: String(repeating: "a", count: 40), agent: .command,
                spec: spec, source: "file", requestedBy: nil))
    }

    @Test func claimOrderPerBranch() throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a1 = try enqueue(store, branch: "a"), a2 = try enqueue(store, branch: "a"), b1 = try enqueue(store, branch: "b")
        #expect(try store.claimNext()?.id == a1.id)
        #expect(try store.claimNext()?.id == b1.id, "a2 must wait for a1; b1 may run")
        #expect(try store.claimNext() == nil)
        var first = try store.run(id: a1.id!)!
        first.status = .succeeded
        try store.update(first)
        #expect(try store.claimNext()?.id == a2.id)
    }

    @Test func crashRecoveryRequeuesOnceThenFails() throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try enqueue(store, branch: "x")
        _ = try store.claimNext()  // attempt 1, then a crash
        #expect(try store.recoverInterrupted().requeued == [run.id!])
        #expect(try store.run(id: run.id!)?.status == .queued)
        _ = try store.claimNext()  // attempt 2, then another crash
        #expect(try store.recoverInterrupted().failed == [run.id!])
        let failed = try store.run(id: run.id!)!
        #expect(failed.status == .failed)
        #expect(failed.error?.contains("the server stopped during this run 2 times") == true)
    }

    @Test func followerHeartbeatAndEnd() throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try enqueue(store, branch: "h")
        var follower = RunFollower(runs: store)
        follower.heartbeat = 0.2
        let lines = LockedCollector<String>()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.7) {
            var done = try! store.run(id: run.id!)!
            store.addEvent(runID: run.id!, RunEvent(.output, "hello from the run"))
            done.status = .succeeded
            try! store.update(done)
        }
        let final = follower.follow(runID: run.id!) {
            lines.append($0); return true
        }
        #expect(final?.status == .succeeded)
        let all = lines.all
        #expect(all.contains { $0.contains("run \(run.id!) queued") && $0.contains("so far") }, "no heartbeat in \(all)")
        #expect(all.contains("  hello from the run"))
    }

    @Test func pushOptions() throws {
        #expect(
            try PushOptions(options: ["run", "wait"])
                == {
                    var o = PushOptions(); o.run = true; o.wait = true; return o
                }())
        #expect(try PushOptions(options: ["task=fix it; and more"]).task == "fix it; and more")
        #expect(throws: PushOptions.Invalid.self) { try PushOptions(options: ["wiat"]) }
        #expect(throws: PushOptions.Invalid.self) { try PushOptions(options: ["task=a", "task=b"]) }
        #expect(throws: PushOptions.Invalid.self) {
            try PushOptions(environment: ["GIT_PUSH_OPTION_COUNT": "1000"])
        }
    }
}
