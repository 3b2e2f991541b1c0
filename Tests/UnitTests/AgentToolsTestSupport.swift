// UnitTests: a throwaway workspace and the builtin agent's tools on it (no sandbox, real files, real bash).

import Foundation
import PatchdSystem

@testable import Agents
@testable import PatchdCore
@testable import Runs
@testable import Sandboxing

/// A temporary workspace with the builtin agent's tools; files are read and written as raw bytes.
final class ToolWorkspace {
    let dir: String
    let workspace: String
    let context: AgentContext
    let tools: AgentTools

    init(log: @escaping @Sendable (RunEvent) -> Void = { _ in }) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("agent-tools-\(UUID().uuidString)").path
        workspace = dir + "/ws"
        for sub in ["/ws", "/scratch", "/objects"] {
            try FileManager.default.createDirectory(atPath: dir + sub, withIntermediateDirectories: true)
        }
        let mounts = SandboxMounts(workspace: workspace, repositoryObjects: dir + "/objects", scratch: dir + "/scratch")
        context = AgentContext(
            runID: 1, task: TaskSpec(), sandbox: UnsandboxedSandbox(), mounts: mounts, limits: SandboxLimits(),
            cancel: CancellationFlag(), deadline: MonotonicClock.now + 600, log: log)
        tools = AgentTools(context: context, files: WorkspaceFiles(root: workspace, displayRoot: "/workspace"))
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ path: String, _ bytes: [UInt8]) throws {
        let full = workspace + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
    }

    func write(_ path: String, _ text: String) throws { try write(path, Array(text.utf8)) }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: workspace + "/" + path))) }

    func text(_ path: String) throws -> String { String(decoding: try bytes(path), as: UTF8.self) }

    /// Runs the editor with these inputs.
    func edit(_ input: [String: JSONValue]) -> (text: String, isError: Bool) {
        tools.run(name: "str_replace_based_edit_tool", input: .object(input))
    }

    func bash(_ command: String) -> (text: String, isError: Bool) {
        tools.run(name: "bash", input: .object(["command": .string(command)]))
    }
}
