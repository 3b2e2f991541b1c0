// Agents: the editor tool (str_replace_based_edit_tool, text_editor_20250728) on bytes: line endings and a missing final newline kept, errors that say how to proceed.

/// Semantics follow Anthropic's published definition and reference implementation
/// (computer-use-demo `EditTool20250728`): `view` is `cat -n` (a directory: `find -maxdepth 2`
/// without hidden items), `create` refuses an existing path, `str_replace` needs exactly one
/// verbatim match, `insert` puts `insert_text` after line `insert_line` (0: at the top).
/// Where the reference loses data this does not: files are edited as bytes (tabs are not
/// expanded, "\r\n" is kept, a missing final newline stays missing), and a file that is not
/// UTF-8 is refused, never rewritten.
struct EditorTool {
    let files: WorkspaceFiles
    /// The most a view or an edit's snippet shows, in bytes.
    var maxViewBytes = 30_000
    static let snippetContext = 4
    static let commands = "view, create, str_replace, insert"

    struct Refusal: Error { let message: String }

    func run(_ input: JSONValue) -> (text: String, isError: Bool) {
        guard let command = input["command"]?.string else {
            return ("Parameter `command` is required: one of \(Self.commands)", true)
        }
        guard let path = input["path"]?.string, !path.isEmpty else {
            return ("Parameter `path` is required for command: \(command)", true)
        }
        do {
            switch command {
            case "view": return (try view(path, input["view_range"]), false)
            case "create": return (try create(path, input["file_text"]), false)
            case "str_replace": return (try strReplace(path, input["old_str"], input["new_str"]), false)
            case "insert": return (try insert(path, input["insert_line"], input["insert_text"] ?? input["new_str"]), false)
            default:
                return (
                    "Unrecognized command \(command). The allowed commands for the str_replace_based_edit_tool tool are: \(Self.commands)"
                        + (command == "undo_edit"
                            ? " (undo_edit is not part of text_editor_20250728; undo with another str_replace, or git checkout -- PATH in bash)"
                            : ""),
                    true
                )
            }
        } catch let refusal as Refusal {
            return (refusal.message, true)
        } catch let failure as WorkspaceFiles.Failure {
            return (failure.description, true)
        } catch {
            return ("\(error)", true)
        }
    }

    // MARK: Commands

    func view(_ path: String, _ range: JSONValue?) throws -> String {
        let shown = files.displayPath(path)
        let hasRange = range != nil && range != .null
        if files.isDirectory(path) {
            if hasRange { throw Refusal(message: "The `view_range` parameter is not allowed when `path` points to a directory.") }
            let (entries, truncated) = try files.list(path)
            let base = shown.hasSuffix("/") ? shown : shown + "/"
            var text = "Here's the files and directories up to 2 levels deep in \(shown), excluding hidden items:\n"
            text += entries.map { base + $0 }.joined(separator: "\n")
            if entries.isEmpty { text += "(the directory is empty, or holds only hidden items)" }
            if truncated {
                text += "\n[the listing stops at \(entries.count) entries; list deeper parts with view on a subdirectory, or with find in bash]"
            }
            return text + "\n"
        }
        let lines = try readText(path)
        let n = lines.count
        var first = 1, last = n
        if hasRange {
            guard case .array(let pair)? = range, pair.count == 2, let a = pair[0].int, let b = pair[1].int else {
                throw Refusal(
                    message: "Invalid `view_range`. It should be a list of two integers, e.g. [11, 20], or [11, -1] for line 11 to the end.")
            }
            guard n > 0 else { throw Refusal(message: "Invalid `view_range`: \(shown) is empty (0 lines); view it without view_range.") }
            guard a >= 1 && a <= n else {
                throw Refusal(
                    message: "Invalid `view_range`: [\(a), \(b)]. Its first element `\(a)` should be within the range of lines of the file: [1, \(n)]"
                )
            }
            guard b <= n else {
                throw Refusal(
                    message:
                        "Invalid `view_range`: [\(a), \(b)]. Its second element `\(b)` should be at most the number of lines in the file: `\(n)` (or -1 for the end)"
                )
            }
            guard b == -1 || b >= a else {
                throw Refusal(
                    message:
                        "Invalid `view_range`: [\(a), \(b)]. Its second element `\(b)` should be larger or equal than its first `\(a)` (or -1 for the end)"
                )
            }
            first = a
            last = b == -1 ? n : b
        }
        var text = "Here's the result of running `cat -n` on \(shown):\n"
        if n == 0 { return text + "[the file is empty]\n" }
        text += numbered(lines, first...last, continueHint: true)
        return text + notes(lines, showsLastLine: last == n)
    }

