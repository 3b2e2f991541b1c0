// IntegrationTests: best of N over a real server and real git: attempts differ through PATCHD_ATTEMPT, the check picks the winner.

import Foundation
import Testing

extension TestServer {
    /// A command task whose run script and check see `$PATCHD_ATTEMPT`.
    static func attemptsTask(_ attempts: Int?, run: String, check: String? = nil) -> String {
        var front = "---\nagent: command\n"
        if let attempts { front += "attempts: \(attempts)\n" }
        front += "run: |\n" + run.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
        if let check { front += "check: |\n  \(check)\n" }
        return front + "---\nTry it.\n"
    }

    func attemptJSON(_ id: Int) throws -> [String: Any]? { try runJSON(id)["attempt"] as? [String: Any] }

    func resolve(_ ref: String, in work: String) throws -> String? {
        let r = try git(["ls-remote", "origin", ref], in: work)
        return r.stdout.split(separator: "\t").first.map(String.init)
    }

    /// Polls until every attempt of the group holding `ids` says how the group was decided.
    func waitForDecision(_ ids: ClosedRange<Int>, timeout: Double = 90) throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let attempts = try ids.map { try attemptJSON($0) ?? [:] }
            if attempts.allSatisfy({ $0["reason"] is String }) { return attempts }
            usleep(200_000)
        }
        throw TestFailure("runs \(ids) were not decided in \(timeout)s:\n\(log)")
    }
}

