// Agents: bytes shown to the model as text: UTF-8 never split, invalid bytes and control characters made visible, head and tail with exact counts.

import Sandboxing

/// Turns raw bytes (command output, file names) into text for a tool result without losing
/// or inventing anything: every valid UTF-8 character is kept whole, a byte that is not UTF-8
/// shows as `\xNN` (never U+FFFD), and control characters show in caret notation like
/// `cat -v` (ESC as `^[`, CR as `^M`), so no terminal escape sequence reaches the model raw.
enum VisibleText {
    /// The length of the valid UTF-8 sequence starting at `i` (RFC 3629: no overlong forms, no
    /// surrogates, nothing past U+10FFFF), or nil when none starts there.
    static func sequenceLength(_ bytes: ArraySlice<UInt8>, at i: Int) -> Int? {
        let b0 = bytes[i]
        if b0 < 0x80 { return 1 }
        func continuation(_ k: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            i + k < bytes.endIndex && (low...high).contains(bytes[i + k])
        }
        switch b0 {
        case 0xC2...0xDF: return continuation(1) ? 2 : nil
        case 0xE0: return continuation(1, 0xA0) && continuation(2) ? 3 : nil
        case 0xED: return continuation(1, 0x80, 0x9F) && continuation(2) ? 3 : nil
        case 0xE1...0xEC, 0xEE...0xEF: return continuation(1) && continuation(2) ? 3 : nil
        case 0xF0: return continuation(1, 0x90) && continuation(2) && continuation(3) ? 4 : nil
        case 0xF1...0xF3: return continuation(1) && continuation(2) && continuation(3) ? 4 : nil
        case 0xF4: return continuation(1, 0x80, 0x8F) && continuation(2) && continuation(3) ? 4 : nil
        default: return nil
        }
    }

    /// The offset of the first byte that starts no valid UTF-8 sequence, or nil when all are UTF-8.
    static func firstInvalidOffset(_ bytes: ArraySlice<UInt8>) -> Int? {
        var i = bytes.startIndex
        while i < bytes.endIndex {
            guard let n = sequenceLength(bytes, at: i) else { return i }
            i += n
        }
        return nil
    }

    static let hexDigits = Array("0123456789abcdef".utf8)
    static let upperHexDigits = Array("0123456789ABCDEF".utf8)

    /// Text for `bytes`: tab and newline kept as they are (newline too shown as `^J` when
    /// `keepNewlines` is false, for file names), everything else invisible made visible.
    static func render(_ bytes: ArraySlice<UInt8>, keepNewlines: Bool = true) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            guard let n = sequenceLength(bytes, at: i) else {
                out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]]
                i += 1
                continue
            }
            if n == 1 {
                if b == 0x09 || (b == 0x0A && keepNewlines) || (0x20..<0x7F).contains(b) {
                    out.append(b)
                } else if b == 0x7F {
                    out += [UInt8(ascii: "^"), UInt8(ascii: "?")]
                } else {
                    out += [UInt8(ascii: "^"), b + 0x40]
                }
            } else if n == 2 && b == 0xC2 && bytes[i + 1] < 0xA0 {
                // C1 controls (U+0080–U+009F): CSI (U+009B) starts escape sequences on some terminals.
                let c = bytes[i + 1]
                out += Array("<U+00".utf8) + [upperHexDigits[Int(c >> 4)], upperHexDigits[Int(c & 15)], UInt8(ascii: ">")]
            } else {
                out += bytes[i..<(i + n)]
            }
            i += n
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The largest cut ≤ `limit` that does not split a UTF-8 character (steps back over at most
    /// three continuation bytes; invalid bytes are shown as \xNN either way, so any cut among them is safe).
    static func cutBefore(_ bytes: ArraySlice<UInt8>, _ limit: Int) -> Int {
        var cut = min(limit, bytes.endIndex)
        var steps = 0
        while cut > bytes.startIndex, cut < bytes.endIndex, steps < 3, bytes[cut] & 0xC0 == 0x80 { cut -= 1; steps += 1 }
        return cut
    }

    /// The smallest cut ≥ `limit` that does not split a UTF-8 character.
    static func cutAfter(_ bytes: ArraySlice<UInt8>, _ limit: Int) -> Int {
        var cut = max(limit, bytes.startIndex)
        var steps = 0
        while cut < bytes.endIndex, steps < 3, bytes[cut] & 0xC0 == 0x80 { cut += 1; steps += 1 }
        return cut
    }

    static func lineBreaks(_ bytes: ArraySlice<UInt8>) -> Int {
        var n = 0
        for b in bytes where b == 10 { n += 1 }
        return n
    }

    /// A command's output for the model: all of it when it fits in `budget` bytes, else about
    /// `budget / 2` bytes of head and of tail around a line saying exactly what was left out.
    /// Cuts fall on line ends when one is near, else on UTF-8 boundaries; one final newline is
    /// dropped (the reference tool does the same). Linear in what is shown.
    static func commandOutput(_ capture: OutputCapture, budget: Int = 30_000) -> String {
        let headBudget = budget / 2, tailBudget = budget - budget / 2
        // With nothing omitted the whole output is known: head and tail are cut from one array.
        let whole = capture.omittedBytes == 0 ? capture.head + capture.tail : nil
        if let whole, whole.count <= budget { return dropFinalNewline(render(whole[...])) }
        let front = whole.map { $0[...] } ?? capture.head[...]
        let back = whole.map { $0[...] } ?? capture.tail

        var headEnd = cutBefore(front, front.startIndex + headBudget)
        if let newline = front[front.startIndex..<headEnd].lastIndex(of: 10), newline + 1 - front.startIndex >= headBudget / 2 {
            headEnd = newline + 1
        }
        var tailStart = cutAfter(back, back.endIndex - tailBudget)
        if tailStart > back.startIndex, back[tailStart - 1] != 10,
            let newline = back[tailStart...].firstIndex(of: 10), newline + 1 - tailStart <= tailBudget / 2, newline + 1 < back.endIndex
        {
            tailStart = newline + 1
        }
        let shownHead = front[..<headEnd], shownTail = back[tailStart...]
        let omittedBytes = capture.totalBytes - shownHead.count - shownTail.count
        let omittedBreaks = capture.lineBreaks - lineBreaks(shownHead) - lineBreaks(shownTail)
        let onLineBoundaries = (shownHead.isEmpty || shownHead.last == 10) && tailStart > back.startIndex && back[tailStart - 1] == 10
        let marker =
            onLineBoundaries
            ? "[... \(omittedBreaks) lines (\(omittedBytes) bytes) of output left out ...]"
            : "[... \(omittedBytes) bytes of output left out, \(omittedBreaks) line breaks among them ...]"
        var text = render(shownHead)
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        return text + marker + "\n" + dropFinalNewline(render(shownTail))
    }

    static func dropFinalNewline(_ text: String) -> String {
        text.utf8.last == 10 ? String(text.utf8.dropLast())! : text
    }
}