    func create(_ path: String, _ fileText: JSONValue?) throws -> String {
        guard let text = fileText?.string else { throw Refusal(message: "Parameter `file_text` is required for command: create") }
        let shown = files.displayPath(path)
        if files.isDirectory(path) { throw Refusal(message: "\(shown) is a directory; create makes files") }
        let written = Result { () throws(WorkspaceFiles.Failure) in try files.writeBytes(path, Array(text.utf8), mode: .createNew) }
        if case .failure(let failure) = written {
            guard failure.kind == .exists else { throw failure }
            throw Refusal(
                message: "File already exists at: \(shown). Cannot overwrite files using command `create`: change it with "
                    + "str_replace or insert, or replace it whole with bash (e.g. rm it first).")
        }
        return "File created successfully at: \(shown)"
    }

    func strReplace(_ path: String, _ oldValue: JSONValue?, _ newValue: JSONValue?) throws -> String {
        guard let oldText = oldValue?.string else { throw Refusal(message: "Parameter `old_str` is required for command: str_replace") }
        let shown = files.displayPath(path)
        guard !oldText.isEmpty else {
            throw Refusal(
                message: "No replacement was performed: `old_str` is empty, which would match everywhere. To add text use insert "
                    + "(insert_line 0 puts it at the top); to write a new file use create.")
        }
        let lines = try readText(path)
        let old = Array(oldText.utf8)
        let matches = TextLines.occurrences(of: old, in: lines.bytes)
        if matches.isEmpty {
            throw Refusal(message: "No replacement was performed, old_str did not appear verbatim in \(shown)." + missHint(old, lines))
        }
        if matches.count > 1 {
            let at = matches.map { lines.line(atOffset: $0) }
            throw Refusal(
                message: "No replacement was performed. Multiple occurrences of old_str in \(shown): \(matches.count), "
                    + "starting on lines \(at). Please ensure it is unique: include more of the surrounding lines in old_str.")
        }
        var new = Array((newValue?.string ?? "").utf8)
        // The file's line ending is kept: in a CRLF file, bare "\n"s in new_str become "\r\n".
        if lines.isCRLF { new = TextLines.crlf(new) }
        let at = matches[0]
        let edited = Array(lines.bytes[..<at]) + new + Array(lines.bytes[(at + old.count)...])
        try files.writeBytes(path, edited, mode: .replaceExisting)
        let after = TextLines(edited)
        let firstLine = lines.line(atOffset: at)
        let lastLine = new.isEmpty ? firstLine : after.line(atOffset: at + new.count - 1)
        return "The file \(shown) has been edited. " + snippet(after, shown, around: firstLine...max(firstLine, lastLine))
            + "Review the changes and make sure they are as expected. Edit the file again if necessary."
    }

