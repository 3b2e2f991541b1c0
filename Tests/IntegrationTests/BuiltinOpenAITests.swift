// IntegrationTests: the builtin agent on the Chat Completions API (provider: openai) against a loopback stand-in streaming real chunks.
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Tests/Fixtures/fake_chat_completions_api.py on port 0; `key` nil starts it as a local server that refuses an Authorization header.
final class FakeChatCompletionsAPI: LoopbackModelAPI {
    static let key = "sk-openai-test-\(UInt64.random(in: 0...UInt64.max))"

    init(steps: String, in dir: String, key: String? = FakeChatCompletionsAPI.key) throws {
        try super.init(
            fixture: "fake_chat_completions_api.py", name: "chat", steps: steps, in: dir,
            keyArguments: key.map { ["--key", $0] } ?? ["--no-key"])
    }

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
}

@Suite("builtin agent on Chat Completions", .serialized)
struct BuiltinOpenAITests {
    @Test("provider: openai: parallel tool calls split across chunks, a cut stream retried, role: tool results, usage and cost from the usage chunk")
    func multiStepEditOnChatCompletions() throws {
        let tmp = TempDir("fake-chat")
        let api = try FakeChatCompletionsAPI(
            steps: """
                [
                  {"truncate_after_chunks": 6, "chunk_chars": 4,
                   "reply": [{"type": "tool_call", "id": "call_cut", "name": "bash", "arguments": {"command": "echo never-run > cut.txt"}}],
                   "usage": {"prompt_tokens": 999, "completion_tokens": 999}},
                  {"chunk_chars": 5, "interleave": true,
                   "reply": [{"type": "text", "text": "Let me look and start the file."},
                             {"type": "tool_call", "id": "call_a", "name": "bash", "arguments": {"command": "ls; echo from-bash > bash.txt"}},
                             {"type": "tool_call", "id": "call_b", "name": "str_replace_based_edit_tool",
                              "arguments": {"command": "create", "path": "/workspace/src/hello.py", "file_text": "print('hello')\\n"}}],
                   "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "cached_tokens": 400}},
                  {"expect": ["from-bash", "README.md", "\\"tool_call_id\\": \\"call_a\\"", "\\"tool_call_id\\": \\"call_b\\"",
                              "File created successfully", "\\"role\\": \\"tool\\""],
                   "chunk_chars": 3,
                   "reply": [{"type": "tool_call", "id": "call_c", "name": "str_replace_based_edit_tool",
                              "arguments": {"command": "str_replace", "path": "src/hello.py", "old_str": "hello", "new_str": "hello, world"}}],
                   "usage": {"prompt_tokens": 1200, "completion_tokens": 40}},
                  {"expect": ["has been edited"],
                   "reply": [{"type": "text", "text": "Added src/hello.py that greets the world."}],
                   "usage": {"prompt_tokens": 1300, "completion_tokens": 20}}
                ]
                """, in: tmp.path)
        // Both providers configured: the task picks openai; the configured base URL wins over the environment's.
        let server = try TestServer(
            env: [
                "OPENAI_API_KEY": FakeChatCompletionsAPI.key, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                "ANTHROPIC_API_KEY": "sk-ant-unused",
            ],
            config: "openai_base_url: \(api.baseURL)\n")
        let work = try server.makeWorkTree("w", repo: "chat", commits: 1)
        try server.write(work, "README.md", "# demo\n")
        try server.write(work, ".patchd/task.md", "---\nagent: builtin\nprovider: openai\nmodel: gpt-4.1-mini\n---\nAdd a hello script.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        #expect(push.stderr.contains("retrying"), "the cut stream is retried: \(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:src/hello.py"], in: work).stdout == "print('hello, world')\n")
        #expect(try server.git(["show", "FETCH_HEAD:bash.txt"], in: work).stdout == "from-bash\n")
        #expect(try server.git(["show", "FETCH_HEAD:cut.txt"], in: work).status != 0, "a call from a cut stream never runs")
        let message = try server.git(["log", "-1", "--format=%B", "FETCH_HEAD"], in: work).stdout
        #expect(message.contains("Added src/hello.py that greets the world."))
        #expect(message.contains("Patchd-Model: gpt-4.1-mini"))

        let usage = try server.runJSON(1)["usage"] as! [String: Any]
        #expect(usage["input_tokens"] as? Int == 600 + 1200 + 1300)
        #expect(usage["cache_read_tokens"] as? Int == 400)
        #expect(usage["output_tokens"] as? Int == 110)
        let cost = usage["cost_usd"] as? Double ?? 0
        // gpt-4.1-mini: 0.4 input, 1.6 output, 0.1 cached input per million (OpenAIPrices).
        #expect(abs(cost - (3100 * 0.4 + 110 * 1.6 + 400 * 0.1) / 1_000_000) < 1e-12, "cost \(cost)")

        let requests = api.requests
        #expect(requests.count == 4)
        let headers = requests[0]["headers"] as! [String: Any]
        #expect(headers["authorization"] as? String == "Bearer " + FakeChatCompletionsAPI.key)
        let body = requests[0]["body"] as! [String: Any]
        #expect(body["stream"] as? Bool == true)
        #expect((body["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        let tools = (body["tools"] as? [[String: Any]] ?? []).compactMap { ($0["function"] as? [String: Any])?["name"] as? String }
        #expect(tools == ["bash", "str_replace_based_edit_tool"])
        let messages = body["messages"] as? [[String: Any]] ?? []
        #expect(messages.first?["role"] as? String == "system")
        // The second turn's history: the assistant's two calls, answered by two tool messages in order.
        let later = (requests[2]["body"] as! [String: Any])["messages"] as! [[String: Any]]
        #expect(later.map { $0["role"] as? String ?? "" } == ["system", "user", "assistant", "tool", "tool"])
        let calls = (later[2]["tool_calls"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(calls == ["call_a", "call_b"])
    }

    @Test(
        "a local server without a key: no Authorization header, openai is the default provider, an unlisted model is priced at the fallback and logged"
    )
    func localServerWithoutKey() throws {
        let tmp = TempDir("fake-chat")
        let api = try FakeChatCompletionsAPI(
            steps: """
                [
                  {"reply": [{"type": "tool_call", "id": "call_1", "name": "bash", "arguments": "{\\"command\\": \\"echo local > local.txt\\""}],
                   "usage": {"prompt_tokens": 100, "completion_tokens": 10}},
                  {"expect": ["must be a JSON object"],
                   "reply": [{"type": "tool_call", "id": "call_2", "name": "bash", "arguments": {"command": "echo local > local.txt"}}],
                   "usage": {"prompt_tokens": 100, "completion_tokens": 10}},
                  {"reply": [{"type": "text", "text": "Wrote local.txt."}], "usage": {"prompt_tokens": 100, "completion_tokens": 10}}
                ]
                """, in: tmp.path, key: nil)
        let server = try TestServer(env: ["OPENAI_BASE_URL": api.baseURL], config: "openai_model: llama3.1:8b\n")
        let work = try server.makeWorkTree("w", repo: "local", commits: 1)
        try server.write(work, ".patchd/task.md", "---\nagent: builtin\n---\nWrite local.txt.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:local.txt"], in: work).stdout == "local\n")
        let json = try server.runJSON(1)
        #expect(json["model"] as? String == "llama3.1:8b", "\(json)")
        let cost = (json["usage"] as? [String: Any])?["cost_usd"] as? Double ?? 0
        #expect(abs(cost - (300 * 1.25 + 30 * 10) / 1_000_000) < 1e-12, "priced at gpt-5's list price: \(cost)")
        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("llama3.1:8b is not in the openai price table"), "\(logs)")
        for request in api.requests {
            #expect((request["headers"] as? [String: Any])?["authorization"] == nil)
            #expect((request["body"] as? [String: Any])?["model"] as? String == "llama3.1:8b")
        }
    }
}

@Suite("builtin agent with MCP servers", .serialized)
struct BuiltinMCPTests {
    @Test("the repository's .mcp.json stdio server runs in the sandbox; its tools are offered as mcp__server__tool, called, answered and logged")
    func mcpServerInTheSandbox() throws {
        let tmp = TempDir("fake-chat-mcp")
        let api = try FakeChatCompletionsAPI(
            steps: """
                [
                  {"expect": ["mcp__fixture__lookup", "mcp__fixture__write_note", "mcp__fixture__fail", "Look up a value by key."],
                   "interleave": true,
                   "reply": [{"type": "tool_call", "id": "call_l", "name": "mcp__fixture__lookup", "arguments": {"key": "color"}},
                             {"type": "tool_call", "id": "call_w", "name": "mcp__fixture__write_note", "arguments": {"text": "hi from mcp\\n"}},
                             {"type": "tool_call", "id": "call_f", "name": "mcp__fixture__fail", "arguments": {}}]},
                  {"expect": ["lookup(color) = blue", "cwd=/workspace", "FIXTURE_WORD=sandboxed", "network=unreachable",
                              "wrote mcp-note.txt", "Error: this tool always fails"],
                   "reply": [{"type": "text", "text": "Used the MCP tools."}]}
                ]
                """, in: tmp.path)
        let server = try TestServer(env: ["OPENAI_API_KEY": FakeChatCompletionsAPI.key, "OPENAI_BASE_URL": api.baseURL])
        let work = try server.makeWorkTree("w", repo: "mcp", commits: 1)
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mcp_stdio_server.py").path
        try server.write(work, "tools/mcp_server.py", try String(contentsOfFile: fixture, encoding: .utf8))
        try server.write(
            work, ".mcp.json",
            """
            {"mcpServers": {
              "fixture": {"command": "python3", "args": ["tools/mcp_server.py"], "env": {"FIXTURE_WORD": "sandboxed"}},
              "remote": {"type": "http", "url": "https://example.com/mcp"},
              "bad name!": {"command": "true"}
            }}
            """)
        try server.write(work, ".patchd/task.md", "---\nagent: builtin\nprovider: openai\nmodel: gpt-4.1\n---\nUse the MCP tools.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:mcp-note.txt"], in: work).stdout == "hi from mcp\n")

