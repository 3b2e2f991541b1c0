// Agents: the repository's .mcp.json stdio servers for the builtin agent: run in the run's sandbox, their tools offered as mcp__SERVER__TOOL.
import Foundation
import MCP
import PatchdCore
import PatchdSystem
import Sandboxing
import Synchronization

/// Each server is one command (`exec CMD ARGS <in >out`) in the run's own sandbox, on its own
/// thread, under the run's limits and the same isolation as the agent's bash: no network, the
/// workspace, what setup left in /tmp and HOME, no key. Its stdin and stdout are two FIFOs in
/// the run's scratch directory, bound in at /patchd/mcp when the run sandbox opens; the daemon
/// holds their other ends, and the MCP SDK's `Client` speaks JSON-RPC over them
/// (`MCPPipeTransport`). Its stderr lines go to the run log. A server runs until the agent ends
/// (then its own stop flag ends that command) or the run does.
/// `.mcp.json` is hostile input: names, counts and sizes are bounded, `${VAR}` is not expanded
/// (it would read the daemon's environment), and http/sse servers are skipped (no network).
final class MCPServers {
    struct Entry: Equatable {
        var name: String
        var command: String
        var args: [String]
        var env: [String: String]
    }

    private final class Running {
        let name: String
        let client: Client
        let transport: MCPPipeTransport
        let stopFlag = CancellationFlag()
        let exited = ExitNote()
        var thread: OSThread?
        var fds: [Int32] = []
        init(name: String, client: Client, transport: MCPPipeTransport) {
            self.name = name; self.client = client; self.transport = transport
        }
    }

    /// Whether a server's sandbox command has ended, and how.
    final class ExitNote: Sendable {
        private let text = Mutex<String?>(nil)
        func set(_ why: String) { text.withLock { $0 = why } }
        var why: String? { text.withLock { $0 } }
    }

    static let maxServers = 8
    static let maxTools = 64
    static let startSeconds = 30.0
    static let callSeconds = 600.0
    static let insideDir = "/patchd/mcp"

    private let context: AgentContext
    private var running: [Running] = []
    /// The tools offered to the model, and for each exposed name its server and the server's own tool name.
    private(set) var specs: [ToolSpec] = []
    private var routes: [String: (server: Int, tool: String)] = [:]

    private init(context: AgentContext) { self.context = context }

    /// Reads `.mcp.json` from the workspace and starts its stdio servers; nil when there is none.
    /// Problems are logged and skip the server; they never fail the run.
    static func start(context: AgentContext, files: WorkspaceFiles) -> MCPServers? {
        guard let text = try? files.read(".mcp.json", limit: 256 * 1024) else { return nil }
        let (entries, problems) = parse(text)
        for problem in problems { context.log(RunEvent(.info, "mcp: \(problem)")) }
        guard !entries.isEmpty else { return nil }
        let servers = MCPServers(context: context)
        for entry in entries { servers.launch(entry) }
        return servers
    }

    /// The stdio servers of a `.mcp.json` (`{"mcpServers": {NAME: {"command", "args", "env"}}}`), and what was skipped and why.
    static func parse(_ text: String) -> (entries: [Entry], problems: [String]) {
        guard let root = JSONValue.parse(text), case .object(let servers)? = root["mcpServers"] else {
            return ([], [".mcp.json is not a JSON object with \"mcpServers\"; no MCP servers started"])
        }
        var entries: [Entry] = [], problems: [String] = []
        for (name, spec) in servers.sorted(by: { $0.key < $1.key }) {
            guard name.utf8.count <= 32, !name.isEmpty, name.unicodeScalars.allSatisfy(Self.nameScalar) else {
                problems.append("server \(String(reflecting: String(name.prefix(40)))) skipped: a name is 1 to 32 of A-Z a-z 0-9 _ -")
                continue
            }
            if let type = spec["type"]?.string, type != "stdio" {
                problems.append("server \(name) skipped: type \(type) needs the network, which the sandbox does not have; only stdio servers run")
                continue
            }
            guard let command = spec["command"]?.string, !command.isEmpty, !command.contains("\0") else {
                problems.append("server \(name) skipped: it has no \"command\"")
                continue
            }
            var args: [String] = []
            if let value = spec["args"] {
                guard case .array(let list) = value, case let strings = list.compactMap(\.string),
                    strings.count == list.count, !strings.contains(where: { $0.contains("\0") })
                else {
                    problems.append("server \(name) skipped: \"args\" must be a list of strings")
                    continue
                }
                args = strings
            }
            var env: [String: String] = [:]
            if case .object(let map)? = spec["env"] {
                for (key, value) in map {
                    guard let v = value.string, !v.contains("\0"), !key.isEmpty,
                        key.unicodeScalars.allSatisfy({ Self.nameScalar($0) && $0 != "-" })
                    else { continue }
                    env[key] = v
                }
            }
            guard entries.count < maxServers else {
                problems.append("server \(name) skipped: at most \(maxServers) MCP servers run")
                continue
            }
            entries.append(Entry(name: name, command: command, args: args, env: env))
        }
        return (entries, problems)
    }

