// Sandboxing: a command's raw output as a caller that shows it needs it: the first and last bytes exactly, and counts of all.

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the first `keep` bytes and the last `keep` bytes of a stream (never lossy-decoded, never
/// cut into lines), with the total byte count and the number of line breaks ("\n" bytes). Linear
/// in the output: each appended byte is copied a bounded number of times.
package struct OutputCapture: Sendable, Equatable {
    package static let defaultKeep = 64 * 1024
    package let keep: Int
    /// The first bytes of the output (at most `keep`).
    package private(set) var head: [UInt8] = []
    /// Bytes after `head`, the newest last; trimmed to `keep` once it grows past twice that.
    private var later: [UInt8] = []
    package private(set) var totalBytes = 0
    /// "\n" bytes in the whole output, kept or not.
    package private(set) var lineBreaks = 0

    package init(keep: Int = OutputCapture.defaultKeep) {
        self.keep = max(1, keep)
    }

    package mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        totalBytes += bytes.count
        var rest = bytes[...]
        if head.count < keep {
            let taken = rest.prefix(keep - head.count)
            head.append(contentsOf: taken)
            rest = rest.dropFirst(taken.count)
        }
        lineBreaks += Self.countLineBreaks(bytes)
        guard !rest.isEmpty else { return }
        later.append(contentsOf: rest)
        if later.count > 2 * keep { later.removeFirst(later.count - keep) }
    }

    /// "\n" bytes in `bytes`, found with memchr (a per-byte Swift loop is slow in debug builds).
    static func countLineBreaks<C: Collection>(_ bytes: C) -> Int where C.Element == UInt8 {
        let counted = bytes.withContiguousStorageIfAvailable { buffer -> Int in
            guard var at = UnsafeRawPointer(buffer.baseAddress) else { return 0 }
            let end = at + buffer.count
            var n = 0
            while at < end, let hit = memchr(at, 10, end - at) {
                n += 1
                at = UnsafeRawPointer(hit) + 1
            }
            return n
        }
        if let counted { return counted }
        var n = 0
        for byte in bytes where byte == 10 { n += 1 }
        return n
    }

    /// The last bytes of the output that are not in `head` (at most `keep`).
    package var tail: ArraySlice<UInt8> { later.suffix(keep) }

    /// Bytes neither in `head` nor in `tail`.
    package var omittedBytes: Int { totalBytes - head.count - tail.count }
}
