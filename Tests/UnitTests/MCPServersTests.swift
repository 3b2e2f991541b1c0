// UnitTests: the builtin agent's MCP servers: .mcp.json as hostile input, tool names, and a real stdio server under --sandbox none.
import Foundation
import Testing
import PatchdSystem
import Synchronization
@testable import Agents
@testable import PatchdCore
@testable import Sandboxing

@Suite struct MCPServersTests {
    @Test func parseKeepsStdioServersAndSaysWhyOthersAreSkipped() {
        let (entries, problems) = MCPServers.parse("""
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
        #expect(tools.last == .object(["name": .string("mcp__s__t"), "description": .string("d"), "input_schema": .object(["type": .string("object")])]))
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

    /// Runs `body` on its own thread, as the builtin agent runs on a run thread: the SDK's Tasks then
    /// need the cooperative pool only for themselves, which other tests' blocking work may hold.
    static func onThread(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
            do {
                try OSThread(name: "mcp-test") {
                    do { try body(); done.resume() } catch { done.resume(throwing: error) }
                }.detach()
            } catch { done.resume(throwing: error) }
        }
    }

    @Test func aServerThatExitsAtOnceIsGivenUpOnAtOnce() async throws {
        try await Self.onThread {
            let events = Mutex<[String]>([])
            let ws = try ToolWorkspace { event in events.withLock { $0.append(event.text) } }
            try ws.write(".mcp.json", #"{"mcpServers": {"dead": {"command": "/bin/false"}}}"#)
            let started = MonotonicClock.now
            let servers = MCPServers.start(context: ws.context, files: WorkspaceFiles(root: ws.workspace))
            servers?.stop()
            #expect(MonotonicClock.now - started < 10, "not after the 30 s start timeout")
            #expect(servers?.specs.isEmpty == true)
            let log = events.withLock { $0 }
            #expect(log.contains { $0.hasPrefix("mcp dead: not available: the server exited with status 1") }, "\(log)")
        }
    }

    @Test func aRealStdioServerUnderTheNoneSandbox() async throws {
        try await Self.onThread { try Self.realServer() }
    }

    static func realServer() throws {
        let events = Mutex<[String]>([])
        let ws = try ToolWorkspace { event in events.withLock { $0.append(event.text) } }
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mcp_stdio_server.py").path
        try ws.write(".mcp.json", """
            {"mcpServers": {"fx": {"command": "/usr/bin/python3", "args": [\(JSONValue.string(fixture).serialized())]}}}
            """)
        let servers = try #require(MCPServers.start(context: ws.context, files: WorkspaceFiles(root: ws.workspace)))
        defer { servers.stop() }
        #expect(servers.specs.map(\.name) == ["mcp__fx__lookup", "mcp__fx__write_note", "mcp__fx__fail"])
        #expect(servers.specs.first?.schema["required"] == .array([.string("key")]))
        let answer = try #require(servers.call("mcp__fx__lookup", input: .object(["key": .string("shape")])))
        #expect(!answer.isError && answer.text.hasPrefix("lookup(shape) = round"), "\(answer)")
        #expect(servers.call("mcp__fx__fail", input: .object([:]))! == ("this tool always fails", true))
        #expect(servers.call("bash", input: .object([:])) == nil, "not an MCP tool")
        let log = events.withLock { $0 }
        #expect(log.contains("mcp fx.lookup {\"key\":\"shape\"}"), "\(log)")
        servers.stop()
        #expect(servers.call("mcp__fx__lookup", input: .object(["key": .string("shape")])) == nil, "stopped: no tools")
    }
}