@Suite("best of N", .serialized)
struct AttemptGroupRunTests {
    @Test(
        "attempts: 3, only attempt 2 passes the check: it is on agent/BRANCH and every record says so; they ran side by side; none passing moves nothing"
    )
    func onlyThePassingAttemptWins() throws {
        let server = try TestServer(extraArgs: ["--workers", "4"])
        let work = try server.makeWorkTree("work", repo: "best", commits: 1)
        let task = TestServer.attemptsTask(3, run: "sleep 1\necho \"attempt $PATCHD_ATTEMPT\" > OUT.txt", check: "grep -qx 'attempt 2' OUT.txt")
        try server.write(work, ".patchd/task.md", task)
        try server.commitAll(work, "best of 3")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work), "push -o wait")
        #expect(push.stderr.contains("runs 1, 2, 3 queued for main: best of 3 (agent command), group 1"))
        #expect(push.stderr.contains("[attempt 2/3] check passed"))
        #expect(push.stderr.contains("[attempt 1/3] check failed"))
        #expect(push.stderr.contains("winner: attempt 2 (run 2): the only attempt whose check passed (1 line)"))
        #expect(push.stderr.contains("OUT.txt | 1 +"))
        #expect(push.stderr.contains("git fetch origin agent/main"))

        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:OUT.txt"], in: work).stdout == "attempt 2\n")
        let message = try server.git(["log", "-1", "--format=%B", "FETCH_HEAD"], in: work).stdout
        #expect(message.contains("Patchd-Run: 2\n") && message.contains("Patchd-Attempt: 2/3 of group 1\n"))
        for id in 1...3 {
            let attempt = try #require(try server.attemptJSON(id), "run \(id) has no attempt object")
            #expect(attempt["group"] as? Int == 1)
            #expect(attempt["number"] as? Int == id)
            #expect(attempt["of"] as? Int == 3)
            #expect(attempt["winner"] as? Int == 2, "run \(id): \(attempt)")
            #expect((attempt["reason"] as? String)?.hasPrefix("the only attempt whose check passed (1 line); agent/main is ") == true)
            #expect(try server.resolve("refs/patchd/runs/\(id)", in: work) != nil, "every attempt keeps its result")
        }
        #expect(try server.runJSON(1)["status"] as? String == "failed")
        #expect(try server.runJSON(2)["status"] as? String == "succeeded")
        // The note of a losing attempt was written again once the group was decided.
        try expectOK(server.git(["fetch", "-q", "origin", "refs/notes/patchd:refs/notes/patchd"], in: work))
        let firstResult = try #require(try server.runJSON(1)["result"] as? String)
        let note = try server.git(["notes", "--ref=patchd", "show", firstResult], in: work).stdout
        #expect(note.contains("\"winner\" : 2"), "note: \(note.prefix(2000))")
        let list = try expectOK(server.ssh(nil, ["run", "list", "best"])).stdout
        #expect(list.contains("[1 2/3*] Try it.") && list.contains("[1 1/3] Try it.") && list.contains("[1 3/3] Try it."), "\(list)")
        let show = try expectOK(server.ssh(nil, ["run", "show", "3"])).stdout
        #expect(show.contains("attempt  3 of 3 in group 1, 1 line changed; run 2 won: the only attempt whose check passed"), "\(show)")

        // Side by side: with 4 workers the three attempts' run intervals overlap.
        let intervals = try (1...3).map { id -> (Date, Date) in
            let json = try server.runJSON(id)
            let parse = { (key: String) in try #require((json[key] as? String).flatMap { try? Date($0, strategy: .iso8601) }) }
            return (try parse("started_at"), try parse("finished_at"))
        }
        #expect(intervals.map(\.0).max()! < intervals.map(\.1).min()!, "attempts ran one after another: \(intervals)")

        // None passing: agent/main stays where attempt 2 put it; every record says why.
        let before = try server.resolve("refs/heads/agent/main", in: work)
        try server.write(work, ".patchd/task.md", task.replacingOccurrences(of: "'attempt 2'", with: "'attempt 9'"))
        try server.commitAll(work, "nobody passes")
        let none = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(
            none.stderr.contains(
                "no attempt won: no attempt passed its check (1: check failed; 2: check failed; 3: check failed); agent/main did not move"))
        #expect(none.stderr.contains("attempt 2's work: git fetch origin refs/patchd/runs/5"))
        #expect(try server.resolve("refs/heads/agent/main", in: work) == before)
        for id in 4...6 {
            let attempt = try #require(try server.attemptJSON(id))
            #expect(attempt["winner"] is NSNull)
            #expect((attempt["reason"] as? String)?.hasPrefix("no attempt passed its check") == true)
        }
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "5"])).stdout
        #expect(logs.contains("best of 3: no attempt won: no attempt passed its check"))
        #expect(logs.contains("agent/main moves if this attempt wins") == false, "a failed attempt cannot win")
    }

    @Test("several attempts pass: the smallest diff wins, not the first to finish")
    func smallestDiffWins() throws {
        let server = try TestServer(extraArgs: ["--workers", "4"])
        let work = try server.makeWorkTree("work", repo: "small", commits: 1)
        // Attempt 1 writes 3 lines at once, 2 writes 2 after a second, 3 writes 1 after two seconds.
        let run = "sleep $((PATCHD_ATTEMPT - 1))\nseq $((4 - PATCHD_ATTEMPT)) > OUT.txt"
        try server.write(work, ".patchd/task.md", TestServer.attemptsTask(3, run: run, check: "test -s OUT.txt"))
        try server.commitAll(work, "best of 3, all pass")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(push.stderr.contains("winner: attempt 3 (run 3): check passed, smallest diff (1 line) of the 3 that passed"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:OUT.txt"], in: work).stdout == "1\n")
        #expect(try server.runJSON(1)["status"] as? String == "succeeded", "a passing attempt that lost still succeeded")
        #expect(try server.attemptJSON(1)?["winner"] as? Int == 3)
    }

    @Test("without a check the first success wins at once; -o attempts=N and its cap (said in the run log); run start --attempts N --wait")
    func firstSuccessWinsAndPushOption() throws {
        let server = try TestServer(extraArgs: ["--workers", "4", "--default-agent", "command"], config: "max_attempts: 3\n")
        let work = try server.makeWorkTree("work", repo: "first", commits: 1)
        // Attempt 1 fails, 2 succeeds after 3 seconds, 3 succeeds at once: 3 wins.
        let script = "if [ $PATCHD_ATTEMPT = 1 ]; then exit 1; fi; if [ $PATCHD_ATTEMPT = 2 ]; then sleep 3; fi; echo $PATCHD_ATTEMPT > WHO.txt"
        let push = try expectOK(server.git(["push", "-o", "attempts=5", "-o", "task=\(script)", "-o", "wait", "origin", "main"], in: work))
        #expect(push.stderr.contains("attempts: 5 asked for, 3 run: the server runs at most 3 (its max_attempts)"))
        #expect(push.stderr.contains("runs 1, 2, 3 queued"))
        #expect(push.stderr.contains("winner: attempt 3 (run 3): first to succeed (1 line)"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:WHO.txt"], in: work).stdout == "3\n")
        // Attempt 2 finished after the decision: it succeeded, and its record names the winner.
        let second = try server.waitForRun(2)
        #expect(second["status"] as? String == "succeeded")
        #expect((second["attempt"] as? [String: Any])?["winner"] as? Int == 3)
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("attempts: 5 asked for, 3 run"), "the cap is in the run log")

        // A bad -o attempts refuses the push with the fix.
        try server.write(work, "x.txt", "x\n")
        try server.commitAll(work, "x")
        let bad = try server.git(["push", "-o", "attempts=0", "-o", "task=true", "origin", "main"], in: work)
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("push option attempts='0' must be a whole number from 1 to 64, like -o attempts=3"))

        // run start --attempts N --wait.
        let start = try server.ssh(nil, ["run", "start", "first", "main", "--attempts", "2", "--wait", "--", "echo $PATCHD_ATTEMPT > S.txt"])
        #expect(start.status == 0, "\(start.output)")
        #expect(start.stdout.contains("runs 4, 5 queued for main: best of 2"))
        #expect(start.stdout.contains("winner: attempt"))
    }

    @Test("attempts_cancel_rest: the first to pass wins at once and the others are canceled")
    func cancelRest() throws {
        let server = try TestServer(extraArgs: ["--workers", "2"], config: "attempts_cancel_rest: true\n")
        let work = try server.makeWorkTree("work", repo: "cancel", commits: 1)
        let run = "if [ $PATCHD_ATTEMPT != 1 ]; then sleep 60; fi\necho $PATCHD_ATTEMPT > WHO.txt"
        try server.write(work, ".patchd/task.md", TestServer.attemptsTask(3, run: run, check: "test -s WHO.txt"))
        try server.commitAll(work, "best of 3, cancel the rest")
        let started = Date()
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(Date().timeIntervalSince(started) < 40, "the sleeping attempts were not stopped")
        #expect(push.stderr.contains("winner: attempt 1 (run 1): first to pass its check (1 line); the unfinished attempts are canceled"))
        // With two workers attempt 3 was still queued: canceled before it started; attempt 2 was stopped.
        #expect(try server.runJSON(2)["status"] as? String == "canceled")
        let third = try server.runJSON(3)
        #expect(third["status"] as? String == "canceled")
        #expect((third["error"] as? String)?.contains("attempt 1 (run 1) already won") == true)
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:WHO.txt"], in: work).stdout == "1\n")
    }
}
