// Agents: the builtin agent's tools, bash (in the sandbox) and str_replace_based_edit_tool (confined to the workspace).
import Foundation
import PatchdCore

/// Executes one tool_use block. Results are text for a tool_result block.
struct AgentTools {
    let context: AgentContext
    let files: WorkspaceFiles
    static let maxResultCharacters = 30_000

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

    func bash(_ input: JSONValue) -> (String, Bool) {
        if input["restart"]?.bool == true { return ("bash restarted (each command runs in a fresh shell in /workspace)", false) }
        guard let command = input["command"]?.string, !command.isEmpty else { return ("bash needs a 'command'", true) }
        context.log(RunEvent(.tool, "$ " + ScriptSummary.firstLine(command)))
        var output = ""
        do {
            let result = try context.sandbox.execute(script: command, environment: [:], mounts: context.mounts,
                                                     limits: context.commandLimits(), cancel: context.cancel) { line in
                context.log(RunEvent(.output, line))
                if output.count < Self.maxResultCharacters * 2 { output += line + "\n" }
            }
            var text = Self.truncate(output)
            if let limit = result.limit { text += "\n[command stopped: \(limit.explanation)]" }
            else if result.exitStatus != 0 { text += "\n[exit status \(result.exitStatus)]" }
            return (text.isEmpty ? "(no output)" : text, false)
        } catch {
            return ("the sandbox could not run the command: \(error)", true)
        }
    }

    func edit(_ input: JSONValue) -> (String, Bool) {
        guard let command = input["command"]?.string, let path = input["path"]?.string else {
            return ("str_replace_based_edit_tool needs 'command' and 'path'", true)
        }
        context.log(RunEvent(.tool, "edit: \(command) \(path)"))
        do {
            switch command {
            case "view":
                if files.isDirectory(path) {
                    return (try files.list(path).joined(separator: "\n"), false)
                }
                let lines = try files.read(path).split(separator: "\n", omittingEmptySubsequences: false)
                var start = 1, end = lines.count
                if case .array(let range)? = input["view_range"], range.count == 2, let a = range[0].int, let b = range[1].int {
                    start = max(1, a)
                    end = b == -1 ? lines.count : min(lines.count, b)
                }
                guard start <= max(end, 1) else { return ("view_range is outside the file (\(lines.count) lines)", true) }
                let shown = (start...max(start, end)).compactMap { i in i <= lines.count ? "\(String(format: "%6d", i))\t\(lines[i - 1])" : nil }
                return (Self.truncate(shown.joined(separator: "\n")), false)
            case "create":
                guard let text = input["file_text"]?.string else { return ("create needs 'file_text'", true) }
                try files.write(path, text)
                return ("created \(path)", false)
            case "str_replace":
                guard let old = input["old_str"]?.string, !old.isEmpty else { return ("str_replace needs a non-empty 'old_str'", true) }
                let new = input["new_str"]?.string ?? ""
                let text = try files.read(path)
                let count = text.components(separatedBy: old).count - 1
                guard count == 1 else {
                    return (count == 0 ? "no match for old_str in \(path)" : "old_str matches \(count) times in \(path); include more context so it matches once", true)
                }
                try files.write(path, text.replacingOccurrences(of: old, with: new))
                return ("edited \(path)", false)
            case "insert":
                guard let line = input["insert_line"]?.int, let newText = (input["insert_text"] ?? input["new_str"])?.string else {
                    return ("insert needs 'insert_line' and 'insert_text'", true)
                }
                var lines = try files.read(path).components(separatedBy: "\n")
                guard line >= 0 && line <= lines.count else { return ("insert_line \(line) is outside the file (\(lines.count) lines)", true) }
                lines.insert(contentsOf: newText.components(separatedBy: "\n"), at: line)
                try files.write(path, lines.joined(separator: "\n"))
                return ("inserted into \(path) after line \(line)", false)
            default:
                return ("unknown command '\(command)'; use view, create, str_replace or insert", true)
            }
        } catch {
            return ("\(error)", true)
        }
    }

    static func truncate(_ text: String) -> String {
        guard text.count > maxResultCharacters else { return text }
        let head = text.prefix(maxResultCharacters / 2), tail = text.suffix(maxResultCharacters / 2)
        return head + "\n[... \(text.count - maxResultCharacters) characters truncated ...]\n" + tail
    }
}
