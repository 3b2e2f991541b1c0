// IntegrationTests: the builtin agent against a loopback stand-in of the Messages API (real SSE wire format).

import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Tests/Fixtures/fake_messages_api.py, started on port 0 with a scripted conversation.
final class FakeMessagesAPI: LoopbackModelAPI {
    static let key = "sk-ant-test-\(UInt64.random(in: 0...UInt64.max))"

    init(steps: String, in dir: String) throws {
        try super.init(fixture: "fake_messages_api.py", name: "messages", steps: steps, in: dir, keyArguments: ["--key", Self.key])
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }
}

extension TestServer {
    static func withAgent(_ api: FakeMessagesAPI, extraArgs: [String] = [], config: String? = nil) throws -> TestServer {
        try TestServer(
            extraArgs: extraArgs, env: ["ANTHROPIC_API_KEY": FakeMessagesAPI.key, "ANTHROPIC_BASE_URL": api.baseURL],
            config: config)
    }
}

@Suite("builtin agent", .serialized)
struct BuiltinAgentTests {
    func task(_ body: String, front: String = "") -> String {
        "---\nagent: builtin\nmodel: claude-sonnet-4-5\n\(front)---\n\(body)\n"
    }

    @Test("a multi-step edit: bash and the editor run in the sandbox, the summary becomes the commit body, usage and cost are recorded")
    func multiStepEdit() throws {
        let tmp = TempDir("fake-api")
        let api = try FakeMessagesAPI(
            steps: """
                [
                  {"reply": [{"type": "text", "text": "Let me look."},
                             {"type": "tool_use", "id": "toolu_01", "name": "bash", "input": {"command": "ls; echo from-bash > bash.txt"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 1000, "output_tokens": 50, "cache_read_input_tokens": 500}},
                  {"expect": ["from-bash", "README.md", "toolu_01"],
                   "reply": [{"type": "tool_use", "id": "toolu_02", "name": "str_replace_based_edit_tool",
                              "input": {"command": "create", "path": "/workspace/src/hello.py", "file_text": "print('hello')\\n"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 1200, "output_tokens": 60}},
                  {"reply": [{"type": "tool_use", "id": "toolu_03", "name": "str_replace_based_edit_tool",
                              "input": {"command": "str_replace", "path": "src/hello.py", "old_str": "hello", "new_str": "hello, world"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 1300, "output_tokens": 40}},
                  {"reply": [{"type": "text", "text": "Added src/hello.py that greets the world."}],
                   "stop_reason": "end_turn", "usage": {"input_tokens": 1400, "output_tokens": 20}}
                ]
                """, in: tmp.path)
        // A configured price replaces the built-in one.
        let server = try TestServer.withAgent(
            api,
            config: """
                prices:
                  claude-sonnet-4-5: {input: 2, output: 10, cache_read: 0.2, cache_write: 2.5}
                """)
        let work = try server.makeWorkTree("w", repo: "agent", commits: 1)
        try server.write(work, "README.md", "# demo\n")
        try server.write(work, "AGENTS.md", "Always greet the whole world.\n")
        try server.write(work, ".patchd/task.md", task("Add a hello script."))
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:src/hello.py"], in: work).stdout == "print('hello, world')\n")
        #expect(try server.git(["show", "FETCH_HEAD:bash.txt"], in: work).stdout == "from-bash\n")
        let message = try server.git(["log", "-1", "--format=%B", "FETCH_HEAD"], in: work).stdout
        #expect(message.contains("Added src/hello.py that greets the world."))
        #expect(message.contains("Patchd-Agent: builtin"))
        #expect(message.contains("Patchd-Model: claude-sonnet-4-5"))
        let json = try server.runJSON(1)
        let usage = json["usage"] as! [String: Any]
        #expect(usage["input_tokens"] as? Int == 4900)
        #expect(usage["output_tokens"] as? Int == 170)
        #expect(usage["cache_read_tokens"] as? Int == 500)
        let cost = usage["cost_usd"] as? Double ?? 0
        #expect(abs(cost - (4900.0 * 2 + 170 * 10 + 500 * 0.2) / 1_000_000) < 1e-9, "cost \(cost)")

        let requests = api.requests
        #expect(requests.count == 4)
        let first = requests[0]
        let headers = first["headers"] as! [String: Any]
        #expect(headers["x-api-key"] as? String == FakeMessagesAPI.key)
        let body = first["body"] as! [String: Any]
        #expect(body["stream"] as? Bool == true)
        #expect((body["system"] as? String ?? "").contains("Always greet the whole world."))
        let tools = (body["tools"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(tools == ["bash", "str_replace_based_edit_tool"])
    }

    /// The bash tool is one shell per run, as Anthropic's bash tool is: what the model sets up in
    /// one call is there in the next; `restart` and a command past `command_timeout` end it.
    @Test("persistent bash: cd, export and an activated venv carry over; restart clears them; a hanging command times out and the next call works")
    func persistentBash() throws {
        let tmp = TempDir("fake-api")
        func bash(_ id: Int, _ input: String, expect: [String] = []) -> String {
            let expectation =
                expect.isEmpty ? "" : "\"expect\": \(String(decoding: try! JSONSerialization.data(withJSONObject: expect), as: UTF8.self)), "
            return """
                {\(expectation)"reply": [{"type": "tool_use", "id": "toolu_\(id)", "name": "bash", "input": \(input)}], "stop_reason": "tool_use"}
                """
        }
        let probe = #"{"command": "echo \"pwd=$(pwd) X=${X:-unset} venv=${VIRTUAL_ENV:-none}\""}"#
        let steps = [
            bash(1, #"{"command": "python3 -m venv --without-pip .venv && mkdir -p sub && echo $((40 + 2))-made"}"#),
            bash(2, #"{"command": "cd sub"}"#, expect: ["42-made"]),
            bash(3, #"{"command": "export X=1"}"#),
            bash(4, #"{"command": "source ../.venv/bin/activate"}"#),
            bash(5, probe),
            bash(6, #"{"restart": true}"#, expect: ["pwd=/workspace/sub X=1 venv=/workspace/.venv"]),
            bash(7, probe, expect: ["tool has been restarted."]),
            bash(8, #"{"command": "cd sub && export X=2 && sleep 600"}"#, expect: ["pwd=/workspace X=unset venv=none"]),
            bash(9, probe, expect: ["the command did not finish within 3 s (command_timeout)"]),
            #"{"expect": ["pwd=/workspace X=unset venv=none"], "reply": [{"type": "text", "text": "Checked the shell."}], "stop_reason": "end_turn"}"#,
        ]
        let api = try FakeMessagesAPI(steps: "[" + steps.joined(separator: ",\n") + "]", in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "shell", commits: 1)
        try server.write(work, ".patchd/task.md", task("Check the shell.", front: "command_timeout: 3s\n"))
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        #expect(api.requests.count == steps.count, "every step was answered (an expectation failure answers 400)")
    }

    /// Iterating the git way: a new task pushed on top of an adopted result continues that run
    /// (the model is told its task, summary and steps); `-o follow-up` does it without adopting.
    @Test("follow-ups: a push on an adopted result and -o follow-up give the model the earlier tasks and summaries; run show lists the chain")
    func followUps() throws {
        let tmp = TempDir("fake-api")
        let api = try FakeMessagesAPI(
            steps: """
                [
                  {"reply": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "echo one > ONE.txt"}}]},
                  {"reply": [{"type": "text", "text": "Wrote ONE.txt with the first value."}]},
                  {"expect": {"contains": ["This task follows earlier work", "Write the first file.", "Wrote ONE.txt with the first value.",
                                           "echo one > ONE.txt", "The new task:", "Write the second file."]},
                   "reply": [{"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {"command": "cat ONE.txt && echo two > TWO.txt"}}]},
                  {"reply": [{"type": "text", "text": "Wrote TWO.txt next to ONE.txt."}]},
                  {"expect": {"contains": ["Wrote ONE.txt with the first value.", "Wrote TWO.txt next to ONE.txt.", "Write the third file."]},
                   "reply": [{"type": "tool_use", "id": "toolu_3", "name": "bash", "input": {"command": "echo three > THREE.txt"}}]},
                  {"reply": [{"type": "text", "text": "Wrote THREE.txt."}]}
                ]
                """, in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "iterate", commits: 1)
        try server.write(work, ".patchd/task.md", task("Write the first file."))
        try server.commitAll(work, "first task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        // Adopt the result, then push the next task on top of it.
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        try expectOK(server.git(["checkout", "-q", "-B", "main", "FETCH_HEAD"], in: work))
        try server.write(work, ".patchd/task.md", task("Write the second file."))
        try server.commitAll(work, "second task")
        let second = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(second.stderr.contains("follows run 1"), "\(second.stderr)")
        #expect(try server.runJSON(2)["follows"] as? Int == 1)
        // Without adopting: the third task starts from agent/main, run 2's result.
        try server.write(work, ".patchd/task.md", task("Write the third file."))
        try server.commitAll(work, "third task")
        let third = try expectOK(server.git(["push", "-o", "wait", "-o", "follow-up", "origin", "main"], in: work, timeout: 120))
        #expect(third.stderr.contains("run 3 succeeded"), "\(third.stderr)")
        let json = try server.runJSON(3)
        #expect(json["follows"] as? Int == 2, "\(json)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        let files = try expectOK(server.git(["ls-tree", "--name-only", "FETCH_HEAD"], in: work)).stdout
        #expect(files.contains("ONE.txt") && files.contains("TWO.txt") && files.contains("THREE.txt"), "\(files)")
        let shown = try expectOK(server.ssh(nil, ["run", "show", "3"])).stdout
        #expect(shown.contains("follows  run 2 <- run 1"), "\(shown)")
        #expect(api.requests.count == 6, "every step was answered (an expectation failure answers 400)")
        // -o follow-up on a branch without a result says so and queues nothing.
        try expectOK(server.git(["checkout", "-q", "-b", "fresh"], in: work))
        let refused = try server.git(["push", "-o", "follow-up", "origin", "fresh"], in: work)
        #expect(refused.stderr.contains("refs/heads/agent/fresh holds no result to continue"), "\(refused.stderr)")
    }

    @Test("a failing tool comes back with is_error; 529 and a cut stream are retried; 401 fails the run with the API's message")
    func errorsAndRetries() throws {
        let tmp = TempDir("fake-api")
        let api = try FakeMessagesAPI(
            steps: """
                [
                  {"error": 529, "type": "overloaded_error", "message": "Overloaded", "retry_after": 1},
                  {"truncate_after_events": 4,
                   "reply": [{"type": "text", "text": "this stream is cut"}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"reply": [{"type": "tool_use", "id": "toolu_01", "name": "str_replace_based_edit_tool",
                              "input": {"command": "str_replace", "path": "missing.txt", "old_str": "a", "new_str": "b"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"expect": ["is_error", "missing.txt"],
                   "reply": [{"type": "tool_use", "id": "toolu_02", "name": "str_replace_based_edit_tool",
                              "input": {"command": "view", "path": "../../etc/passwd"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"expect": ["'..' is not allowed"],
                   "reply": [{"type": "text", "text": "Nothing to do."}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"error": 401, "type": "authentication_error", "message": "invalid x-api-key"}
                ]
                """, in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "errs", commits: 1)
        try server.write(work, ".patchd/task.md", task("Try things."))
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        #expect(push.stderr.contains("retrying"))
        #expect(try server.runJSON(1)["changed"] as? Bool == false)

        // The next run meets the 401.
        try server.write(work, ".patchd/task.md", task("Again."))
        try server.commitAll(work, "task 2")
        let second = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(second.stderr.contains("run 2 failed"))
        let json = try server.runJSON(2)
        #expect((json["error"] as? String ?? "").contains("invalid x-api-key"))
        #expect(!((json["error"] as? String ?? "").contains(FakeMessagesAPI.key)))
    }

    @Test("max_turns ends the run and keeps the work so far on refs/patchd/runs/ID")
    func maxTurnsKeepsPartialWork() throws {
        let tmp = TempDir("fake-api")
        let api = try FakeMessagesAPI(
            steps: """
                [
                  {"reply": [{"type": "tool_use", "id": "toolu_01", "name": "str_replace_based_edit_tool",
                              "input": {"command": "create", "path": "partial.txt", "file_text": "half done\\n"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"reply": [{"type": "tool_use", "id": "toolu_02", "name": "bash", "input": {"command": "true"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}}
                ]
                """, in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "turns", commits: 1)
        try server.write(work, ".patchd/task.md", task("Never finish.", front: "max_turns: 2\n"))
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 failed"))
        let json = try server.runJSON(1)
        #expect(json["limit"] as? String == "turns")
        let refs = try server.git(["ls-remote", "origin"], in: work).stdout
        #expect(refs.contains("refs/patchd/runs/1") && !refs.contains("agent/main"))
        try expectOK(server.git(["fetch", "-q", "origin", "refs/patchd/runs/1"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:partial.txt"], in: work).stdout == "half done\n")
        #expect(api.requests.count == 2)
    }

    @Test("a failing check goes back to the agent, which fixes it; the key never reaches the sandbox, logs or notes")
    func checkFeedbackAndKeyHygiene() throws {
        let tmp = TempDir("fake-api")
        let api = try FakeMessagesAPI(
            steps: """
                [
                  {"reply": [{"type": "tool_use", "id": "toolu_01", "name": "bash",
                              "input": {"command": "env > env.txt; cat /proc/*/environ 2>/dev/null | tr '\\\\0' '\\\\n' > proc-env.txt; ls -a / > root.txt"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"reply": [{"type": "text", "text": "Done, I think."}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"expect": ["check failed", "fixed.txt"],
                   "reply": [{"type": "tool_use", "id": "toolu_02", "name": "str_replace_based_edit_tool",
                              "input": {"command": "create", "path": "fixed.txt", "file_text": "ok\\n"}}],
                   "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}},
                  {"reply": [{"type": "text", "text": "Created fixed.txt so the check passes."}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": 10, "output_tokens": 10}}
                ]
                """, in: tmp.path)
        let server = try TestServer.withAgent(api)
        let work = try server.makeWorkTree("w", repo: "chk", commits: 1)
        try server.write(work, ".patchd/task.md", task("Make the check pass.", front: "check: |\n  test -f fixed.txt\n"))
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        let json = try server.runJSON(1)
        #expect(json["check"] as? String == "passed")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main", "refs/notes/patchd:refs/notes/patchd"], in: work))
        for file in ["env.txt", "proc-env.txt", "root.txt"] {
            let text = try server.git(["show", "FETCH_HEAD:\(file)"], in: work).stdout
            #expect(!text.isEmpty, "\(file) should have been written")
            #expect(!text.contains(FakeMessagesAPI.key), "the API key leaked into the sandbox (\(file))")
            #expect(!text.contains("ANTHROPIC"), "\(file) shows the daemon's environment")
        }
        let note = try server.git(["notes", "--ref=patchd", "show", "FETCH_HEAD"], in: work).stdout
        #expect(note.contains("check passed"))
        #expect(!note.contains(FakeMessagesAPI.key))
        let logs = try server.ssh(nil, ["run", "logs", "1"]).stdout
        #expect(!logs.contains(FakeMessagesAPI.key))
        #expect(!server.log.contains(FakeMessagesAPI.key))
    }
}

@Suite("claude-code agent", .serialized)
struct ClaudeCodeAgentTests {
    /// A server whose claude-code agent is Tests/Fixtures/fake_claude.py talking to `api`, and a work tree for repo "cc".
    static func serverWithFakeClaude(_ api: FakeMessagesAPI) throws -> (TestServer, String) {
        let fakeClaude = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/fake_claude.py").path
        let server = try TestServer(
            env: ["ANTHROPIC_API_KEY": FakeMessagesAPI.key, "ANTHROPIC_BASE_URL": api.baseURL],
            config: "claude_path: \(fakeClaude)\n")
        return (server, try server.makeWorkTree("w", repo: "cc", commits: 1))
    }

    @Test("claude runs in the sandbox with a placeholder key; its API calls go through patchd, which adds the real key")
    func claudeThroughProxy() throws {
        let tmp = TempDir("fake-api")
        let api = try FakeMessagesAPI(
            steps: """
                [{"reply": [{"type": "text", "text": "hello from claude"}], "stop_reason": "end_turn",
                  "usage": {"input_tokens": 5, "output_tokens": 3}}]
                """, in: tmp.path)
        let (server, work) = try Self.serverWithFakeClaude(api)
        try server.write(work, ".patchd/task.md", "---\nagent: claude-code\n---\nSay hello.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        #expect(push.stderr.contains("agent: hello from claude"))
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:CLAUDE.txt"], in: work).stdout == "hello from claude\n")
        let env = try server.git(["show", "FETCH_HEAD:env-claude.txt"], in: work).stdout
        #expect(env.contains("ANTHROPIC_API_KEY=sk-ant-patchd-placeholder"))
        #expect(env.contains("IS_SANDBOX=1"))
        #expect(!env.contains(FakeMessagesAPI.key), "the real key reached the sandbox")
        let message = try server.git(["log", "-1", "--format=%B", "FETCH_HEAD"], in: work).stdout
        #expect(message.contains("Wrote CLAUDE.txt: hello from claude"))
        #expect(message.contains("Patchd-Agent: claude-code"))
        let requests = api.requests
        #expect(requests.count == 1)
        #expect((requests.first?["headers"] as? [String: Any])?["x-api-key"] as? String == FakeMessagesAPI.key)
        // Usage is what patchd's proxy counted on the wire (5 in, 3 out at Sonnet 4.5's $3/$15 per
        // million), not what the CLI claims (fake_claude.py reports 321 tokens and $0.0123).
        let json = try server.runJSON(1)
        let usage = json["usage"] as! [String: Any]
        #expect(usage["input_tokens"] as? Int == 5)
        #expect(usage["output_tokens"] as? Int == 3)
        #expect(abs((usage["cost_usd"] as? Double ?? 0) - 0.00006) < 1e-9, "\(usage)")
        #expect(!server.log.contains(FakeMessagesAPI.key))
    }

    @Test("max_cost_usd binds claude-code: the proxy counts each answer's cost, stops the run once the budget is spent, and refuses further requests")
    func costBudget() throws {
        let tmp = TempDir("fake-api")
        // Each answer: 100k input and 10k output tokens = $0.45 at Sonnet 4.5 prices; budget $1.
        let step = """
            {"reply": [{"type": "text", "text": "turn"}], "stop_reason": "end_turn",
             "usage": {"input_tokens": 100000, "output_tokens": 10000}}
            """
        let api = try FakeMessagesAPI(steps: "[" + Array(repeating: step, count: 6).joined(separator: ",") + "]", in: tmp.path)
        let (server, work) = try Self.serverWithFakeClaude(api)
        try server.write(work, ".patchd/task.md", "---\nagent: claude-code\nmax_cost_usd: 1.0\n---\nWork for a while. [calls=6]\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 failed"), "\(push.stderr)")
        let json = try server.runJSON(1)
        #expect(json["limit"] as? String == "cost", "\(json)")
        #expect((json["error"] as? String ?? "").contains("max_cost_usd 1.00"), "\(json)")
        let usage = json["usage"] as! [String: Any]
        #expect(abs((usage["cost_usd"] as? Double ?? 0) - 1.35) < 1e-6, "\(usage)")
        #expect(api.requests.count == 3, "requests that reached the API: \(api.requests.count)")
    }
}
