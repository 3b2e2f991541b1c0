// IntegrationTests: checkpoints while the builtin agent works, a run that goes on after kill -9 of the server, and `run resume`.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("checkpoints and resume", .serialized)
struct CheckpointResumeTests {
    func task(_ body: String, front: String = "") -> String {
        "---\nagent: builtin\nmodel: claude-sonnet-4-5\n\(front)---\n\(body)\n"
    }

    /// A scripted tool call (and, optionally, what the request answering it must contain).
    func step(_ id: String, _ tool: String, _ input: String, expect: [String] = [], delayMs: Int? = nil) -> String {
        let expectation =
            expect.isEmpty ? "" : "\"expect\": \(String(decoding: try! JSONSerialization.data(withJSONObject: expect), as: UTF8.self)), "
        let delay = delayMs.map { "\"delay_ms\": \($0), " } ?? ""
        return """
            {\(expectation)\(delay)"reply": [{"type": "tool_use", "id": "\(id)", "name": "\(tool)", "input": \(input)}],
             "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}}
            """
    }

    func done(_ text: String, expect: [String] = []) -> String {
        let expectation =
            expect.isEmpty ? "" : "\"expect\": \(String(decoding: try! JSONSerialization.data(withJSONObject: expect), as: UTF8.self)), "
        return
            #"{\#(expectation)"reply": [{"type": "text", "text": "\#(text)"}], "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 10}}"#
    }

