// UnitTests: exec command splitting: shell-style quoting, no shell syntax, bounded sizes.

import Foundation
import GitStore
import Testing

@testable import PatchdCommands

@Suite struct CommandWordsTests {
    @Test func gitClientForms() throws {
        #expect(try CommandWords.split("git-upload-pack '/demo.git'") == ["git-upload-pack", "/demo.git"])
        #expect(try CommandWords.split("git-receive-pack 'team/app'") == ["git-receive-pack", "team/app"])
        #expect(try CommandWords.split("git upload-pack \"x\"") == ["git", "upload-pack", "x"])
    }

    @Test func quotingAndEscapes() throws {
        #expect(
            try CommandWords.split(#"run start r b -- "fix the \"bug\"" it's"#.replacingOccurrences(of: "it's", with: "'it''s'"))
                == ["run", "start", "r", "b", "--", "fix the \"bug\"", "its"])
        #expect(try CommandWords.split(#"a\ b c"#) == ["a b", "c"])
        #expect(try CommandWords.split("  many   spaces  ") == ["many", "spaces"])
        #expect(try CommandWords.split("'quoted; and | data $(x)'") == ["quoted; and | data $(x)"])
        #expect(try CommandWords.split("price $5") == ["price", "$5"])
    }

    @Test(arguments: [
        "git-upload-pack 'x'; rm -rf /", "a | b", "a && b", "a `id`", "a $(id)", "a ${HOME}", "a > f", "a < f",
    ])
    func shellSyntaxRefused(_ command: String) {
        #expect(throws: CommandWords.Invalid.self) { try CommandWords.split(command) }
    }

    @Test func literalAfterDoubleDash() throws {
        #expect(
            try CommandWords.split("run start r b -- date > NOW.txt; echo $(id) | x")
                == ["run", "start", "r", "b", "--", "date", ">", "NOW.txt;", "echo", "$(id)", "|", "x"])
        #expect(throws: CommandWords.Invalid.shellSyntax(">")) { try CommandWords.split("run start r b date > x -- y") }
        #expect(throws: CommandWords.Invalid.controlCharacter) { try CommandWords.split("run start r b -- a\nb") }
    }

    @Test func controlAndSizeLimits() {
        #expect(throws: CommandWords.Invalid.controlCharacter) { try CommandWords.split("a\nb") }
        #expect(throws: CommandWords.Invalid.controlCharacter) { try CommandWords.split("a\u{1b}[31mb") }
        #expect(throws: CommandWords.Invalid.unbalancedQuote("'")) { try CommandWords.split("git-upload-pack 'x") }
        #expect(throws: CommandWords.Invalid.unbalancedQuote("\"")) { try CommandWords.split("a \"b") }
        #expect(throws: CommandWords.Invalid.trailingBackslash) { try CommandWords.split("a \\") }
        #expect(throws: CommandWords.Invalid.wordTooLong) { try CommandWords.split(String(repeating: "x", count: 10_000)) }
        #expect(throws: CommandWords.Invalid.tooLong) { try CommandWords.split(String(repeating: "x ", count: 20_000)) }
        #expect(throws: CommandWords.Invalid.empty) { try CommandWords.split("   ") }
    }
}