    static func nameScalar(_ s: Unicode.Scalar) -> Bool {
        (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") || s == "_" || s == "-"
    }

    /// The name the model sees: `mcp__SERVER__TOOL`, with characters the APIs refuse replaced by `_`.
    static func exposedName(server: String, tool: String) -> String? {
        let clean = String(String.UnicodeScalarView(tool.unicodeScalars.map { nameScalar($0) ? $0 : "_" }))
        let name = "mcp__\(server)__\(clean)"
        return clean.isEmpty || name.utf8.count > 64 ? nil : name
    }

    /// The directory of the servers' FIFOs, bound into the run sandbox when it opens
    /// (`BuiltinAgent.sandboxBinds`): a running sandbox cannot grow mounts.
    static func bind(_ mounts: SandboxMounts) -> SandboxBind {
        SandboxBind(host: mounts.scratch + "/mcp", inside: insideDir, writable: true)
    }

    private func launch(_ entry: Entry) {
        let log = context.log
        let hostDir = Self.bind(context.mounts).host
        let dir = hostDir + "/" + entry.name
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var fds: [Int32] = []
            for fifo in ["in", "out"] {
                unlink(dir + "/" + fifo)
                guard mkfifo(dir + "/" + fifo, 0o600) == 0 else { throw AsyncBridge.Stopped(description: "mkfifo failed (errno \(errno))") }
                // O_RDWR: opening never waits for the other end, and the server sees EOF only when we close.
                let fd = open(dir + "/" + fifo, O_RDWR | O_CLOEXEC)
                guard fd >= 0 else { throw AsyncBridge.Stopped(description: "opening the pipe failed (errno \(errno))") }
                fds.append(fd)
            }
            let transport = MCPPipeTransport(readFD: fds[1], writeFD: fds[0], label: entry.name)
            let server = Running(name: entry.name, client: Client(name: "patchd", version: "1.0"), transport: transport)
            server.fds = fds
            running.append(server)

            let bind = Self.bind(context.mounts)
            let run = try context.runSandbox()
            try run.checkBinds([bind])
            let inside = context.sandbox.path(of: bind) + "/" + entry.name
            let script =
                "exec " + ShellQuote.command([entry.command] + entry.args)
                + " <" + ShellQuote.word(inside + "/in") + " >" + ShellQuote.word(inside + "/out")
            log(RunEvent(.tool, "mcp \(entry.name): starting $ \(ShellQuote.command([entry.command] + entry.args).prefix(300))"))
            let (limits, env, name, stopFlag, exited) = (
                context.commandLimits(), entry.env, entry.name, server.stopFlag, server.exited
            )
            server.thread = try OSThread(name: "mcp-\(entry.name)") {
                do {
                    let result = try run.execute(script: script, environment: env, limits: limits, stop: stopFlag) {
                        line in
                        log(RunEvent(.output, "mcp \(name): \(line)"))
                    }
                    exited.set(result.limit.map { "stopped: \($0.explanation)" } ?? "exited with status \(result.exitStatus)")
                } catch {
                    exited.set("could not start in the sandbox: \(error)")
                }
            }
            let client = server.client
            let tools = try AsyncBridge.wait(
                seconds: Self.startSeconds,
                abort: { [context] in
                    context.cancel.reason?.explanation ?? exited.why.map { "the server \($0)" }
                }
            ) {
                try await client.connect(transport: transport)
                var tools: [MCP.Tool] = []
                var cursor: String?
                repeat {
                    let page = try await client.listTools(cursor: cursor)
                    tools += page.tools
                    cursor = page.nextCursor
                } while cursor != nil && tools.count < Self.maxTools * 4
                return tools
            }
            var offered: [String] = []
            for tool in tools {
                guard let exposed = Self.exposedName(server: entry.name, tool: tool.name), routes[exposed] == nil else {
                    log(
                        RunEvent(
                            .info,
                            "mcp \(entry.name): tool \(String(reflecting: String(tool.name.prefix(80)))) not offered (its name is too long, empty or a duplicate)"
                        ))
                    continue
                }
                guard specs.count < Self.maxTools else {
                    log(RunEvent(.info, "mcp \(entry.name): tool \(tool.name) not offered: at most \(Self.maxTools) MCP tools"))
                    continue
                }
                var schema = Self.json(tool.inputSchema) ?? .object([:])
                if case .object(var fields) = schema {
                    if fields["type"] == nil { fields["type"] = .string("object") }
                    if fields["properties"] == nil { fields["properties"] = .object([:]) }
                    schema = .object(fields)
                } else {
                    schema = .object(["type": .string("object"), "properties": .object([:])])
                }
                let description = String((tool.description ?? tool.title ?? "").prefix(2000))
                routes[exposed] = (running.count - 1, tool.name)
                specs.append(ToolSpec(name: exposed, description: "[MCP server \(entry.name)] " + description, schema: schema))
                offered.append(exposed)
            }
            log(RunEvent(.info, "mcp \(entry.name): \(offered.count) tool(s): \(offered.joined(separator: ", "))"))
        } catch {
            log(RunEvent(.info, "mcp \(entry.name): not available: \(error)"))
            if let server = running.last, server.name == entry.name { stopServer(server) }
        }
    }

