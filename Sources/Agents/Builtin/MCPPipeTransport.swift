// Agents: an MCP SDK Transport over two pipe fds the daemon owns (an MCP server's stdin and stdout), newline-delimited JSON-RPC.
import Foundation
import Logging
import MCP
import PatchdSystem
import Sandboxing

/// The SDK's own `StdioTransport` takes any fds, but buffers a line without bound; the server is
/// the repository's code, run in the sandbox, so a line here is capped (`maxLineBytes`), and the
/// reads happen on a dedicated thread (poll with a short timeout, so `disconnect` is seen), never
/// on the cooperative pool. Writes are non-blocking: a full pipe waits with `Task.sleep`.
actor MCPPipeTransport: Transport {
    nonisolated let logger: Logger
    private let readFD: Int32
    private let writeFD: Int32
    /// Set by `disconnect`; the reader thread looks at it between polls.
    private let stopped = CancellationFlag()
    private let stream: AsyncThrowingStream<Data, Swift.Error>
    private let continuation: AsyncThrowingStream<Data, Swift.Error>.Continuation
    private var reader: OSThread?
    /// The longest JSON-RPC message accepted from the server.
    static let maxLineBytes = 8 << 20

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Takes ownership of neither fd: the caller closes them after `disconnect`.
    init(readFD: Int32, writeFD: Int32, label: String) {
        self.readFD = readFD
        self.writeFD = writeFD
        logger = Logger(label: "patchd.mcp.\(label)", factory: { _ in SwiftLogNoOpLogHandler() })
        (stream, continuation) = AsyncThrowingStream.makeStream(of: Data.self)
    }

    func connect() async throws {
        guard reader == nil else { return }
        let flags = fcntl(writeFD, F_GETFL)
        _ = fcntl(writeFD, F_SETFL, flags | O_NONBLOCK)
        let fd = readFD, continuation = continuation, stopped = stopped
        reader = try OSThread(name: "mcp-read") { Self.readLoop(fd: fd, stopped: stopped, continuation: continuation) }
    }

    func disconnect() async {
        stopped.cancel()
        reader?.join()
        reader = nil
        continuation.finish()
    }

    func send(_ data: Data) async throws {
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            if stopped.reason != nil { throw Failure(description: "the MCP server's pipe is closed") }
            let n = bytes[offset...].withUnsafeBytes { write(writeFD, $0.baseAddress, $0.count) }
            if n > 0 { offset += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            throw Failure(description: "writing to the MCP server failed (errno \(errno))")
        }
    }

    func receive() -> AsyncThrowingStream<Data, Swift.Error> { stream }

    private static func readLoop(
        fd: Int32, stopped: CancellationFlag,
        continuation: AsyncThrowingStream<Data, Swift.Error>.Continuation
    ) {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while stopped.reason == nil {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 100)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { if ready < 0 { break }; continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { break }
            var start = pending.count
            pending += buffer[0..<n]
            var lineStart = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var line = pending[lineStart..<newline]
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                if !line.isEmpty { continuation.yield(Data(line)) }
                lineStart = newline + 1
                start = lineStart
            }
            pending.removeFirst(lineStart)
            if pending.count > maxLineBytes {
                continuation.finish(throwing: Failure(description: "the MCP server sent a line over \(maxLineBytes) bytes"))
                return
            }
        }
        continuation.finish()
    }
}
