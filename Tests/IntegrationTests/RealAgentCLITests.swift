// IntegrationTests: the real Claude Code and Codex CLIs through patchd's whole path (bwrap, socat, proxy) against loopback API stand-ins.

import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real CLIs, unpacked from their PyPI wheels by scripts/install-agent-clis.sh (the suites'
/// setup runs it when they are missing; about 15 s and 320 MB the first time). Where they cannot
/// be had the suites are skipped, unless PATCHD_REQUIRE_AGENT_CLI_TESTS=1 (set by .ci/run): then
/// they run and fail, so CI never hides them.
enum AgentCLIs {
    static let env = ProcessInfo.processInfo.environment
    static let required = env["PATCHD_REQUIRE_AGENT_CLI_TESTS"] == "1"
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// DIR/bin of the installed CLIs, installing them first if needed; the error says why not.
    static let bin: Result<String, TestFailure> = {
        let dir = env["PATCHD_AGENT_CLIS"] ?? ((env["HOME"] ?? "/root") + "/.cache/patchd/agent-clis")
        if access(dir + "/bin/claude", X_OK) == 0 && access(dir + "/bin/codex", X_OK) == 0 { return .success(dir + "/bin") }
        guard let r = try? run("/bin/bash", [repoRoot + "/scripts/install-agent-clis.sh", dir], timeout: 600), r.status == 0 else {
            return .failure(
                TestFailure("scripts/install-agent-clis.sh \(dir) failed: the real CLIs come from PyPI (claude-agent-sdk, openai-codex-cli-bin)"))
        }
        return .success(dir + "/bin")
    }()

    static var shouldRun: Bool {
        if required { return true }
        if case .success = bin { return true }
        return false
    }

    static func path(_ name: String) throws -> String { try bin.get() + "/" + name }

    /// "first API request 2.3s after start" in a run's log, as seconds.
    static func startup(_ log: String, agent: String) -> Double? {
        guard let range = log.range(of: "\(agent): first API request ") else { return nil }
        return Double(log[range.upperBound...].prefix { $0 == "." || $0.isNumber })
    }
}

/// Tests/Fixtures/fake_responses_api.py: OpenAI's Responses API (SSE), scripted, on port 0.
final class FakeResponsesAPI: LoopbackModelAPI {
    static let key = "sk-openai-test-\(UInt64.random(in: 0...UInt64.max))"

    init(steps: String, in dir: String) throws {
        try super.init(fixture: "fake_responses_api.py", name: "responses", steps: steps, in: dir, keyArguments: ["--key", Self.key])
    }

    /// As OPENAI_BASE_URL is written: with the /v1.
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
}

/// The raw JSON text of a logged request's body, for substring checks.
private func bodyText(_ request: [String: Any]?) -> String {
    guard let body = request?["body"] else { return "" }
    guard JSONSerialization.isValidJSONObject(body), let data = try? JSONSerialization.data(withJSONObject: body) else { return "\(body)" }
    return String(decoding: data, as: UTF8.self)
}

private func header(_ request: [String: Any]?, _ name: String) -> String? {
    (request?["headers"] as? [String: Any])?[name] as? String
}

@Suite(
    "real Claude Code CLI", .serialized,
    .enabled(
        if: AgentCLIs.shouldRun,
        "the real CLIs are not installed and cannot be (scripts/install-agent-clis.sh)"))
struct RealClaudeCodeTests {
    static func server(_ api: FakeMessagesAPI, repo: String = "cc") throws -> (TestServer, String) {
        let server = try TestServer(
            env: ["ANTHROPIC_API_KEY": FakeMessagesAPI.key, "ANTHROPIC_BASE_URL": api.baseURL],
            config: "claude_path: \(try AgentCLIs.path("claude"))\n")
        return (server, try server.makeWorkTree("w", repo: repo, commits: 1))
    }

    static func bash(_ id: String, _ command: String, usage: (Int, Int) = (1000, 100), expect: String? = nil) -> String {
        let input = String(decoding: try! JSONSerialization.data(withJSONObject: ["command": command, "description": "run it"]), as: UTF8.self)
        let expectation = expect.map { ", \"expect\": " + String(decoding: try! JSONSerialization.data(withJSONObject: [$0]), as: UTF8.self) } ?? ""
        return """
            {"reply": [{"type": "text", "text": "Running \(id)."}, {"type": "tool_use", "id": "\(id)", "name": "Bash", "input": \(input)}],
             "usage": {"input_tokens": \(usage.0), "output_tokens": \(usage.1)}\(expectation)}
            """
    }

    @Test(
        "the real claude works through bwrap, socat and the proxy: CLAUDE.md reaches the model, tools run in /workspace, usage is patchd's count, HOME keeps ~/.claude"
    )
    func wholePath() throws {
        let tmp = TempDir("real-claude")
        let secret = "PAPAYA-\(UInt32.random(in: 0...UInt32.max))"
        let command =
            "echo from-real-claude | tee real.txt; echo \"home=$HOME key=$ANTHROPIC_API_KEY\" > env.txt; ls -a $HOME/.claude > claude-dir.txt"
        let api = try FakeMessagesAPI(
            steps: "[" + Self.bash("toolu_01", command, expect: secret) + """
                , {"reply": [{"type": "text", "text": "All done."}], "usage": {"input_tokens": 1000, "output_tokens": 100},
                   "expect": ["from-real-claude"]}]
                """, in: tmp.path)
        let (server, work) = try Self.server(api)
        try server.write(work, "CLAUDE.md", "# Project rules\nThe secret word is \(secret).\n")
        try server.write(work, ".patchd/task.md", "---\nagent: claude-code\n---\nWrite real.txt.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)\n\(api.requests.map(bodyText).joined(separator: "\n").suffix(3000))")
        #expect(push.stderr.contains("Bash: echo from-real-claude"), "\(push.stderr)")
        #expect(push.stderr.contains("agent: All done."), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:real.txt"], in: work).stdout == "from-real-claude\n")
        let env = try server.git(["show", "FETCH_HEAD:env.txt"], in: work).stdout
        #expect(env == "home=/home/agent key=sk-ant-patchd-placeholder\n", "\(env)")
        // The CLI keeps its state in the run's HOME (DATA/work/run-ID/home), not in a tmpfs.
        #expect(try server.git(["show", "FETCH_HEAD:claude-dir.txt"], in: work).stdout.contains("projects"))
        let requests = api.requests
        #expect(requests.count == 2, "\(requests.count) requests")
        for request in requests { #expect(header(request, "x-api-key") == FakeMessagesAPI.key) }
        #expect(bodyText(requests.first).contains(secret), "CLAUDE.md did not reach the model")
        let json = try server.runJSON(1)
        let usage = json["usage"] as! [String: Any]
        #expect(usage["input_tokens"] as? Int == 2000, "\(usage)")
        #expect(usage["output_tokens"] as? Int == 200, "\(usage)")
        #expect(abs((usage["cost_usd"] as? Double ?? 0) - 0.009) < 1e-9, "\(usage)")
        #expect(push.stderr.contains("claude-code: 2 turns; patchd counted 2 model answers, $0.009"), "\(push.stderr)")
        #expect(!server.log.contains(FakeMessagesAPI.key))
        let startup = AgentCLIs.startup(push.stderr, agent: "claude-code")
        #expect(startup != nil, "\(push.stderr)")
        print("real claude: first API request \(startup ?? -1) s after the sandbox command started")
    }

    @Test("max_cost_usd 0.0001 stops the real claude after the answer that spends it, and the message says 0.0001")
    func tinyBudget() throws {
        let tmp = TempDir("real-claude")
        // 10 input + 5 output tokens at Sonnet 4.5's $3/$15 per million = $0.000105.
        let steps = (1...4).map { Self.bash("toolu_\($0)", "echo turn\($0) >> turns.txt", usage: (10, 5)) }
        let api = try FakeMessagesAPI(steps: "[" + steps.joined(separator: ",") + "]", in: tmp.path)
        let (server, work) = try Self.server(api)
        try server.write(work, ".patchd/task.md", "---\nagent: claude-code\nmax_cost_usd: 0.0001\n---\nKeep going.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        #expect(push.stderr.contains("run 1 failed"), "\(push.stderr)")
        let json = try server.runJSON(1)
        #expect(json["limit"] as? String == "cost", "\(json)")
        #expect(json["error"] as? String == "stopped at $0.000105 (max_cost_usd 0.0001)", "\(json)")
        #expect(api.requests.count == 1, "requests that reached the API: \(api.requests.count)")
    }

    @Test("max_turns 2 lets the real claude ask the model twice; the run records 2 turns and says what the CLI counted")
    func turnLimit() throws {
        let tmp = TempDir("real-claude")
        let steps = (1...4).map { Self.bash("toolu_\($0)", "echo turn\($0) >> turns.txt", usage: (10, 5)) }
        let api = try FakeMessagesAPI(steps: "[" + steps.joined(separator: ",") + "]", in: tmp.path)
        let (server, work) = try Self.server(api)
        try server.write(work, ".patchd/task.md", "---\nagent: claude-code\nmax_turns: 2\n---\nKeep going.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        #expect(push.stderr.contains("run 1 failed"), "\(push.stderr)")
        let json = try server.runJSON(1)
        #expect(json["limit"] as? String == "turns", "\(json)")
        #expect(
            json["error"] as? String == "stopped after 2 turns (max_turns 2; the CLI's num_turns says 3, counting the turn it refused)", "\(json)")
        #expect(push.stderr.contains("claude-code: 2 turns;"), "\(push.stderr)")
        #expect(api.requests.count == 2)
        try expectOK(server.git(["fetch", "-q", "origin", "refs/patchd/runs/1"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:turns.txt"], in: work).stdout == "turn1\nturn2\n")
    }

    @Test("a repository's .mcp.json works: its stdio server starts in the sandbox and the model's call reaches it")
    func mcpServer() throws {
        let tmp = TempDir("real-claude")
        let api = try FakeMessagesAPI(
            steps: """
                [{"reply": [{"type": "tool_use", "id": "toolu_m1", "name": "mcp__echo__shout", "input": {"text": "quiet words"}}],
                  "expect": ["mcp__echo__shout"]},
                 {"reply": [{"type": "text", "text": "The server shouted."}], "expect": ["QUIET WORDS!"]}]
                """, in: tmp.path)
        let (server, work) = try Self.server(api)
        try server.write(work, "tools/mcp_echo.py", Self.mcpEchoServer)
        try server.write(work, ".mcp.json", #"{"mcpServers": {"echo": {"command": "python3", "args": ["tools/mcp_echo.py"]}}}"#)
        try server.write(work, ".patchd/task.md", "---\nagent: claude-code\n---\nShout.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        #expect(push.stderr.contains("MCP: echo connected"), "\(push.stderr)")
        #expect(push.stderr.contains("mcp__echo__shout"), "\(push.stderr)")
        #expect(api.requests.count == 2)
    }

    /// A minimal MCP server (stdio, newline-delimited JSON-RPC): one tool, `shout`.
    static let mcpEchoServer = """
        import json, sys
        for line in sys.stdin:
            msg = json.loads(line)
            if "id" not in msg:
                continue
            method = msg["method"]
            if method == "initialize":
                result = {"protocolVersion": msg["params"].get("protocolVersion", "2025-06-18"),
                          "capabilities": {"tools": {}}, "serverInfo": {"name": "echo", "version": "1"}}
            elif method == "tools/list":
                result = {"tools": [{"name": "shout", "description": "Upper-cases text",
                                     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]}
            elif method == "tools/call":
                result = {"content": [{"type": "text", "text": msg["params"]["arguments"]["text"].upper() + "!"}]}
            else:
                print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "unknown method"}}), flush=True)
                continue
            print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)

        """
}

@Suite(
    "real Codex CLI", .serialized,
    .enabled(
        if: AgentCLIs.shouldRun,
        "the real CLIs are not installed and cannot be (scripts/install-agent-clis.sh)"))
struct RealCodexTests {
    static func server(_ api: FakeResponsesAPI) throws -> (TestServer, String) {
        let server = try TestServer(
            env: ["OPENAI_API_KEY": FakeResponsesAPI.key, "OPENAI_BASE_URL": api.baseURL],
            config: "codex_path: \(try AgentCLIs.path("codex"))\ndefault_agent: command\n")
        return (server, try server.makeWorkTree("w", repo: "cx", commits: 1))
    }

    /// The default model's tool: JavaScript in codex-code-mode-host calling exec_command.
    static func execStep(_ cmd: String, usage: String) -> String {
        let js =
            "const r = await tools.exec_command({cmd: \(String(decoding: try! JSONSerialization.data(withJSONObject: [cmd]), as: UTF8.self).dropFirst().dropLast())});\ntext(JSON.stringify(r));"
        let input = String(decoding: try! JSONSerialization.data(withJSONObject: [js]), as: UTF8.self).dropFirst().dropLast()
        return """
            {"reply": [{"type": "text", "text": "Running it."}, {"type": "custom_tool_call", "name": "exec", "input": \(input)}],
             "usage": \(usage)}
            """
    }

    @Test(
        "the real codex works through bwrap, socat and the proxy: AGENTS.md reaches the model, its tool runs in /workspace, usage and cost are patchd's count"
    )
    func wholePath() throws {
        let tmp = TempDir("real-codex")
        let secret = "ZEBRA-\(UInt32.random(in: 0...UInt32.max))"
        let api = try FakeResponsesAPI(
            steps: "["
                + Self.execStep(
                    "echo made-by-codex > codex.txt; echo \"home=$HOME key=$PATCHD_OPENAI_KEY\" > env.txt",
                    usage: #"{"input_tokens": 100, "output_tokens": 20, "cached_tokens": 40}"#)
                + #", {"reply": [{"type": "text", "text": "Done: wrote codex.txt"}], "usage": {"input_tokens": 200, "output_tokens": 10}}]"#,
            in: tmp.path)
        let (server, work) = try Self.server(api)
        try server.write(work, "AGENTS.md", "Agents note: \(secret)\n")
        try server.write(work, ".patchd/task.md", "---\nagent: codex\n---\nWrite codex.txt.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        #expect(push.stderr.contains("run 1 succeeded"), "\(push.stderr)")
        #expect(push.stderr.contains("exec: /bin/bash -lc 'echo made-by-codex"), "\(push.stderr)")
        #expect(push.stderr.contains("agent: Done: wrote codex.txt"), "\(push.stderr)")
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))
        #expect(try server.git(["show", "FETCH_HEAD:codex.txt"], in: work).stdout == "made-by-codex\n")
        #expect(try server.git(["show", "FETCH_HEAD:env.txt"], in: work).stdout == "home=/home/agent key=sk-patchd-placeholder\n")
        let requests = api.requests
        #expect(requests.count == 2, "\(requests.count) requests")
        for request in requests { #expect(header(request, "authorization") == "Bearer " + FakeResponsesAPI.key) }
        #expect(bodyText(requests.first).contains(secret), "AGENTS.md did not reach the model")
        let model = (requests.first?["body"] as? [String: Any])?["model"] as? String ?? "?"
        let json = try server.runJSON(1)
        let usage = json["usage"] as! [String: Any]
        // Responses usage: input_tokens include the cached ones. 60 + 200 uncached, 40 cached, 30 out,
        // at gpt-5's $1.25 / $0.125 / $10 per million (the default model is priced as gpt-5).
        #expect(usage["input_tokens"] as? Int == 260, "\(usage)")
        #expect(usage["cache_read_tokens"] as? Int == 40, "\(usage)")
        #expect(usage["output_tokens"] as? Int == 30, "\(usage)")
        #expect(abs((usage["cost_usd"] as? Double ?? 0) - 0.00063) < 1e-9, "model \(model): \(usage)")
        #expect(push.stderr.contains("codex: 2 turns; patchd counted 2 model answers, $0.00063"), "\(push.stderr)")
        #expect(json["model"] as? String == model)
        #expect(!server.log.contains(FakeResponsesAPI.key))
        let startup = AgentCLIs.startup(push.stderr, agent: "codex")
        #expect(startup != nil, "\(push.stderr)")
        print("real codex (\(model)): first API request \(startup ?? -1) s after the sandbox command started")
    }

    @Test("max_cost_usd 0.0001 stops the real codex after the answer that spends it; max_turns 1 refuses its second request")
    func budgets() throws {
        let tmp = TempDir("real-codex")
        // 100 in + 20 out at gpt-5 prices = $0.000325 per answer.
        let step = Self.execStep("echo again >> turns.txt", usage: #"{"input_tokens": 100, "output_tokens": 20}"#)
        let api = try FakeResponsesAPI(steps: "[" + Array(repeating: step, count: 6).joined(separator: ",") + "]", in: tmp.path)
        let (server, work) = try Self.server(api)
        try server.write(work, ".patchd/task.md", "---\nagent: codex\nmax_cost_usd: 0.0001\n---\nKeep going.\n")
        try server.commitAll(work, "task")
        let push = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        #expect(push.stderr.contains("run 1 failed"), "\(push.stderr)")
        let json = try server.runJSON(1)
        #expect(json["limit"] as? String == "cost", "\(json)")
        #expect(json["error"] as? String == "stopped at $0.000325 (max_cost_usd 0.0001)", "\(json)")
        #expect(api.requests.count == 1)

        try server.write(work, ".patchd/task.md", "---\nagent: codex\nmax_turns: 1\n---\nKeep going.\n")
        try server.commitAll(work, "turns")
        let second = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work, timeout: 300))
        #expect(second.stderr.contains("run 2 failed"), "\(second.stderr)")
        let turns = try server.runJSON(2)
        #expect(turns["limit"] as? String == "turns", "\(turns)")
        #expect(turns["error"] as? String == "stopped after 1 turns (max_turns 1)", "\(turns)")
        #expect(second.stderr.contains("codex: 1 turns;"), "\(second.stderr)")
        // One request of run 1, one of run 2; run 2's second was refused by patchd's proxy.
        #expect(api.requests.count == 2)
    }
}

@Suite("agent availability", .serialized)
struct AgentAvailabilityTests {
    @Test("a push whose task names an agent the server cannot run is refused in pre-receive with the reason and the fix")
    func preReceiveRefuses() throws {
        let server = try TestServer(config: "claude_path: /nonexistent/claude\n")
        let work = try server.makeWorkTree("w", repo: "av", commits: 1)
        try server.write(work, ".patchd/task.md", "---\nagent: builtin\n---\nDo it.\n")
        try server.commitAll(work, "builtin task")
        let refused = try server.git(["push", "origin", "main"], in: work)
        #expect(refused.status != 0)
        #expect(
            refused.stderr.contains(
                "this server cannot run the builtin agent: the server has no ANTHROPIC_API_KEY: ask its admin, or use agent: command"),
            "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing from this push was stored"))
        #expect(try server.git(["ls-remote", "origin"], in: work).stdout.isEmpty, "the refused push was stored")

        // A task without agent: is the server's default (builtin): refused alike.
        try server.write(work, ".patchd/task.md", "Do it.\n")
        try server.commitAll(work, "default agent")
        let byDefault = try server.git(["push", "origin", "main"], in: work)
        #expect(byDefault.status != 0)
        #expect(byDefault.stderr.contains("cannot run the builtin agent"), "\(byDefault.stderr)")

        try server.write(work, ".patchd/task.md", "---\nagent: command\nrun: echo ok\n---\nDo it.\n")
        try server.commitAll(work, "command task")
        let accepted = try expectOK(server.git(["push", "-o", "wait", "origin", "main"], in: work))
        #expect(accepted.stderr.contains("run 1 succeeded"), "\(accepted.stderr)")
    }

    @Test("pre-receive names the missing CLI for claude-code and the missing key for codex")
    func cliAgentsRefused() throws {
        let server = try TestServer(env: ["ANTHROPIC_API_KEY": "sk-ant-unused"], config: "claude_path: /nonexistent/claude\n")
        let work = try server.makeWorkTree("w", repo: "av", commits: 1)
        try server.write(work, ".patchd/task.md", "---\nagent: claude-code\n---\nDo it.\n")
        try server.commitAll(work, "claude task")
        let claude = try server.git(["push", "origin", "main"], in: work)
        #expect(claude.status != 0)
        #expect(claude.stderr.contains("the server has no Claude Code CLI ('/nonexistent/claude' not found"), "\(claude.stderr)")
        #expect(claude.stderr.contains("or use agent: builtin"), "\(claude.stderr)")
        try server.write(work, ".patchd/task.md", "---\nagent: codex\n---\nDo it.\n")
        try server.commitAll(work, "codex task")
        let codex = try server.git(["push", "origin", "main"], in: work)
        #expect(codex.status != 0)
        #expect(codex.stderr.contains("the server has no OPENAI_API_KEY: ask its admin, or use agent: builtin"), "\(codex.stderr)")
    }

    @Test("doctor lists each agent with why it is or is not offered")
    func doctorListsAgents() throws {
        let tmp = TempDir("doctor-agents")
        let bin = tmp.path + "/opt-bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(
            atPath: bin + "/claude", contents: Data("#!/bin/sh\necho 1.0\n".utf8),
            attributes: [.posixPermissions: 0o755])
        let r = try run(
            patchdBinary, ["doctor", "--data-dir", tmp.path + "/data", "--listen", "127.0.0.1:0"],
            env: ["PATH": "\(bin):/usr/local/bin:/usr/bin:/bin", "ANTHROPIC_API_KEY": "sk-ant-doctor", "OPENAI_API_KEY": ""])
        #expect(
            r.stdout.contains("ok   agent builtin (default): offered: model claude-sonnet-4-5, Messages API at https://api.anthropic.com"),
            "\(r.stdout)")
        #expect(r.stdout.contains("ok   agent claude-code: offered: \(bin)/claude"), "\(r.stdout)")
        #expect(r.stdout.contains("warn agent codex: not offered: the server has no OPENAI_API_KEY"), "\(r.stdout)")
        #expect(r.stdout.contains("ok   agent command: offered"), "\(r.stdout)")
        #expect(!r.stdout.contains("sk-ant-doctor"))
    }
}
