// UnitTests: the builtin agent's MCP servers: .mcp.json as hostile input, tool names, and a real stdio server under --sandbox none.
import Foundation
import PatchdSystem
import Synchronization
import Testing

@testable import Agents
@testable import PatchdCore
@testable import Sandboxing

@Suite struct MCPServersTests {
    @Test func parseKeepsStdioServersAndSaysWhyOthersAreSkipped() {
        let (entries, problems) = MCPServers.parse(
            """
            {"mcpServers": {
              "ok": {"command": "python3", "args": ["s.py", "--flag"], "env": {"A_B": "1", "BAD-KEY": "x", "N": 3}},
              "web": {"type": "sse", "url": "http://x"},
              "../etc": {"command": "true"},
              "noargs": {"command": "srv", "args": "not-a-list"},
              "nocmd": {"args": []}
            }}
            """)
        #expect(entries == [MCPServers.Entry(name: "ok", command: "python3", args: ["s.py", "--flag"], env: ["A_B": "1"])])
        #expect(problems.contains { $0.contains("server web skipped: type sse") })
        #expect(problems.contains { $0.contains("\"../etc\" skipped: a name is 1 to 32") })
        #expect(problems.contains { $0.contains("server noargs skipped: \"args\" must be a list of strings") })
        #expect(problems.contains { $0.contains("server nocmd skipped: it has no \"command\"") })
        #expect(MCPServers.parse("[1]").problems.first?.contains("not a JSON object") == true)
        let many = (0..<12).map { "\"s\($0)\": {\"command\": \"x\"}" }.joined(separator: ",")
        #expect(MCPServers.parse("{\"mcpServers\": {\(many)}}").entries.count == MCPServers.maxServers)
    }

    @Test func mcpToolsOnBothWires() {
        let spec = ToolSpec(name: "mcp__s__t", description: "d", schema: .object(["type": .string("object")]))
        let messages = ModelWire.anthropicMessages.body(model: "m", maxTokens: 1, system: "", tools: [spec], messages: [])
        guard case .array(let tools)? = messages["tools"] else { Issue.record("no tools"); return }
        #expect(
            tools.last == .object(["name": .string("mcp__s__t"), "description": .string("d"), "input_schema": .object(["type": .string("object")])]))
        #expect(tools.count == 3, "bash, the editor, the MCP tool")
        let chat = ModelWire.openAIChat.body(model: "m", maxTokens: 1, system: "", tools: [spec], messages: [])
        guard case .array(let functions)? = chat["tools"] else { Issue.record("no tools"); return }
        #expect(functions.last?["function"]?["parameters"] == .object(["type": .string("object")]))
        #expect(functions.count == 3)
    }

    @Test func exposedNames() {
        #expect(MCPServers.exposedName(server: "gh", tool: "create_issue") == "mcp__gh__create_issue")
        #expect(MCPServers.exposedName(server: "fs", tool: "read.file/v2") == "mcp__fs__read_file_v2")
        #expect(MCPServers.exposedName(server: "s", tool: String(repeating: "x", count: 60)) == nil, "over 64 characters")
        #expect(MCPServers.exposedName(server: "s", tool: "") == nil)
    }

    /// Runs `body` on its own thread, as the builtin agent runs on a run thread, and hands back
    /// its value (expectations are checked in the test, not on that thread).
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<T, Error>) in
            do {
                try OSThread(name: "mcp-test") {
                    do { done.resume(returning: try body()) } catch { done.resume(throwing: error) }
                }.detach()
            } catch { done.resume(throwing: error) }
        }
    }

    /// A real server is tested through the daemon (BuiltinMCPTests, bwrap and none): in this test
    /// process other suites block the cooperative pool, which the SDK's Tasks need.
    @Test func aServerThatExitsAtOnceIsGivenUpOnAtOnce() async throws {
        let (seconds, specs, log) = try await Self.onThread { () -> (Double, [String]?, [String]) in
            let events = Mutex<[String]>([])
            let ws = try ToolWorkspace { event in events.withLock { $0.append(event.text) } }
            try ws.write(".mcp.json", #"{"mcpServers": {"dead": {"command": "/bin/false"}}}"#)
            let started = MonotonicClock.now
            let servers = MCPServers.start(context: ws.context, files: WorkspaceFiles(root: ws.workspace))
            servers?.stop()
            return (MonotonicClock.now - started, servers?.specs.map(\.name), events.withLock { $0 })
        }
        #expect(seconds < 10, "not after the 30 s start timeout")
        #expect(specs == [])
        #expect(log.contains { $0.hasPrefix("mcp dead: not available: the server exited with status 1") }, "\(log)")
    }
}
