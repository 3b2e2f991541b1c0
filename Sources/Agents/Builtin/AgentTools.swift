// Agents: the builtin agent's tools, bash (in the sandbox) and str_replace_based_edit_tool (confined to the workspace).

import Foundation
import PatchdCore
import Sandboxing

/// Executes one tool_use block. Results are text for a tool_result block.
struct AgentTools {
    let context: AgentContext
    let files: WorkspaceFiles
    /// The repository's MCP servers (`.mcp.json`), when it has any.
    var mcp: MCPServers? = nil
    /// Tools offered beside bash and the editor: the MCP servers' tools.
    var extraSpecs: [ToolSpec] { mcp?.specs ?? [] }
    /// About what a tool result carries of a command's output, in bytes (head and tail).
    static let maxResultBytes = 30_000

    /// Anthropic's own tool definitions (the API knows their schemas).
    static let definitions: JSONValue = .array([
        .object(["type": .string("bash_20250124"), "name": .string("bash")]),
        .object(["type": .string("text_editor_20250728"), "name": .string("str_replace_based_edit_tool")]),
    ])

    /// The same two tools as JSON-schema functions, for APIs without Anthropic's built-in tool
    /// types (Chat Completions). The schemas follow Anthropic's published ones.
    static let functionSpecs: [ToolSpec] = [
        ToolSpec(
            name: "bash",
            description: """
                Run a command in a persistent bash shell, started in the repository's working directory: the working \
                directory, variables, functions and an activated virtualenv carry over to the next call. Output (stdout \
                and stderr) is returned, its head and tail when long. A command past its time limit is killed with the \
                shell. No network unless the task allows it.
                """,
            schema: .object([
                "type": .string("object"),
                "properties": .object([
                    "command": .object(["type": .string("string"), "description": .string("The bash command to run.")]),
                    "restart": .object([
                        "type": .string("boolean"),
                        "description": .string(
                            "Start a fresh shell (no command needed): the working directory and variables of earlier calls are gone."),
                    ]),
                ]),
            ])),
        ToolSpec(
            name: "str_replace_based_edit_tool",
            description: """
                View, create and edit files in the repository. `view` shows a file with line numbers (`cat -n`) or lists \
                a directory; `create` writes a new file (it must not exist); `str_replace` replaces `old_str`, which must \
                occur exactly once, with `new_str`; `insert` puts `insert_text` after line `insert_line` (0: at the top).
                """,
            schema: .object([
                "type": .string("object"),
                "properties": .object([
                    "command": .object(["type": .string("string"), "enum": .array(["view", "create", "str_replace", "insert"].map { .string($0) })]),
                    "path": .object([
                        "type": .string("string"),
                        "description": .string("Path of the file or directory, relative to the working directory or absolute inside it."),
                    ]),
                    "file_text": .object(["type": .string("string"), "description": .string("create: the file's content.")]),
                    "old_str": .object(["type": .string("string"), "description": .string("str_replace: the exact text to replace.")]),
                    "new_str": .object(["type": .string("string"), "description": .string("str_replace: the new text.")]),
                    "insert_line": .object(["type": .string("integer"), "description": .string("insert: the line after which to insert.")]),
                    "insert_text": .object(["type": .string("string"), "description": .string("insert: the text to insert.")]),
                    "view_range": .object([
                        "type": .string("array"), "items": .object(["type": .string("integer")]),
                        "description": .string("view: [first, last] line numbers; -1 as last: to the end."),
                    ]),
                ]),
                "required": .array([.string("command"), .string("path")]),
            ])),
    ]

    func run(name: String, input: JSONValue) -> (text: String, isError: Bool) {
        guard case .object = input else {
            // Chat Completions models can send arguments that are not a JSON object.
            return ("the arguments of \(name) must be a JSON object; got: \(String((input.string ?? input.serialized()).prefix(2000)))", true)
        }
        switch name {
        case "bash": return bash(input)
        case "str_replace_based_edit_tool": return edit(input)
        default:
            if let result = mcp?.call(name, input: input) { return result }
            return (
                "unknown tool '\(name)'; the tools are bash, str_replace_based_edit_tool\(extraSpecs.isEmpty ? "" : " and the mcp__ tools listed")",
                true
            )
        }
    }

    /// Runs the command in the run's persistent bash (`RunSandbox.shell`): `cd`, variables,
    /// functions and an activated venv carry over to the next call; `restart: true` starts a
    /// fresh shell. A command that hits its time limit (the task's `command_timeout`) is killed
    /// with the shell, which the next call restarts. The run log gets each output line as it
    /// arrives; the result is built from the raw bytes the sandbox kept (head and tail, exact
    /// counts), so it is linear in the output, never splits a character, never adds a line
    /// break, and shows control characters instead of passing them on.
    func bash(_ input: JSONValue) -> (String, Bool) {
        let run: RunSandbox
        do { run = try context.runSandbox() } catch { return ("the sandbox could not run the command: \(error)", true) }
        if input["restart"]?.bool == true {
            context.log(RunEvent(.tool, "$ (bash restart)"))
            run.restartShell()
            return ("tool has been restarted.", false)
        }
        guard let command = input["command"]?.string, !command.isEmpty else { return ("no command provided.", true) }
        context.log(RunEvent(.tool, "$ " + ScriptSummary.firstLine(command)))
        do {
            let limits = context.toolCommandLimits()
            let result = try run.shell(command, limits: limits) { line in
                context.log(RunEvent(.output, line))
            }
            if result.limit == .timeout, context.cancel.reason == nil, limits.wallClockSeconds < context.commandLimits().wallClockSeconds {
                return (
                    Self.bashResult(result) + "\nthe command did not finish within \(Int(limits.wallClockSeconds)) s (command_timeout); "
                        + "it was killed and the shell restarted: cd, variables and an activated venv are gone", true
                )
            }
            if result.limit != nil { return (Self.bashResult(result) + "\nthe shell was restarted", true) }
            return (Self.bashResult(result), false)
        } catch {
            return ("the sandbox could not run the command: \(error)", true)
        }
    }

    /// The tool_result text for a finished command: its output (see `VisibleText.commandOutput`),
    /// then the limit that stopped it or a non-zero exit status.
    static func bashResult(_ result: SandboxResult) -> String {
        var text = VisibleText.commandOutput(result.output, budget: maxResultBytes)
        if let limit = result.limit {
            text += (text.isEmpty ? "" : "\n") + "[command stopped: \(limit.explanation)]"
        } else if result.exitStatus != 0 {
            text += (text.isEmpty ? "" : "\n") + "[exit status \(result.exitStatus)]"
        }
        return text.isEmpty ? "(no output)" : text
    }

    func edit(_ input: JSONValue) -> (String, Bool) {
        context.log(RunEvent(.tool, "edit: \(input["command"]?.string ?? "?") \(input["path"]?.string ?? "?")"))
        return EditorTool(files: files).run(input)
    }
}
