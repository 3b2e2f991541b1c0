// PatchdCommands: where a command writes (the SSH channel, or a buffer in tests), and the error/JSON conventions.

import Foundation
import PatchdCore
import Synchronization

/// A command's stdout and stderr. Every write reports false once the client is gone, so a
/// long listing or a `--follow` stops producing.
package protocol CommandOutput: Sendable {
    @discardableResult func out(_ text: String) -> Bool
    @discardableResult func err(_ text: String) -> Bool
    /// Bytes as they are: for output meant to be piped to git (`run diff --binary`).
    @discardableResult func out(bytes: [UInt8]) -> Bool
    /// The client's stdin to its end (nil: none given to this command, or over `maxBytes`).
    func readInput(maxBytes: Int) -> [UInt8]?
}

/// The conventions every command follows (README "Commands"): errors as `patchd: error: ...`
/// on stderr with exit 1, usage errors with the usage and exit 2, JSON one value per line.
extension CommandOutput {
    /// `patchd: error: MESSAGE` on stderr; exit 1.
    package func fail(_ message: String) -> Int32 {
        err("patchd: error: \(message)\n")
        return 1
    }

    /// A usage error: the reason and the command's usage; exit 2.
    package func usage(_ why: String, _ usage: String) -> Int32 {
        err("patchd: error: \(why)\nusage: \(usage)\n")
        return 2
    }

    package func json<T: Encodable>(_ value: T) -> Int32 {
        out(((try? RunJSON.encode(value)) ?? "null") + "\n")
        return 0
    }
}

/// Collects what a command writes, for tests and for anything that runs commands in-process.
package final class BufferedCommandOutput: CommandOutput {
    private struct Buffers {
        var out: [UInt8] = []
        var err: [UInt8] = []
        var closed = false
    }

    private let buffers = Mutex(Buffers())
    private let input: [UInt8]?

    /// - Parameter input: what the command reads as stdin (nil: none).
    package init(input: [UInt8]? = nil) { self.input = input }

    package func readInput(maxBytes: Int) -> [UInt8]? { input.flatMap { $0.count > maxBytes ? nil : $0 } }

    @discardableResult
    package func out(_ text: String) -> Bool { out(bytes: Array(text.utf8)) }

    @discardableResult
    package func out(bytes: [UInt8]) -> Bool {
        buffers.withLock { b in
            guard !b.closed else { return false }
            b.out += bytes
            return true
        }
    }

    @discardableResult
    package func err(_ text: String) -> Bool {
        buffers.withLock { b in
            guard !b.closed else { return false }
            b.err += Array(text.utf8)
            return true
        }
    }

    /// Acts as a client that went away: later writes return false.
    package func close() { buffers.withLock { $0.closed = true } }

    package var stdoutBytes: [UInt8] { buffers.withLock { $0.out } }
    package var stdout: String { String(decoding: stdoutBytes, as: UTF8.self) }
    package var stderr: String { buffers.withLock { String(decoding: $0.err, as: UTF8.self) } }
}