    func head(_ server: TestServer, _ rev: String, in work: String) throws -> String {
        try expectOK(server.git(["rev-parse", rev], in: work)).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(
        "each turn that changed files is a checkpoint commit on refs/patchd/checkpoints/ID, chained from the pushed commit; a turn that changed nothing adds none; setup's files stay out"
    )
    func checkpointRefs() throws {
        let tmp = TempDir("ckpt")
        let steps = [
            step("toolu_01", "str_replace_based_edit_tool", #"{"command": "create", "path": "a.txt", "file_text": "a\n"}"#),
            step("toolu_02", "bash", #"{"command": "cat a.txt"}"#),
            step("toolu_03", "bash", #"{"command": "echo b > b.txt"}"#),
            done("Wrote a and b."),
        ]
        let api = try FakeMessagesAPI(steps: "[" + steps.joined(separator: ",\n") + "]", in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "ckpt", commits: 1)
        try server.write(work, ".patchd/task.md", task("Write a and b.", front: "setup: echo made > setup-made.txt\n"))
        try server.commitAll(work, "task")
        let pushed = try head(server, "HEAD", in: work)
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")

        try expectOK(server.git(["fetch", "-q", "origin", "refs/patchd/checkpoints/1:refs/ckpt", "agent/main:refs/result"], in: work))
        // Two checkpoints (turns 1 and 3), ordinary commits chained from the pushed commit.
        let chain = try expectOK(server.git(["rev-list", "--first-parent", "refs/ckpt", "^\(pushed)"], in: work)).stdout
            .split(separator: "\n").map(String.init)
        #expect(chain.count == 2, "checkpoints: \(chain)")
        #expect(try head(server, "refs/ckpt~2", in: work) == pushed)
        #expect(try server.git(["show", "refs/ckpt~1:a.txt"], in: work).stdout == "a\n")
        #expect(try server.git(["show", "refs/ckpt~1:b.txt"], in: work).status != 0, "the first checkpoint is the state after turn 1")
        #expect(try server.git(["show", "refs/ckpt:b.txt"], in: work).stdout == "b\n")
        #expect(try server.git(["show", "refs/ckpt:setup-made.txt"], in: work).status != 0, "setup's files are not the agent's work")
        let message = try server.git(["log", "-1", "--format=%B", "refs/ckpt"], in: work).stdout
        #expect(message.contains("Patchd-Run: 1") && message.contains("Patchd-Checkpoint: 3"), "\(message)")
        // The result stays one commit on the pushed one, with the checkpoint's tree.
        #expect(try head(server, "refs/result^", in: work) == pushed)
        #expect(try head(server, "refs/result^{tree}", in: work) == head(server, "refs/ckpt^{tree}", in: work))
        let json = try server.runJSON(1)
        #expect(json["checkpoint"] as? String == chain.first)
        #expect(json["checkpoint_ref"] as? String == "refs/patchd/checkpoints/1")
        #expect(json["resumed_from"] is NSNull)
        let logs = try server.ssh(nil, ["run", "logs", "1"]).stdout
        #expect(logs.components(separatedBy: "checkpoint after turn").count == 3, "\(logs)")
    }

    @Test(
        "kill -9 of the server during a builtin run after three turns: the restarted server goes on from the checkpoint with the conversation, and finishes; nothing is lost"
    )
    func killNineResumes() throws {
        let tmp = TempDir("ckpt-kill")
        let steps = [
            step("toolu_01", "bash", #"{"command": "echo one > one.txt; echo marker-one-$((6 * 7))"}"#),
            step("toolu_02", "bash", #"{"command": "echo two > two.txt; echo marker-two-$((6 * 8))"}"#),
            step("toolu_03", "str_replace_based_edit_tool", #"{"command": "create", "path": "three.txt", "file_text": "three\n"}"#),
            // The 4th answer is slow: the server is killed while it waits.
            step("toolu_04", "bash", #"{"command": "echo never > never.txt"}"#, delayMs: 60_000),
            // After the restart: the request carries the earlier turns' tool results.
            step(
                "toolu_05", "bash", #"{"command": "cat one.txt two.txt three.txt > all.txt; ls"}"#,
                expect: ["marker-one-42", "marker-two-48", "toolu_03", "the server restarted while you worked", "Count to three."]),
            done("Counted to three.", expect: ["all.txt", "one.txt"]),
        ]
        let api = try FakeMessagesAPI(steps: "[" + steps.joined(separator: ",\n") + "]", in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "kill", commits: 1)
        try server.write(work, ".patchd/task.md", task("Count to three."))
        try server.commitAll(work, "task")
        let pushed = try head(server, "HEAD", in: work)
        try expectOK(server.git(["push", "origin", "main"], in: work))

        let deadline = Date().addingTimeInterval(60)
        while api.requests.count < 4 && Date() < deadline { usleep(50_000) }
        #expect(api.requests.count == 4, "the 4th request did not come:\n\(server.log)")
        let bare = server.repoRoot + "/kill.git"
        let before = try expectOK(run("/usr/bin/git", ["rev-parse", "refs/patchd/checkpoints/1"], cwd: bare)).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        server.stop(signal: SIGKILL)
        #expect(try server.sql("SELECT status FROM runs WHERE id = 1") == "running")

        try server.start()
        let json = try server.waitForRun(1, timeout: 120)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        #expect(api.requests.count == 6, "every step was answered (an expectation failure answers 400)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main:refs/result", "refs/patchd/checkpoints/1:refs/ckpt"], in: work))
        #expect(try server.git(["show", "refs/result:all.txt"], in: work).stdout == "one\ntwo\nthree\n")
        #expect(try server.git(["show", "refs/result:never.txt"], in: work).status != 0)
        #expect(try head(server, "refs/result^", in: work) == pushed)
        // The checkpoint made before the kill is still in the chain, below the ones made after.
        #expect(try server.git(["merge-base", "--is-ancestor", before, "refs/ckpt"], in: work).status == 0)
        #expect(try head(server, "refs/ckpt", in: work) != before, "the turn after the restart made a checkpoint")
        let usage = json["usage"] as! [String: Any]
        #expect(usage["input_tokens"] as? Int == 50, "the turns before the kill still count: \(usage)")
        let logs = try server.ssh(nil, ["run", "logs", "1"]).stdout
        #expect(logs.contains("resuming after a restart from \(before.prefix(12)), as after turn 3"), "\(logs)")
        // The first request after the restart starts with the original task and has all the earlier turns.
        let resumed = api.requests[4]["body"] as! [String: Any]
        #expect((resumed["messages"] as? [Any])?.count == 7, "task, 3 x (tool use, result); the note joins the last results")
    }

    @Test("a run stopped by max_turns, then run resume ID --max-turns 5 -- MORE: it continues the conversation and the result holds the work of both")
    func resumeAfterMaxTurns() throws {
        let tmp = TempDir("ckpt-resume")
        let steps = [
            step("toolu_01", "str_replace_based_edit_tool", #"{"command": "create", "path": "first.txt", "file_text": "first\n"}"#),
            step("toolu_02", "bash", #"{"command": "echo turn-two-$((2 + 2))"}"#),
            step(
                "toolu_03", "str_replace_based_edit_tool", #"{"command": "create", "path": "second.txt", "file_text": "second\n"}"#,
                expect: ["turn-two-4", "this continues run 1", "limit: turns", "also write second.txt"]),
            done("Wrote first and second."),
        ]
        let api = try FakeMessagesAPI(steps: "[" + steps.joined(separator: ",\n") + "]", in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "resume", commits: 1)
        try server.write(work, ".patchd/task.md", task("Write files.", front: "max_turns: 2\n"))
        try server.commitAll(work, "task")
        let pushed = try head(server, "HEAD", in: work)
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 failed"))
        #expect(try server.runJSON(1)["limit"] as? String == "turns")

        let resume = try server.ssh(nil, ["run", "resume", "1", "--max-turns", "5", "--wait", "--", "also", "write", "second.txt"], timeout: 120)
        #expect(resume.status == 0, "\(resume.output)")
        #expect(resume.stdout.hasPrefix("run 2 queued (resumes run 1 from "), "\(resume.stdout)")
        let json = try server.runJSON(2)
        #expect(json["status"] as? String == "succeeded")
        #expect(json["resumed_from"] as? Int == 1)
        #expect(json["branch"] as? String == "main")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main:refs/result"], in: work))
        #expect(try server.git(["show", "refs/result:first.txt"], in: work).stdout == "first\n")
        #expect(try server.git(["show", "refs/result:second.txt"], in: work).stdout == "second\n")
        #expect(try head(server, "refs/result^", in: work) == pushed, "one commit on the pushed one")
        #expect(api.requests.count == 4)
        // The resumed run's first request: the old conversation (4 messages), the note joined to its last turn.
        let body = api.requests[2]["body"] as! [String: Any]
        #expect((body["messages"] as? [Any])?.count == 5, "\(body["messages"] ?? "")")
        // A run that succeeded is not resumed.
        let again = try server.ssh(nil, ["run", "resume", "2"])
        #expect(again.status == 1 && again.stderr.contains("cannot be resumed: it succeeded"))
    }
}
