// Agents: the CLI agents' way to their model API: a unix-socket HTTP proxy that adds the real key and meters usage.

import Foundation
import HTTPClient
import Logging
import PatchdCore
import PatchdSystem
import Sandboxing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One agent's API as the proxy serves it: which wire format (for usage and error bodies),
/// where requests go, and how the real key is sent.
struct APIRoute: Sendable {
    enum Wire: Sendable { case anthropicMessages, openAIResponses }
    let wire: Wire
    /// ANTHROPIC_BASE_URL (no /v1), or OPENAI_BASE_URL (which ends in /v1, as OpenAI's clients expect).
    let upstream: String
    let apiKey: String

    init(wire: Wire, upstream: String, apiKey: String) {
        self.wire = wire
        self.upstream = upstream.hasSuffix("/") ? String(upstream.dropLast()) : upstream
        self.apiKey = apiKey
    }

    /// The sandbox always asks for /v1/...; OpenAI's base URL already carries the /v1.
    func url(for path: String) -> String {
        switch wire {
        case .anthropicMessages: return upstream + path
        case .openAIResponses: return upstream + (upstream.hasSuffix("/v1") ? String(path.dropFirst(3)) : path)
        }
    }

    var keyHeader: HTTPHeader {
        switch wire {
        case .anthropicMessages: return HTTPHeader("x-api-key", apiKey)
        case .openAIResponses: return HTTPHeader("authorization", "Bearer " + apiKey)
        }
    }

    /// Requests that cost money: counted, and refused once the budget is spent.
    func isMetered(_ path: String) -> Bool {
        let bare = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        switch wire {
        case .anthropicMessages: return bare.hasPrefix("/v1/messages") && !bare.hasPrefix("/v1/messages/count_tokens")
        case .openAIResponses: return bare.hasPrefix("/v1/responses")
        }
    }

    /// A request that is one agent turn (one model answer in the conversation), for max_turns.
    func isTurn(_ method: String, _ path: String) -> Bool {
        let bare = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        switch wire {
        case .anthropicMessages: return method == "POST" && bare == "/v1/messages"
        case .openAIResponses: return method == "POST" && bare == "/v1/responses"
        }
    }

    /// An error answer in the API's own shape, so the CLI shows the message.
    func errorBody(_ message: String, type: String) -> String {
        let text = JSONValue.string("patchd proxy: " + message).serialized()
        switch wire {
        case .anthropicMessages: return "{\"type\":\"error\",\"error\":{\"type\":\"\(type)\",\"message\":\(text)}}"
        case .openAIResponses: return "{\"error\":{\"message\":\(text),\"type\":\"\(type)\",\"param\":null,\"code\":null}}"
        }
    }
}

/// Listens on a unix socket in the run's scratch directory, bound into the sandbox where
/// socat bridges 127.0.0.1:PORT (inside the sandbox's own network namespace) to it. Each
/// connection carries one HTTP/1.1 request; only `/v1/...` paths pass. The client's
/// `x-api-key`/`authorization` (a placeholder) are dropped and the real key is added, so
/// the key never enters the sandbox. The response is streamed back and the connection closed.
/// With a `UsageMeter`, the usage in every model answer is counted on the way through, and
/// once the run's budget (or, where the meter has one, its turn limit) is spent further
/// requests are refused (400).
final class APIProxy: Sendable {
    let socketPath: String
    private let route: APIRoute
    private let listenFD: Int32
    private let state = Mutex<(stopping: Bool, thread: OSThread?)>((false, nil))
    private let logger: Logger
    private let meter: UsageMeter?

    static let maxHeaderBytes = 64 * 1024
    static let maxBodyBytes = 32 << 20

    init(socketPath: String, route: APIRoute, meter: UsageMeter? = nil, logger: Logger) throws {
        self.socketPath = socketPath
        self.route = route
        self.logger = logger
        self.meter = meter
        let fd = try UnixSocket.bind(.stream, path: socketPath)
        listenFD = fd
        let thread = try OSThread(name: "api-proxy") { [self] in acceptLoop() }
        state.withLock { $0.thread = thread }
    }

    func stop() {
        let thread = state.withLock { s -> OSThread? in
            s.stopping = true
            return s.thread
        }
        thread?.join()
        close(listenFD)
        unlink(socketPath)
    }

    private func acceptLoop() {
        while !state.withLock({ $0.stopping }) {
            var pfd = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let conn = accept(listenFD, nil, nil)
            guard conn >= 0 else { continue }
            do {
                try OSThread(name: "api-proxy-conn") { [self] in
                    handle(conn)
                    close(conn)
                }.detach()
            } catch {
                // Out of threads: this request fails (the CLI retries); the proxy keeps serving.
                logger.error("API proxy: cannot serve a connection: \(error)")
                close(conn)
            }
        }
    }