    /// Runs an MCP tool, or nil when `name` is not one. Arguments and result are logged.
    func call(_ name: String, input: JSONValue) -> (text: String, isError: Bool)? {
        guard let route = routes[name] else { return nil }
        let server = running[route.server]
        let toolName = route.tool
        context.log(RunEvent(.tool, "mcp \(server.name).\(toolName) \(input.serialized().prefix(300))"))
        if let why = server.exited.why { return ("the MCP server \(server.name) is not running (it \(why))", true) }
        guard case .object(let object) = input,
            let arguments = try? JSONDecoder().decode([String: Value].self, from: Data(JSONValue.object(object).serialized().utf8))
        else {
            return ("the arguments of \(name) must be a JSON object", true)
        }
        let client = server.client
        let seconds = max(0.1, min(Self.callSeconds, context.deadline - MonotonicClock.now))
        do {
            let (content, isError) = try AsyncBridge.wait(
                seconds: seconds,
                abort: { [context] in
                    context.cancel.reason?.explanation ?? server.exited.why.map { "the server \($0)" }
                }
            ) {
                try await client.callTool(name: toolName, arguments: arguments)
            }
            var text = content.map(Self.text).joined(separator: "\n")
            if text.utf8.count > AgentTools.maxResultBytes {
                text = String(text.utf8.prefix(AgentTools.maxResultBytes)) ?? String(text.prefix(AgentTools.maxResultBytes / 4))
                text += "\n[the result was cut at \(AgentTools.maxResultBytes) bytes]"
            }
            if text.isEmpty { text = "(no content)" }
            let failed = isError == true
            let shown = text.split(whereSeparator: \.isNewline).prefix(5).joined(separator: " | ").prefix(300)
            context.log(RunEvent(.output, "mcp \(server.name).\(toolName)\(failed ? " failed" : ""): \(shown)"))
            return (text, failed)
        } catch {
            context.log(RunEvent(.output, "mcp \(server.name).\(toolName): \(error)"))
            return ("the MCP tool \(toolName) of server \(server.name) failed: \(error)", true)
        }
    }

    static func text(_ content: MCP.Tool.Content) -> String {
        switch content {
        case .text(let text, _, _): return text
        case .image(let data, let mime, _, _): return "[image \(mime), \(data.utf8.count) bytes of base64, not shown]"
        case .audio(let data, let mime, _, _): return "[audio \(mime), \(data.utf8.count) bytes of base64, not shown]"
        case .resource(let resource, _, _): return resource.text ?? "[resource \(resource.uri)]"
        case .resourceLink(let uri, let name, _, _, _, _): return "[resource link \(name): \(uri)]"
        }
    }

    static func json(_ value: Value) -> JSONValue? {
        guard let data = try? JSONEncoder().encode(value) else { return nil }
        return JSONValue.parse(String(decoding: data, as: UTF8.self))
    }

    /// Ends every server: the client, then the sandbox command, then the pipes.
    func stop() {
        for server in running { stopServer(server) }
        running.removeAll()
        routes.removeAll()
        try? FileManager.default.removeItem(atPath: context.mounts.scratch + "/mcp")
    }

    private func stopServer(_ server: Running) {
        let client = server.client, transport = server.transport
        _ = try? AsyncBridge.wait(seconds: 2, abort: { nil }) {
            await client.disconnect()
            await transport.disconnect()
        }
        server.stopFlag.cancel()
        server.thread?.join()
        server.thread = nil
        for fd in server.fds { close(fd) }
        server.fds = []
    }
}