    func insert(_ path: String, _ lineValue: JSONValue?, _ textValue: JSONValue?) throws -> String {
        guard let lineValue, lineValue != .null else { throw Refusal(message: "Parameter `insert_line` is required for command: insert") }
        guard let line = lineValue.int else {
            throw Refusal(message: "Invalid `insert_line` parameter: \(lineValue.serialized()); it should be an integer (0 inserts at the top)")
        }
        guard let text = textValue?.string else { throw Refusal(message: "Parameter `insert_text` is required for command: insert") }
        let shown = files.displayPath(path)
        let lines = try readText(path)
        let n = lines.count
        guard line >= 0 && line <= n else {
            throw Refusal(
                message: "Invalid `insert_line` parameter: \(line). It should be within the range of lines of the file: [0, \(n)] "
                    + "(0 inserts before line 1, \(n) after the last line).")
        }
        // New lines take the ending of the line they follow (of the first line at the top), else the file's usual one.
        let neighbour = line >= 1 ? line : 1
        var ending = n > 0 ? Array(lines.terminator(neighbour)) : []
        if ending.isEmpty { ending = lines.dominantEnding }
        let newLines = TextLines.splitInserted(Array(text.utf8))
        var insertion: [UInt8] = []
        let offset: Int
        if line == n && n > 0 && lines.lacksFinalNewline {
            // After a last line without a newline: it gets one, and the file still ends without.
            offset = lines.bytes.count
            for piece in newLines { insertion += ending; insertion += piece }
        } else {
            offset = line == 0 ? 0 : lines.ends[line - 1]
            for piece in newLines { insertion += piece; insertion += ending }
        }
        let edited = Array(lines.bytes[..<offset]) + insertion + Array(lines.bytes[offset...])
        try files.writeBytes(path, edited, mode: .replaceExisting)
        let after = TextLines(edited)
        return "The file \(shown) has been edited. "
            + snippet(after, "the edited file", around: (line + 1)...(line + newLines.count))
            + "Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary."
    }

    // MARK: Helpers

    /// The file as lines, refused when it is too large for the editor or not UTF-8 (bytes never rewritten).
    func readText(_ path: String) throws -> TextLines {
        let shown = files.displayPath(path)
        let read = Result { () throws(WorkspaceFiles.Failure) in try files.readBytes(path) }
        if case .failure(let failure) = read, case .tooLarge(let size) = failure.kind {
            throw Refusal(
                message: "\(shown) is \(size) bytes, more than the editor handles (\(WorkspaceFiles.maxReadBytes) bytes). "
                    + "Use bash for it: grep -n PATTERN \(shown) to find lines, sed -n '100,200p' \(shown) to show some, sed -i to change them.")
        }
        let bytes = try read.get()
        if let bad = VisibleText.firstInvalidOffset(bytes[...]) {
            let line = TextLines(bytes).line(atOffset: bad)
            let hex = String(bytes[bad], radix: 16)
            throw Refusal(
                message: "\(shown) is not UTF-8 text (byte 0x\(hex) at offset \(bad), line \(line)); the editor only views and edits "
                    + "UTF-8 and leaves this file untouched. Use bash for it (e.g. file, iconv -f latin1 -t utf-8, sed, xxd).")
        }
        return TextLines(bytes)
    }

    /// Lines `range` as `cat -n` shows them, cut at `maxViewBytes` (at a line end, or inside a
    /// single over-long line at a character boundary) with a note saying how to see the rest.
    func numbered(_ lines: TextLines, _ range: ClosedRange<Int>, continueHint: Bool) -> String {
        var out = ""
        var used = 0
        for i in range {
            let content = lines.content(i)
            let prefix = Self.lineNumber(i) + "\t"
            if used + prefix.utf8.count + content.count + 1 > maxViewBytes {
                if i == range.lowerBound {
                    // One line larger than the whole budget: show its start.
                    let cut = VisibleText.cutBefore(content, content.startIndex + max(0, maxViewBytes - prefix.utf8.count))
                    out += prefix + String(decoding: content[..<cut], as: UTF8.self) + "\n"
                    out +=
                        "[line \(i) is \(content.count) bytes; only its first \(cut - content.startIndex) are shown. "
                        + "Look at it with bash, e.g. sed -n '\(i)p' FILE | cut -c 1-2000 or fold -w 200"
                        + (i < range.upperBound ? "; the next lines with view_range [\(i + 1), \(range.upperBound)]" : "") + "]\n"
                } else {
                    out +=
                        "[shown: lines \(range.lowerBound) to \(i - 1) (the view stops at \(maxViewBytes) bytes)"
                        + (continueHint
                            ? "; see lines \(i) to \(range.upperBound) with view_range [\(i), \(range.upperBound)], or find lines with grep -n in bash]\n"
                            : "]\n")
                }
                return out
            }
            out += prefix + String(decoding: content, as: UTF8.self) + "\n"
            used += prefix.utf8.count + content.count + 1
        }
        return out
    }

