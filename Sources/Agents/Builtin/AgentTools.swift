// Agents: the builtin agent's tools, bash (in the sandbox) and str_replace_based_edit_tool (confined to the workspace).

import Foundation
import PatchdCore
import Sandboxing

/// Executes one tool_use block. Results are text for a tool_result block.
struct AgentTools {
    let context: AgentContext
    let files: WorkspaceFiles
    /// About what a tool result carries of a command's output, in bytes (head and tail).
    static let maxResultBytes = 30_000

    /// Anthropic's own tool definitions (the API knows their schemas).
    static let definitions: JSONValue = .array([
        .object(["type": .string("bash_20250124"), "name": .string("bash")]),
        .object(["type": .string("text_editor_20250728"), "name": .string("str_replace_based_edit_tool")]),
    ])

    func run(name: String, input: JSONValue) -> (text: String, isError: Bool) {
        switch name {
        case "bash": return bash(input)
        case "str_replace_based_edit_tool": return edit(input)
        default: return ("unknown tool '\(name)'; the tools are bash and str_replace_based_edit_tool", true)
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
