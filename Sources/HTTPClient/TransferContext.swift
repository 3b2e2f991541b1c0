// HTTPClient: per-transfer state the C callbacks reach through `userdata`: header parsing and the caller's closures.

/// Lives for one `curl_easy_perform`, on the thread that called it (libcurl runs the
/// callbacks there). Reached from C through an unretained `Unmanaged` pointer; the client
/// keeps it alive for the whole transfer.
final class TransferContext {
    private let onHead: (HTTPResponseHead) -> Void
    private let onData: ([UInt8]) -> Bool
    private var status = 0
    private var headers: [String: String] = [:]
    private var lastHeaderName: String?
    /// Set when the final response's head has been handed to `onHead`.
    private(set) var head: HTTPResponseHead?
    /// Set when `onData` asked to stop.
    private(set) var aborted = false

    init(onHead: @escaping (HTTPResponseHead) -> Void, onData: @escaping ([UInt8]) -> Bool) {
        self.onHead = onHead
        self.onData = onData
    }

    /// One complete header line from libcurl, CRLF included. A status line starts a new
    /// response (after a 1xx or a redirect), the blank line ends the head; trailers are ignored.
    func headerLine(_ bytes: UnsafeRawBufferPointer) {
        guard head == nil else { return }
        var end = bytes.count
        while end > 0, bytes[end - 1] == UInt8(ascii: "\n") || bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let line = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<end]), as: UTF8.self)

        if line.hasPrefix("HTTP/") {
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            headers = [:]
            lastHeaderName = nil
            return
        }
        if line.isEmpty {
            // 1xx responses (100 Continue, 103 Early Hints) are followed by the real one.
            if status >= 200 { deliverHead(status: status) }
            return
        }
        if let first = line.unicodeScalars.first, first == " " || first == "\t" {
            // Obsolete line folding: a continuation of the previous header's value.
            if let name = lastHeaderName {
                headers[name, default: ""] += " " + trimmed(Substring(line))
            }
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = trimmed(line[..<colon]).lowercased()
        let value = trimmed(line[line.index(after: colon)...])
        if let existing = headers[name] {
            headers[name] = existing + ", " + value
        } else {
            headers[name] = value
        }
        lastHeaderName = name
    }

    /// One body chunk. Returns false when the caller wants to stop.
    func bodyChunk(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if head == nil { deliverHead(status: status) }
        if !onData(Array(bytes)) {
            aborted = true
            return false
        }
        return true
    }

    /// Hands the head to `onHead` exactly once.
    @discardableResult
    func deliverHead(status: Int) -> HTTPResponseHead {
        if let head { return head }
        let made = HTTPResponseHead(status: status, headers: headers)
        head = made
        onHead(made)
        return made
    }

    private func trimmed(_ text: Substring) -> String {
        var slice = text[...]
        while let c = slice.first, c == " " || c == "\t" { slice.removeFirst() }
        while let c = slice.last, c == " " || c == "\t" { slice.removeLast() }
        return String(slice)
    }
}
