// UnitTests: the builtin agent's editor (str_replace_based_edit_tool) against Anthropic's definition: CRLF, edges, confinement.

import Foundation
import Testing

@testable import Agents
@testable import Runs

@Suite struct EditorToolTests {
    static func view(_ path: String, _ range: [Int]? = nil) -> [String: JSONValue] {
        var input: [String: JSONValue] = ["command": .string("view"), "path": .string(path)]
        if let range { input["view_range"] = .array(range.map { .number(Double($0)) }) }
        return input
    }

    static func replace(_ path: String, _ old: String, _ new: String) -> [String: JSONValue] {
        ["command": .string("str_replace"), "path": .string(path), "old_str": .string(old), "new_str": .string(new)]
    }

    static func insert(_ path: String, _ line: Double, _ text: String) -> [String: JSONValue] {
        ["command": .string("insert"), "path": .string(path), "insert_line": .number(line), "insert_text": .string(text)]
    }

    static func create(_ path: String, _ text: String) -> [String: JSONValue] {
        ["command": .string("create"), "path": .string(path), "file_text": .string(text)]
    }

    // MARK: CRLF files (Swift sees "\r\n" as one Character; lines are split on bytes)

    @Test func crlfFileViewShowsEachLine() throws {
        let ws = try ToolWorkspace()
        try ws.write("w.txt", "one\r\ntwo\r\n")
        let all = ws.edit(Self.view("/workspace/w.txt"))
        #expect(!all.isError)
        #expect(
            all.text == "Here's the result of running `cat -n` on /workspace/w.txt:\n     1\tone\n     2\ttwo\n"
                + "[the file's lines end with \\r\\n (CRLF), not shown above; old_str must use \\r\\n line breaks too]\n")
        let second = ws.edit(Self.view("w.txt", [2, 2]))
        #expect(!second.isError, "\(second.text)")
        #expect(
            second.text == "Here's the result of running `cat -n` on /workspace/w.txt:\n     2\ttwo\n"
                + "[the file's lines end with \\r\\n (CRLF), not shown above; old_str must use \\r\\n line breaks too]\n")
    }

    @Test func crlfInsertKeepsTheFilesLineEnding() throws {
        let ws = try ToolWorkspace()
        try ws.write("w.txt", "one\r\ntwo\r\n")
        let result = ws.edit(Self.insert("w.txt", 1, "new"))
        #expect(!result.isError, "\(result.text)")
        #expect(try ws.text("w.txt") == "one\r\nnew\r\ntwo\r\n")
        // Text sent with "\n" (or "\r\n") and a final newline still becomes whole CRLF lines.
        _ = ws.edit(Self.insert("w.txt", 3, "x\ny\n"))
        #expect(try ws.text("w.txt") == "one\r\nnew\r\ntwo\r\nx\r\ny\r\n")
    }

    @Test func lfOldStrInCrlfFileSaysSo() throws {
        let ws = try ToolWorkspace()
        try ws.write("w.txt", "zero\r\none\r\ntwo\r\n")
        let result = ws.edit(Self.replace("w.txt", "one\ntwo", "uno\ndos"))
        #expect(result.isError)
        #expect(result.text.contains("No replacement was performed"))
        #expect(result.text.contains("\\r\\n (CRLF)"), "\(result.text)")
        #expect(result.text.contains("old_str occurs once, starting on line 2"), "\(result.text)")
        #expect(try ws.text("w.txt") == "zero\r\none\r\ntwo\r\n")
        // With "\r\n" it matches; a bare "\n" in new_str takes the file's "\r\n".
        let fixed = ws.edit(Self.replace("w.txt", "one\r\ntwo", "uno\ndos"))
        #expect(!fixed.isError, "\(fixed.text)")
        #expect(try ws.text("w.txt") == "zero\r\nuno\r\ndos\r\n")
    }

    // MARK: view

    @Test func viewDirectoryListsTwoLevelsWithoutHiddenItems() throws {
        let ws = try ToolWorkspace()
        for path in ["d/a.txt", "d/sub/b.txt", "d/sub/deeper/c.txt", "d/sub/deeper/deepest/d.txt", "d/.hidden/e.txt", "d/.f"] {
            try ws.write(path, "x\n")
        }
        let result = ws.edit(Self.view("/workspace/d"))
        #expect(!result.isError)
        #expect(
            result.text == """
                Here's the files and directories up to 2 levels deep in /workspace/d, excluding hidden items:
                /workspace/d/a.txt
                /workspace/d/sub/
                /workspace/d/sub/b.txt
                /workspace/d/sub/deeper/

                """)
        let ranged = ws.edit(Self.view("/workspace/d", [1, 2]))
        #expect(ranged.isError && ranged.text.contains("not allowed when `path` points to a directory"))
        // The workspace itself, and .git is never listed.
        try ws.write(".git/config", "x\n")
        let root = ws.edit(Self.view("/workspace"))
        #expect(root.text.hasPrefix("Here's the files and directories up to 2 levels deep in /workspace, excluding hidden items:\n/workspace/d/\n"))
        #expect(!root.text.contains(".git"))
    }

    @Test func viewEmptyFile() throws {
        let ws = try ToolWorkspace()
        try ws.write("e.txt", "")
        let result = ws.edit(Self.view("e.txt"))
        #expect(!result.isError)
        #expect(result.text == "Here's the result of running `cat -n` on /workspace/e.txt:\n[the file is empty]\n")
        let ranged = ws.edit(Self.view("e.txt", [1, 1]))
        #expect(ranged.isError && ranged.text.contains("is empty (0 lines)"))
        #expect(!ws.edit(Self.insert("e.txt", 0, "first")).isError)
        #expect(try ws.text("e.txt") == "first\n")
    }

    @Test func viewRangeEdges() throws {
        let ws = try ToolWorkspace()
        try ws.write("r.txt", "a\nb\nc\n")
        #expect(ws.edit(Self.view("r.txt", [2, -1])).text == "Here's the result of running `cat -n` on /workspace/r.txt:\n     2\tb\n     3\tc\n")
        #expect(ws.edit(Self.view("r.txt", [3, 3])).text.hasSuffix("     3\tc\n"))
        let zero = ws.edit(Self.view("r.txt", [0, 2]))
        #expect(zero.isError && zero.text.contains("should be within the range of lines of the file: [1, 3]"))
        let past = ws.edit(Self.view("r.txt", [1, 4]))
        #expect(past.isError && past.text.contains("at most the number of lines in the file: `3`"))
        let backwards = ws.edit(Self.view("r.txt", [3, 2]))
        #expect(backwards.isError && backwards.text.contains("larger or equal than its first"))
        let malformed = ws.edit(["command": .string("view"), "path": .string("r.txt"), "view_range": .array([.string("1"), .number(2)])])
        #expect(malformed.isError && malformed.text.contains("list of two integers"))
        let fractional = ws.edit(["command": .string("view"), "path": .string("r.txt"), "view_range": .array([.number(1.5), .number(2)])])
        #expect(fractional.isError)
    }

    @Test func noFinalNewlineIsShownAndKeptAfterEdits() throws {
        let ws = try ToolWorkspace()
        try ws.write("n.txt", "one\ntwo")
        #expect(
            ws.edit(Self.view("n.txt")).text
                == "Here's the result of running `cat -n` on /workspace/n.txt:\n     1\tone\n     2\ttwo\n[no newline at the end of the file]\n")
        #expect(!ws.edit(Self.replace("n.txt", "two", "three")).isError)
        #expect(try ws.text("n.txt") == "one\nthree")
        #expect(!ws.edit(Self.insert("n.txt", 2, "four")).isError)
        #expect(try ws.text("n.txt") == "one\nthree\nfour")
        #expect(!ws.edit(Self.insert("n.txt", 1, "1.5")).isError)
        #expect(try ws.text("n.txt") == "one\n1.5\nthree\nfour")
    }

    @Test func nonUTF8FileIsRefusedAndNeverRewritten() throws {
        let ws = try ToolWorkspace()
        let latin1: [UInt8] = Array("caf".utf8) + [0xE9] + Array("\nline two\n".utf8)
        try ws.write("l.txt", latin1)
        for input in [Self.view("l.txt"), Self.replace("l.txt", "line", "LINE"), Self.insert("l.txt", 0, "x")] {
            let result = ws.edit(input)
            #expect(result.isError)
            #expect(result.text.contains("is not UTF-8 text (byte 0xe9 at offset 3, line 1)"), "\(result.text)")
            #expect(try ws.bytes("l.txt") == latin1)
        }
    }

    @Test func largeFilesAreCutWithAWayToSeeTheRest() throws {
        let ws = try ToolWorkspace()
        let lines = (1...100_000).map { "line \($0)" }
        try ws.write("big.txt", lines.joined(separator: "\n") + "\n")
        let first = ws.edit(Self.view("big.txt"))
        #expect(!first.isError)
        #expect(first.text.utf8.count < 31_000)
        let note = try #require(first.text.split(separator: "\n").last.map(String.init))
        #expect(note.hasPrefix("[shown: lines 1 to ") && note.contains("(the view stops at 30000 bytes); see lines "), "\(note)")
        // The pointer works: view_range [next, end] continues where the view stopped.
        let shownLast = try #require(Int(note.dropFirst("[shown: lines 1 to ".count).prefix { $0.isNumber }))
        #expect(
            note.hasSuffix("see lines \(shownLast + 1) to 100000 with view_range [\(shownLast + 1), 100000], or find lines with grep -n in bash]"))
        let next = ws.edit(Self.view("big.txt", [shownLast + 1, -1]))
        #expect(
            next.text.hasPrefix(
                "Here's the result of running `cat -n` on /workspace/big.txt:\n" + EditorTool.lineNumber(shownLast + 1) + "\tline \(shownLast + 1)\n")
        )
        // One enormous line: its start, and how to see it.
        try ws.write("wide.txt", String(repeating: "€", count: 40_000))
        let wide = ws.edit(Self.view("wide.txt"))
        #expect(!wide.isError && !wide.text.contains("\u{FFFD}"))
        #expect(wide.text.contains("[line 1 is 120000 bytes; only its first"), "\(wide.text.suffix(300))")
        // Past what the editor reads at all: refused, pointing at bash.
        try ws.write("huge.txt", [UInt8](repeating: 0x61, count: WorkspaceFiles.maxReadBytes + 1))
        let huge = ws.edit(Self.view("huge.txt"))
        #expect(huge.isError && huge.text.contains("more than the editor handles") && huge.text.contains("sed -n"))
    }

    // MARK: str_replace

    @Test func strReplaceNoMatchMultipleMatchesAndEmptyOldStr() throws {
        let ws = try ToolWorkspace()
        try ws.write("s.txt", "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n")
        let none = ws.edit(Self.replace("s.txt", "w = 9", "w = 10"))
        #expect(none.isError && none.text.hasPrefix("No replacement was performed, old_str did not appear verbatim in /workspace/s.txt."))
        let many = ws.edit(Self.replace("s.txt", "x = 1", "x = 2"))
        #expect(many.isError)
        #expect(many.text.contains("Multiple occurrences of old_str in /workspace/s.txt: 3, starting on lines [1, 3, 5]"), "\(many.text)")
        let multiLine = ws.edit(Self.replace("s.txt", "1\n", "one\n"))
        #expect(multiLine.text.contains("starting on lines [1, 3, 5]"))
        let empty = ws.edit(Self.replace("s.txt", "", "a"))
        #expect(empty.isError && empty.text.contains("`old_str` is empty"))
        let missing = ws.edit(["command": .string("str_replace"), "path": .string("s.txt")])
        #expect(missing.isError && missing.text.contains("Parameter `old_str` is required"))
        #expect(try ws.text("s.txt") == "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n")
    }

    @Test func strReplaceKeepsTabsAndShowsASnippet() throws {
        let ws = try ToolWorkspace()
        try ws.write("t.py", "def f():\n\treturn 1\n")
        // Spaces where the file has a tab: no match, and the hint names the line.
        let spaces = ws.edit(Self.replace("t.py", "    return 1", "    return 2"))
        #expect(spaces.isError && spaces.text.contains("appears on line 2"), "\(spaces.text)")
        let ok = ws.edit(Self.replace("t.py", "return 1", "return 2"))
        #expect(!ok.isError)
        #expect(
            ok.text == "The file /workspace/t.py has been edited. Here's the result of running `cat -n` on a snippet of /workspace/t.py:\n"
                + "     1\tdef f():\n     2\t\treturn 2\n"
                + "Review the changes and make sure they are as expected. Edit the file again if necessary.")
        #expect(try ws.text("t.py") == "def f():\n\treturn 2\n")
        // Multi-byte text around the match is kept byte for byte ("e" + combining accent is two scalars).
        try ws.write("u.txt", "cafe\u{301} café\n")
        #expect(!ws.edit(Self.replace("u.txt", "e\u{301}", "E")).isError)
        #expect(try ws.text("u.txt") == "cafE café\n")
    }

    // MARK: create and insert

    @Test func createRefusesAnExistingPath() throws {
        let ws = try ToolWorkspace()
        try ws.write("c.txt", "keep\n")
        let result = ws.edit(Self.create("/workspace/c.txt", "new\n"))
        #expect(result.isError && result.text.hasPrefix("File already exists at: /workspace/c.txt. Cannot overwrite files using command `create`"))
        #expect(try ws.text("c.txt") == "keep\n")
        let made = ws.edit(Self.create("/workspace/new/dir/n.txt", "a\r\nb"))
        #expect(made.text == "File created successfully at: /workspace/new/dir/n.txt")
        #expect(try ws.text("new/dir/n.txt") == "a\r\nb")
        let onDirectory = ws.edit(Self.create("new", "x"))
        #expect(onDirectory.isError)
    }

    @Test func insertLineBounds() throws {
        let ws = try ToolWorkspace()
        try ws.write("i.txt", "a\nb\n")
        #expect(!ws.edit(Self.insert("i.txt", 0, "top")).isError)
        #expect(try ws.text("i.txt") == "top\na\nb\n")
        #expect(!ws.edit(Self.insert("i.txt", 3, "end\n")).isError)
        #expect(try ws.text("i.txt") == "top\na\nb\nend\n")
        let past = ws.edit(Self.insert("i.txt", 5, "x"))
        #expect(past.isError && past.text.contains("It should be within the range of lines of the file: [0, 4]"), "\(past.text)")
        let negative = ws.edit(Self.insert("i.txt", -1, "x"))
        #expect(negative.isError && negative.text.contains("[0, 4]"))
        let fractional = ws.edit(Self.insert("i.txt", 1.5, "x"))
        #expect(fractional.isError && fractional.text.contains("should be an integer"))
        let noText = ws.edit(["command": .string("insert"), "path": .string("i.txt"), "insert_line": .number(1)])
        #expect(noText.isError && noText.text.contains("Parameter `insert_text` is required"))
        #expect(try ws.text("i.txt") == "top\na\nb\nend\n")
        let undo = ws.edit(["command": .string("undo_edit"), "path": .string("i.txt")])
        #expect(undo.isError && undo.text.contains("view, create, str_replace, insert"))
    }

    // MARK: confinement

    @Test func pathsOutsideTheWorkspaceAndSymlinksStayRefused() throws {
        let ws = try ToolWorkspace()
        let outside = ws.dir + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "secret\n".write(toFile: outside + "/secret.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: ws.workspace + "/link", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: ws.workspace + "/file-link", withDestinationPath: outside + "/secret.txt")
        let attempts: [[String: JSONValue]] = [
            Self.view("/etc/passwd"), Self.view("../outside/secret.txt"), Self.view("/workspace/../outside/secret.txt"),
            Self.view("link/secret.txt"), Self.view("file-link"), Self.view("link"),
            Self.replace("link/secret.txt", "secret", "changed"), Self.replace("file-link", "secret", "changed"),
            Self.insert("file-link", 0, "changed"), Self.create("link/new.txt", "x"), Self.create("../outside/new.txt", "x"),
            Self.create(".git/hooks/post-checkout", "x"),
            // C sees a component only up to a NUL: "..\0x" would be ".." to openat.
            Self.view("..\u{0}x/outside/secret.txt"), Self.create("..\u{0}x/outside/new.txt", "x"),
        ]
        for input in attempts {
            let result = ws.edit(input)
            #expect(result.isError, "\(input) → \(result.text)")
            #expect(!result.text.contains("secret\n"), "\(input) → \(result.text)")
        }
        #expect(try String(contentsOfFile: outside + "/secret.txt", encoding: .utf8) == "secret\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["secret.txt"])
    }
}