        let logs = try expectOK(server.ssh(nil, ["run", "logs", "1"])).stdout
        #expect(logs.contains("mcp fixture: 3 tool(s): mcp__fixture__lookup, mcp__fixture__write_note, mcp__fixture__fail"), "\(logs)")
        #expect(logs.contains("mcp fixture.lookup {\"key\":\"color\"}"), "\(logs)")
        #expect(logs.contains("lookup(color) = blue"), "\(logs)")
        #expect(logs.contains("mcp fixture.fail failed: this tool always fails"), "\(logs)")
        #expect(logs.contains("mcp fixture: fixture mcp server ready in /workspace"), "stderr of the server: \(logs)")
        #expect(logs.contains("server remote skipped: type http"), "\(logs)")
        #expect(logs.contains("skipped: a name is 1 to 32"), "\(logs)")
        let requests = api.requests
        #expect(requests.count == 2)
        let later = (requests[1]["body"] as! [String: Any])["messages"] as! [[String: Any]]
        #expect(later.map { $0["role"] as? String ?? "" } == ["system", "user", "assistant", "tool", "tool", "tool"])
    }

    @Test("--sandbox none runs the MCP server too (in the workspace, on the host)")
    func mcpServerWithoutSandbox() throws {
        let tmp = TempDir("fake-chat-mcp")
        let api = try FakeChatCompletionsAPI(
            steps: """
                [
                  {"expect": ["mcp__fx__write_note"],
                   "reply": [{"type": "tool_call", "id": "call_w", "name": "mcp__fx__write_note", "arguments": {"text": "none\\n"}},
                             {"type": "tool_call", "id": "call_l", "name": "mcp__fx__lookup", "arguments": {"key": "shape"}}]},
                  {"expect": ["wrote mcp-note.txt", "lookup(shape) = round"], "reply": [{"type": "text", "text": "Done."}]}
                ]
                """, in: tmp.path)
        let server = try TestServer(
            extraArgs: ["--sandbox", "none"],
            env: ["OPENAI_API_KEY": FakeChatCompletionsAPI.key, "OPENAI_BASE_URL": api.baseURL])
        let work = try server.makeWorkTree("w", repo: "mcp-none", commits: 1)
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mcp_stdio_server.py").path
        try server.write(work, "mcp_server.py", try String(contentsOfFile: fixture, encoding: .utf8))
        try server.write(work, ".mcp.json", #"{"mcpServers": {"fx": {"command": "/usr/bin/python3", "args": ["mcp_server.py"]}}}"#)
        try server.write(work, ".patchd/task.md", "---\nagent: builtin\nprovider: openai\n---\nUse the MCP tools.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 120))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:mcp-note.txt"], in: work).stdout == "none\n")
        #expect(api.requests.count == 2)
    }
}
