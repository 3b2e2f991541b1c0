// UnitTests: the raw output capture (head, tail, counts) and how bytes are shown to the model (exact strings, small budgets).

import Testing

@testable import Agents
@testable import Runs
@testable import Sandboxing

@Suite struct VisibleTextTests {
    @Test func captureKeepsHeadTailAndCountsAcrossManyAppends() {
        var capture = OutputCapture(keep: 8)
        let stream = Array("line1\nline2\nline3\nline4\nline5\n".utf8)
        for byte in stream { capture.append([byte]) }
        #expect(capture.head == Array("line1\nli".utf8))
        #expect(Array(capture.tail) == Array("4\nline5\n".utf8))
        #expect(capture.totalBytes == stream.count && capture.lineBreaks == 5)
        #expect(capture.omittedBytes == stream.count - 16)
        var small = OutputCapture(keep: 8)
        small.append(Array("abc".utf8))
        #expect(small.head == Array("abc".utf8) && small.tail.isEmpty && small.omittedBytes == 0)
    }

    @Test func headAndTailOnLineBoundaries() {
        var capture = OutputCapture()
        capture.append(Array((1...100).map { "l\($0)\n" }.joined().utf8))
        // Budget 40: about 20 bytes of head and of tail, cut back to whole lines.
        #expect(
            VisibleText.commandOutput(capture, budget: 40)
                == "l1\nl2\nl3\nl4\nl5\nl6\n[... 90 lines (357 bytes) of output left out ...]\nl97\nl98\nl99\nl100")
    }

    @Test func cutsNeverSplitACharacter() {
        var capture = OutputCapture()
        capture.append(Array(String(repeating: "é", count: 50).utf8))  // 100 bytes, no newline
        #expect(
            VisibleText.commandOutput(capture, budget: 21) == String(repeating: "é", count: 5)
                + "\n[... 80 bytes of output left out, 0 line breaks among them ...]\n" + String(repeating: "é", count: 5))
    }

    @Test func invalidBytesAndControlsAreShownNotDecodedAway() {
        // Overlong "/", a UTF-16 surrogate, a byte past U+10FFFF, a lone continuation byte, a cut-off sequence.
        let bytes: [UInt8] = [0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xF5, 0x80, 0x41, 0xE2, 0x82]
        #expect(VisibleText.render(bytes[...]) == "\\xc0\\xaf\\xed\\xa0\\x80\\xf5\\x80A\\xe2\\x82")
        #expect(VisibleText.render(Array("\u{1B}[2J\u{7}\r\n\u{85}ok😀".utf8)[...]) == "^[[2J^G^M\n<U+0085>ok😀")
        #expect(VisibleText.render(Array("a\nb".utf8)[...], keepNewlines: false) == "a^Jb")
    }

    @Test func editorLinesSplitOnBytes() {
        let lines = TextLines(Array("one\r\ntwo\nthree\rstill three".utf8))
        #expect(lines.count == 3)
        #expect(String(decoding: lines.content(3), as: UTF8.self) == "three\rstill three")
        #expect(Array(lines.terminator(1)) == [13, 10] && Array(lines.terminator(2)) == [10] && lines.terminator(3).isEmpty)
        #expect(lines.lacksFinalNewline && !lines.isCRLF && lines.crlfCount == 1 && lines.lfCount == 1)
        #expect(TextLines([]).count == 0 && TextLines(Array("\n".utf8)).count == 1)
        #expect(TextLines.occurrences(of: Array("aa".utf8), in: Array("aaaaa".utf8)) == [0, 2])
        #expect(TextLines.occurrences(of: Array("abab".utf8), in: Array("abababab".utf8)) == [0, 4])
    }
}