    /// What the numbers do not show: the line endings, a missing final newline.
    func notes(_ lines: TextLines, showsLastLine: Bool) -> String {
        var out = ""
        if lines.isCRLF {
            out += "[the file's lines end with \\r\\n (CRLF), not shown above; old_str must use \\r\\n line breaks too]\n"
        } else if lines.crlfCount > 0 {
            out += "[the file mixes line endings: \(lines.crlfCount) lines end with \\r\\n (CRLF), \(lines.lfCount) with \\n]\n"
        }
        if showsLastLine && lines.lacksFinalNewline { out += "[no newline at the end of the file]\n" }
        return out
    }

    func snippet(_ lines: TextLines, _ name: String, around changed: ClosedRange<Int>) -> String {
        guard lines.count > 0 else { return "The file is now empty.\n" }
        let first = max(1, changed.lowerBound - Self.snippetContext)
        let last = min(lines.count, changed.upperBound + Self.snippetContext)
        guard first <= last else { return "" }
        return "Here's the result of running `cat -n` on a snippet of \(name):\n" + numbered(lines, first...last, continueHint: false)
            + notes(lines, showsLastLine: last == lines.count)
    }

    /// Why old_str may not have matched: other line endings, other indentation.
    func missHint(_ old: [UInt8], _ lines: TextLines) -> String {
        if lines.crlfCount > 0, old.contains(10) {
            let converted = TextLines.crlf(old)
            let hits = TextLines.occurrences(of: converted, in: lines.bytes)
            if !hits.isEmpty {
                return " The file's lines end with \\r\\n (CRLF) but old_str's line breaks are \\n: written with \\r\\n, old_str occurs "
                    + "\(hits.count == 1 ? "once" : "\(hits.count) times"), starting on line\(hits.count == 1 ? "" : "s") "
                    + "\(hits.map { String(lines.line(atOffset: $0)) }.joined(separator: ", ")). Send old_str (and new_str) with \\r\\n line breaks."
            }
        }
        if lines.lfCount > 0, old.contains(13) {
            let hits = TextLines.occurrences(of: TextLines.lf(old), in: lines.bytes)
            if !hits.isEmpty {
                return " old_str has \\r\\n line breaks but the file's are \\n: written with \\n, old_str occurs \(hits.count) time(s), "
                    + "starting on line(s) \(hits.map { String(lines.line(atOffset: $0)) }.joined(separator: ", "))."
            }
        }
        // The first non-blank line of old_str without its indentation, searched alone.
        let firstLine = TextLines.splitInserted(old).map { $0.drop { $0 == 32 || $0 == 9 } }
            .map { piece in piece.reversed().drop { $0 == 32 || $0 == 9 || $0 == 13 }.reversed() }
            .first { !$0.isEmpty }
        if let firstLine {
            let hits = TextLines.occurrences(of: Array(firstLine), in: lines.bytes)
            if !hits.isEmpty {
                let at = Array(Set(hits.map { lines.line(atOffset: $0) })).sorted().prefix(10)
                return
                    " Its first line (without indentation) appears on line\(at.count == 1 ? "" : "s") \(at.map(String.init).joined(separator: ", ")): "
                    + "compare the whitespace (tabs or spaces, trailing spaces) and the lines after it with a view of those lines."
            }
        }
        return " View the file to copy the text exactly."
    }

    /// `cat -n`'s line number column: right-aligned in 6.
    static func lineNumber(_ n: Int) -> String {
        let digits = String(n)
        return digits.count >= 6 ? digits : String(repeating: " ", count: 6 - digits.count) + digits
    }
}
