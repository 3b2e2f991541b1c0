// UnitTests: the builtin agent's bash tool output (head and tail with exact counts, UTF-8 kept whole, control characters visible, linear time).

import Foundation
import PatchdCore
import PatchdSystem
import Synchronization
import Testing

@testable import Agents
@testable import Sandboxing

@Suite struct AgentToolsBashTests {
    /// The parts of a cut result: what precedes the marker line, the marker, what follows it.
    static func parts(_ text: String) throws -> (head: String, marker: String, tail: String) {
        let lines = text.components(separatedBy: "\n")
        let index = try #require(lines.firstIndex { $0.hasPrefix("[... ") && $0.hasSuffix(" ...]") }, "no marker in \(text.prefix(200))")
        return (lines[..<index].joined(separator: "\n"), lines[index], lines[(index + 1)...].joined(separator: "\n"))
    }

    @Test func longOutputKeepsHeadAndTailWithExactCounts() throws {
        let ws = try ToolWorkspace()
        let result = ws.bash("seq 1 20000; echo END-MARK")
        #expect(!result.isError)
        let full = (1...20000).map(String.init).joined(separator: "\n") + "\nEND-MARK"
        let (head, marker, tail) = try Self.parts(result.text)
        #expect(head.hasPrefix("1\n2\n3\n"))
        #expect(tail.hasSuffix("19999\n20000\nEND-MARK"))
        // Cut on line boundaries: the marker counts whole lines, and the parts add up to the output.
        #expect(full.hasPrefix(head + "\n") && full.hasSuffix("\n" + tail))
        let leftOut = full.utf8.count - head.utf8.count - 1 - tail.utf8.count - 1 + 1
        let leftOutLines = full.split(separator: "\n").count - head.split(separator: "\n").count - tail.split(separator: "\n").count
        #expect(marker == "[... \(leftOutLines) lines (\(leftOut) bytes) of output left out ...]", "\(marker)")
        #expect(result.text.utf8.count < 31_000)
    }

    @Test func oneLongUTF8LineIsNeitherSplitNorBroken() throws {
        let ws = try ToolWorkspace()
        // 30,000 × "€" (3 bytes each) on one 90 KB line.
        let result = ws.bash("yes '€' | tr -d '\\n' | head -c 90000; echo")
        #expect(!result.text.contains("\u{FFFD}"))
        let (head, marker, tail) = try Self.parts(result.text)
        #expect(!head.isEmpty && head.allSatisfy { $0 == "€" }, "the head has no line break and no broken character")
        #expect(!tail.isEmpty && tail.allSatisfy { $0 == "€" })
        // The output is 90,001 bytes; the final newline is shown (then dropped) with the tail.
        let leftOut = 90_001 - head.utf8.count - (tail.utf8.count + 1)
        #expect(marker == "[... \(leftOut) bytes of output left out, 0 line breaks among them ...]", "\(marker)")
        #expect(leftOut % 3 == 0, "only whole characters are left out")
    }

    @Test func controlCharactersAndInvalidBytesAreVisible() throws {
        let ws = try ToolWorkspace()
        let result = ws.bash(#"printf 'a\033[31mred\033[0m\r\n\000\177\302\233\377end\tx\n'"#)
        #expect(result.text == "a^[[31mred^[[0m^M\n^@^?<U+009B>\\xffend\tx")
        #expect(!result.text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" })
    }

    @Test func manyLinesTakeLinearTime() throws {
        let ws = try ToolWorkspace()
        let started = MonotonicClock.now
        let result = ws.bash("seq 1 200000")
        let seconds = MonotonicClock.now - started
        print("bash tool: seq 1 200000 took \(String(format: "%.3f", seconds)) s")
        #expect(seconds < 2, "\(seconds) s")
        let (head, marker, tail) = try Self.parts(result.text)
        #expect(head.hasPrefix("1\n2\n") && tail.hasSuffix("199999\n200000"))
        #expect(marker.hasSuffix("lines (\(1_288_895 - head.utf8.count - tail.utf8.count - 2) bytes) of output left out ...]"), "\(marker)")
    }

    @Test func statusAndEmptyOutput() throws {
        let ws = try ToolWorkspace()
        #expect(ws.bash("echo hi; exit 3").text == "hi\n[exit status 3]")
        #expect(ws.bash("true").text == "(no output)")
        #expect(ws.bash("exit 4").text == "[exit status 4]")
        let missing = ws.tools.run(name: "bash", input: .object([:]))
        #expect(missing.isError && missing.text == "no command provided.")
    }

    @Test func theRunLogStillGetsEachLine() throws {
        let lines = Mutex<[String]>([])
        let ws = try ToolWorkspace { event in if event.kind == .output { lines.withLock { $0.append(event.text) } } }
        _ = ws.bash("printf 'one\\ntwo\\n'")
        #expect(lines.withLock { $0 } == ["one", "two"])
    }
}
