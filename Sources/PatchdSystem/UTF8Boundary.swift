// PatchdSystem: where a byte buffer may be cut without splitting a UTF-8 character.

package enum UTF8Boundary {
    /// The largest index ≤ `from + maxBytes` (and > `from` when possible) at which `bytes` can be
    /// cut without splitting a UTF-8 sequence: never before a continuation byte (10xxxxxx).
    /// Invalid input (a run of continuation bytes longer than a character) is cut at `maxBytes`.
    package static func cut<C: RandomAccessCollection>(_ bytes: C, from: C.Index, maxBytes: Int) -> C.Index
    where C.Element == UInt8, C.Index == Int {
        let limit = min(bytes.endIndex, from + maxBytes)
        guard limit < bytes.endIndex else { return limit }
        // A character is at most 4 bytes: step back over at most 3 continuation bytes to its lead byte.
        var cut = limit
        while cut > from, limit - cut < 3, bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
        return (cut == from || bytes[cut] & 0xC0 == 0x80) ? limit : cut
    }
}
