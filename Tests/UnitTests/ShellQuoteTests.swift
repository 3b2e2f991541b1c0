// UnitTests: ShellQuote makes words that a POSIX shell reads back exactly.

import Foundation
import PatchdSystem
import Testing

@testable import PatchdCore

@Suite("shell quoting")
struct ShellQuoteTests {
    @Test("plain words stay as they are; everything else is single-quoted")
    func shapes() {
        #expect(ShellQuote.word("agent/feat-1.2_x") == "agent/feat-1.2_x")
        #expect(ShellQuote.word("") == "''")
        #expect(ShellQuote.word("it's") == #"'it'\''s'"#)
        #expect(ShellQuote.word("x$(touch${IFS}/tmp/pwned)") == "'x$(touch${IFS}/tmp/pwned)'")
    }

    @Test("sh reads every quoted word back byte for byte")
    func roundTrip() throws {
        let words = [
            "x$(touch${IFS}/tmp/pwned)", "it's", "a b", "`id`", "semi;colon", "*", "~root", "ü€", "'", "\"", "back\\slash", "-dash", "new\nline",
        ]
        let command = "printf '%s\\0' " + ShellQuote.command(words)
        let child = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", command], environment: ["PATH": "/usr/bin:/bin"],
            stdin: .null, stdout: .pipe, stderr: .null)
        let out = try readAll(child.stdout!.raw)
        #expect(child.wait(timeout: 10) == 0)
        let back = out.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        #expect(back == words)
    }
}

@Suite("script summary")
struct ScriptSummaryTests {
    @Test("a CRLF script is split into lines too (Swift's Character joins \\r\\n)")
    func crlf() {
        #expect(ScriptSummary.firstLine("make\r\nmake test\r\n") == "make (+1 lines)")
        #expect(ScriptSummary.firstLine("  one  \n\ntwo") == "one (+1 lines)")
        #expect(ScriptSummary.firstLine("") == "")
    }
}
