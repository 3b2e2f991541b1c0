// Agents: a text file as lines on byte boundaries, the editor's model: "\n" and "\r\n" end a line, a lone "\r" does not.

/// Lines are found on bytes, never on Swift `Character`s: "\r\n" is one Character, so a
/// Character split on "\n" sees a CRLF file as one line. Line numbers are 1-based like `cat -n`:
/// a final line terminator ends the last line (it does not start an empty one), and an empty
/// file has no lines.
struct TextLines {
    let bytes: [UInt8]
    /// Per line: where it starts, where its content ends (before "\r\n" or "\n"), where it ends.
    private(set) var starts: [Int] = []
    private(set) var contentEnds: [Int] = []
    private(set) var ends: [Int] = []
    private(set) var crlfCount = 0
    private(set) var lfCount = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var start = 0
        var i = 0
        while i < bytes.count {
            if bytes[i] == 10 {
                let crlf = i > start && bytes[i - 1] == 13
                if crlf { crlfCount += 1 } else { lfCount += 1 }
                starts.append(start); contentEnds.append(crlf ? i - 1 : i); ends.append(i + 1)
                start = i + 1
            }
            i += 1
        }
        if start < bytes.count { starts.append(start); contentEnds.append(bytes.count); ends.append(bytes.count) }
    }

    var count: Int { starts.count }

    /// Line `n`'s text without its terminator (1-based).
    func content(_ n: Int) -> ArraySlice<UInt8> { bytes[starts[n - 1]..<contentEnds[n - 1]] }

    /// Line `n`'s terminator: "\r\n", "\n", or empty for a last line without one.
    func terminator(_ n: Int) -> ArraySlice<UInt8> { bytes[contentEnds[n - 1]..<ends[n - 1]] }

    /// True when the last line has no terminator (kept so by every edit).
    var lacksFinalNewline: Bool { !bytes.isEmpty && bytes.last != 10 }

    /// Every line ending is "\r\n".
    var isCRLF: Bool { crlfCount > 0 && lfCount == 0 }

    /// The ending new lines get where no neighbour decides: the more common one, "\n" on a tie.
    var dominantEnding: [UInt8] { crlfCount > lfCount ? [13, 10] : [10] }

    /// The 1-based line holding byte `offset`.
    func line(atOffset offset: Int) -> Int {
        var low = 0, high = starts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if starts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return low + 1
    }

    /// Byte offsets where `needle` starts, left to right, not overlapping (like Python's
    /// str.count). Knuth–Morris–Pratt: linear in both, whatever the bytes.
    static func occurrences(of needle: [UInt8], in haystack: [UInt8]) -> [Int] {
        guard !needle.isEmpty, needle.count <= haystack.count else { return [] }
        var failure = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in 1..<needle.count {
            while k > 0 && needle[i] != needle[k] { k = failure[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            failure[i] = k
        }
        var found: [Int] = []
        var matched = 0
        for (i, byte) in haystack.enumerated() {
            while matched > 0 && byte != needle[matched] { matched = failure[matched - 1] }
            if byte == needle[matched] { matched += 1 }
            if matched == needle.count {
                found.append(i + 1 - needle.count)
                matched = 0  // not overlapping: start afresh after a match
            }
        }
        return found
    }

    /// `text` with every "\n" not already after "\r" turned into "\r\n".
    static func crlf(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count + text.count / 16)
        for (i, b) in text.enumerated() {
            if b == 10 && (i == 0 || text[i - 1] != 13) { out.append(13) }
            out.append(b)
        }
        return out
    }

    /// `text` with every "\r\n" turned into "\n".
    static func lf(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for (i, b) in text.enumerated() where !(b == 13 && i + 1 < text.count && text[i + 1] == 10) { out.append(b) }
        return out
    }

    /// The lines of text the model sent (insert_text), terminators removed: "\n" and "\r\n" both
    /// end a line, and a final one ends the last line rather than adding an empty one.
    static func splitInserted(_ text: [UInt8]) -> [ArraySlice<UInt8>] {
        let lines = TextLines(text)
        guard lines.count > 0 else { return [text[...]] }
        return (1...lines.count).map { lines.content($0) }
    }
}