    private func handle(_ fd: Int32) {
        // Request head.
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        var headEnd: Int?
        while headEnd == nil {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return }
            buffer += chunk[0..<n]
            headEnd = Self.find([13, 10, 13, 10], in: buffer)
            if headEnd == nil && buffer.count > Self.maxHeaderBytes { return reply(fd, 431, "request head too large") }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        var body = Array(buffer[(headEnd! + 4)...])
        let lines = head.components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        guard requestLine.count == 3 else { return reply(fd, 400, "malformed request line") }
        let method = String(requestLine[0]), path = String(requestLine[1])
        guard path.hasPrefix("/v1/"), !path.contains("..") else { return reply(fd, 403, "only /v1/ API paths are proxied") }
        var headers: [HTTPHeader] = []
        var contentLength = 0
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length": contentLength = Int(value) ?? 0
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            case "x-api-key", "authorization", "host", "connection", "proxy-authorization", "proxy-connection",
                "accept-encoding", "keep-alive", "te", "upgrade":
                continue  // the sandbox's credentials and hop-by-hop headers stop here
            default: headers.append(HTTPHeader(name, value))
            }
        }
        guard contentLength <= Self.maxBodyBytes else { return reply(fd, 413, "request body too large") }
        // Request body: Content-Length, or chunked (decoded).
        func readMore() -> Bool {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return false }
            body += chunk[0..<n]
            return body.count <= Self.maxBodyBytes + 65536
        }
        if chunked {
            var decoded: [UInt8] = []
            var offset = 0
            while true {
                while Self.find([13, 10], in: body, from: offset) == nil { guard readMore() else { return } }
                let lineEnd = Self.find([13, 10], in: body, from: offset)!
                let sizeText = String(decoding: body[offset..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return reply(fd, 400, "bad chunk") }
                offset = lineEnd + 2
                if size == 0 { break }
                while body.count < offset + size + 2 { guard readMore() else { return } }
                decoded += body[offset..<(offset + size)]
                offset += size + 2
                guard decoded.count <= Self.maxBodyBytes else { return reply(fd, 413, "request body too large") }
            }
            body = decoded
        } else {
            while body.count < contentLength { guard readMore() else { return } }
            body = Array(body.prefix(contentLength))
        }
        headers.append(route.keyHeader)
        // Model requests cost money (count_tokens does not): metered, and refused once the budget is spent.
        let metered = meter != nil && route.isMetered(path)
        if metered, let meter, meter.exhausted {
            return reply(fd, 400, "this run's budget (max_cost_usd \(BudgetText.usd(meter.budgetUSD ?? 0))) is spent", type: "invalid_request_error")
        }
        if route.isTurn(method, path), let meter, !meter.beginTurn() {
            return reply(fd, 400, "this run's turns (max_turns \(meter.maxTurns ?? 0)) are used up", type: "invalid_request_error")
        }
        let requestModel = JSONValue.parse(String(decoding: body, as: UTF8.self))?["model"]?.string ?? ""
        var usageReader: ResponseUsageReader?

        // Forward and stream the answer back.
        guard let client = try? HTTPClient() else { return reply(fd, 502, "proxy cannot create an HTTP client") }
        let request = HTTPRequest(
            method: method, url: route.url(for: path), headers: headers, body: body,
            connectTimeout: 10, totalTimeout: 600, lowSpeedTimeout: 120)
        var clientGone = false
        do {
            try client.send(
                request,
                onHead: { head in
                    var text = "HTTP/1.1 \(head.status) \(Self.reason(head.status))\r\n"
                    for (name, value) in head.headers.sorted(by: { $0.key < $1.key })
                    where !["content-length", "transfer-encoding", "connection", "content-encoding"].contains(name) {
                        text += "\(name): \(value)\r\n"
                    }
                    text += "connection: close\r\n\r\n"
                    if metered, (200..<300).contains(head.status) {
                        usageReader = ResponseUsageReader(
                            wire: route.wire, contentType: head.headers["content-type"] ?? "", requestModel: requestModel)
                    }
                    clientGone = (try? writeAll(fd, text)) == nil
                },
                onData: { data in
                    usageReader?.feed(data)
                    guard !clientGone else { return false }
                    clientGone = (try? writeAll(fd, data)) == nil
                    return !clientGone
                })
        } catch {
            if !clientGone { reply(fd, 502, "upstream: \(error)") }
            logger.info("API proxy: \(method) \(path) failed: \(error)")
        }
        // Also for a cut stream: the tokens it reported were used.
        if var reader = usageReader, let meter {
            reader.finish()
            if reader.sawUsage { meter.record(model: reader.model, usage: reader.usage) }
        }
    }

    private func reply(_ fd: Int32, _ status: Int, _ message: String, type: String = "api_error") {
        let body = route.errorBody(message, type: type)
        _ = try? writeAll(
            fd,
            "HTTP/1.1 \(status) \(Self.reason(status))\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
        )
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 413: return "Payload Too Large"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 502: return "Bad Gateway"
        case 529: return "Overloaded"
        default: return "Status"
        }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from start: Int = 0) -> Int? {
        guard hay.count >= needle.count, start <= hay.count - needle.count else { return nil }
        var i = start
        while i <= hay.count - needle.count {
            if hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}
