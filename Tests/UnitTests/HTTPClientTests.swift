// UnitTests: the SSE parser on Anthropic-style streams, and the libcurl client against a real loopback HTTP server.

import Foundation
import Glibc
import PatchdSystem
import Testing

@testable import HTTPClient

@Suite struct HTTPClientTests {
    /// An Anthropic Messages API stream (tool use, a ping, non-ASCII text), LF line ends.
    static let anthropicSample = #"""
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Grüße 👋 — ☃"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

        event: message_stop
        data: {"type":"message_stop"}


        """#

    static let sampleEventNames = [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]

    static func parse(_ chunks: [[UInt8]]) -> [SSEEvent] {
        var parser = SSEParser()
        var events: [SSEEvent] = []
        for chunk in chunks { events += parser.feed(chunk) }
        return events + parser.finish()
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: - SSEParser

    @Suite struct SSEParserTests {
        @Test func anthropicStreamInOnePiece() {
            let events = HTTPClientTests.parse([HTTPClientTests.bytes(HTTPClientTests.anthropicSample)])
            #expect(events.map(\.event) == HTTPClientTests.sampleEventNames)
            #expect(events[2].data == #"{"type": "ping"}"#)
            #expect(events[3].data.contains("Grüße 👋 — ☃"))
            #expect(
                events[6].data
                    == #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}"#)
            #expect(events[10] == SSEEvent(event: "message_stop", data: #"{"type":"message_stop"}"#, id: nil))
        }

        @Test func byteByByteAndOddChunksGiveTheSameEvents() {
            let all = HTTPClientTests.bytes(HTTPClientTests.anthropicSample)
            let whole = HTTPClientTests.parse([all])
            #expect(HTTPClientTests.parse(all.map { [$0] }) == whole)
            for size in [2, 3, 5, 7, 64] {
                let chunks = stride(from: 0, to: all.count, by: size).map { Array(all[$0..<min($0 + size, all.count)]) }
                #expect(HTTPClientTests.parse(chunks) == whole, "chunk size \(size)")
            }
        }

        @Test func crlfAndCRLineEnds() {
            let lf = HTTPClientTests.anthropicSample
            let whole = HTTPClientTests.parse([HTTPClientTests.bytes(lf)])
            for ending in ["\r\n", "\r"] {
                let text = lf.replacingOccurrences(of: "\n", with: ending)
                #expect(HTTPClientTests.parse([HTTPClientTests.bytes(text)]) == whole)
                #expect(HTTPClientTests.parse(HTTPClientTests.bytes(text).map { [$0] }) == whole, "byte by byte")
            }
            // A CRLF split across two feeds is one line end, not two (which would dispatch "a" alone).
            var parser = SSEParser()
            #expect(parser.feed(HTTPClientTests.bytes("data: a\r")).isEmpty)
            #expect(parser.feed(HTTPClientTests.bytes("\ndata: b\r\n\r")) == [SSEEvent(data: "a\nb")])
            #expect(parser.feed(HTTPClientTests.bytes("\n")).isEmpty)
            // Mixed endings in one stream.
            #expect(HTTPClientTests.parse([HTTPClientTests.bytes("data: 1\rdata: 2\r\ndata: 3\n\r\n")]) == [SSEEvent(data: "1\n2\n3")])
        }

        @Test func commentsFieldsAndSpaces() {
            let text = ": this is a comment\n:\n: keep-alive\ndata:  two spaces\ndata:nospace\ndata\nunknown: x\nevent: custom\n\n"
            #expect(
                HTTPClientTests.parse([HTTPClientTests.bytes(text)])
                    == [SSEEvent(event: "custom", data: " two spaces\nnospace\n", id: nil)])
        }

        @Test func multiLineDataAndEventTypeReset() {
            let text = "event: a\ndata: line 1\ndata: line 2\ndata: line 3\n\ndata: plain\n\n"
            #expect(
                HTTPClientTests.parse([HTTPClientTests.bytes(text)]) == [
                    SSEEvent(event: "a", data: "line 1\nline 2\nline 3"),
                    SSEEvent(event: "message", data: "plain"),
                ])
        }

        @Test func eventsWithoutDataAreNotDispatched() {
            #expect(HTTPClientTests.parse([HTTPClientTests.bytes("event: lonely\n\n\n\nid: 7\n\n: c\n\n")]).isEmpty)
            // WHATWG: a "data:" line with nothing after it still makes an event, with empty data.
            #expect(HTTPClientTests.parse([HTTPClientTests.bytes("data:\n\n")]) == [SSEEvent(data: "")])
        }

        @Test func lastEventIDCarriesOverAndRetry() {
            var parser = SSEParser()
            let events = parser.feed(HTTPClientTests.bytes("id: 1\nretry: 1500\ndata: a\n\ndata: b\n\nid\ndata: c\n\nretry: x\n"))
            #expect(events == [SSEEvent(data: "a", id: "1"), SSEEvent(data: "b", id: "1"), SSEEvent(data: "c", id: nil)])
            #expect(parser.retry == 1500)
        }

        @Test func utf8SplitAcrossFeeds() {
            let all = HTTPClientTests.bytes("data: é☃👋x\n\n")
            for cut in 1..<all.count {
                #expect(
                    HTTPClientTests.parse([Array(all[..<cut]), Array(all[cut...])]) == [SSEEvent(data: "é☃👋x")],
                    "cut at \(cut)")
            }
            // Invalid UTF-8 becomes U+FFFD, it does not drop the event.
            #expect(HTTPClientTests.parse([[0x64, 0x61, 0x74, 0x61, 0x3A, 0xFF, 0x0A, 0x0A]]) == [SSEEvent(data: "\u{FFFD}")])
        }

        @Test func byteOrderMarkIsDropped() {
            let all: [UInt8] = [0xEF, 0xBB, 0xBF] + HTTPClientTests.bytes("event: x\ndata: y\n\n")
            #expect(HTTPClientTests.parse([all]) == [SSEEvent(event: "x", data: "y")])
            #expect(HTTPClientTests.parse(all.map { [$0] }) == [SSEEvent(event: "x", data: "y")])
        }

        @Test func finishWithAndWithoutTrailingBlankLine() {
            var parser = SSEParser()
            #expect(parser.feed(HTTPClientTests.bytes("data: done\n\n")) == [SSEEvent(data: "done")])
            #expect(parser.finish().isEmpty)

            parser = SSEParser()
            #expect(parser.feed(HTTPClientTests.bytes("event: last\ndata: no blank line\n")).isEmpty)
            #expect(parser.finish() == [SSEEvent(event: "last", data: "no blank line")])
            #expect(parser.finish().isEmpty)

            // An unterminated line is incomplete and dropped with its event.
            parser = SSEParser()
            #expect(parser.feed(HTTPClientTests.bytes("data: {\"cut\": tr")).isEmpty)
            #expect(parser.finish().isEmpty)
        }
    }

    // MARK: - HTTPClient against a loopback server

    @Suite(.serialized) struct LoopbackTests {
        @Test func streamsChunksAsTheyArrive() throws {
            let server = try LoopbackServer()
            defer { server.stop() }
            let client = try HTTPClient()
            var order: [String] = []
            var chunkTimes: [Double] = []
            var parser = SSEParser()
            var events: [SSEEvent] = []
            let head = try client.send(HTTPRequest(method: "GET", url: server.url("/sse"))) { head in
                order.append("head \(head.status)")
            } onData: { chunk in
                order.append("data")
                chunkTimes.append(MonotonicClock.now)
                events += parser.feed(chunk)
                return true
            }
            let end = MonotonicClock.now
            events += parser.finish()
            #expect(head.status == 200)
            #expect(head.headers["content-type"] == "text/event-stream")
            #expect(head.headers["x-mixed-case"] == "Yes", "names are lower-cased: \(head.headers)")
            #expect(order.first == "head 200")
            #expect(order.filter { $0.hasPrefix("head") }.count == 1)
            #expect(chunkTimes.count >= 3, "the server wrote 3 pieces with pauses")
            #expect(end - chunkTimes[0] > 0.3, "the first chunk came before the stream ended")
            #expect(events == HTTPClientTests.parse([HTTPClientTests.bytes(HTTPClientTests.anthropicSample)]))
        }

        @Test func errorStatusWithHeadersAndBody() throws {
            let server = try LoopbackServer()
            defer { server.stop() }
            let client = try HTTPClient()
            let (head, body) = try client.collect(HTTPRequest(url: server.url("/overloaded"), body: HTTPClientTests.bytes("{}")))
            #expect(head.status == 529)
            #expect(head.headers["retry-after"] == "2")
            #expect(head.headers["content-type"] == "application/json")
            #expect(String(decoding: body, as: UTF8.self).contains("overloaded_error"))
            #expect(throws: HTTPError.responseTooLarge(limit: 10)) {
                try client.collect(HTTPRequest(url: server.url("/overloaded")), maxBytes: 10)
            }
        }

        @Test func requestMethodHeadersAndBodyReachTheServer() throws {
            let server = try LoopbackServer()
            defer { server.stop() }
            let client = try HTTPClient()
            let body = HTTPClientTests.bytes(#"{"model":"m","stream":true,"text":"Grüße"}"#) + [0, 1, 2]
            let request = HTTPRequest(
                url: server.url("/echo"),
                headers: [
                    HTTPHeader("content-type", "application/json"),
                    HTTPHeader("x-api-key", "sk-test"),
                    HTTPHeader("anthropic-version", "2023-06-01"),
                    HTTPHeader("X-Empty", ""),
                ], body: body)
            let (head, echoed) = try client.collect(request)
            #expect(head.status == 200)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(echoed)) as? [String: Any])
            #expect(json["method"] as? String == "POST")
            #expect(json["body"] as? [Int] == body.map(Int.init))
            let headers = (json["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
            let names = headers.map(\.0)
            #expect(headers.first { $0.0 == "user-agent" }?.1 == "patchd/0.1")
            #expect(headers.first { $0.0 == "x-empty" }?.1 == "")
            #expect(!names.contains("expect"))
            let key = try #require(names.firstIndex(of: "x-api-key"))
            let version = try #require(names.firstIndex(of: "anthropic-version"))
            #expect(key < version, "order kept: \(names)")

            // The same handle, reset, for a GET without a body.
            let (getHead, getEcho) = try client.collect(HTTPRequest(method: "GET", url: server.url("/echo")))
            #expect(getHead.status == 200)
            let getJSON = try #require(try JSONSerialization.jsonObject(with: Data(getEcho)) as? [String: Any])
            #expect(getJSON["method"] as? String == "GET")
            #expect(getJSON["body"] as? [Int] == [])
        }

        @Test func onDataReturningFalseAborts() throws {
            let server = try LoopbackServer()
            defer { server.stop() }
            let client = try HTTPClient()
            let start = MonotonicClock.now
            var chunks = 0
            #expect(throws: HTTPError.aborted) {
                try client.send(HTTPRequest(method: "GET", url: server.url("/sse"))) { _ in
                    chunks += 1
                    return false
                }
            }
            #expect(chunks == 1)
            #expect(MonotonicClock.now - start < 0.5, "stopped at the first chunk, not at the end of the stream")
            // The client stays usable after an abort.
            #expect(try client.collect(HTTPRequest(url: server.url("/overloaded"))).0.status == 529)
        }

        @Test func connectionRefusedIsRetryable() throws {
            let port = try ReservedPort()
            let client = try HTTPClient()
            do {
                try client.send(HTTPRequest(url: "http://127.0.0.1:\(port.port)/v1/messages")) { _ in true }
                Issue.record("expected connection refused")
            } catch {
                guard case .transport(let code, let message) = error else {
                    Issue.record("wrong error \(error)")
                    return
                }
                #expect(code == 7)
                #expect(message.contains("Couldn't connect to server"), "\(message)")
                #expect(message.contains("\(port.port)"), "the error buffer's detail: \(message)")
                #expect(error.isRetryable)
                #expect(error.description.contains("curl 7"))
            }
        }

        @Test func truncatedBodyIsATransportError() throws {
            let server = try LoopbackServer()
            defer { server.stop() }
            let client = try HTTPClient()
            for path in ["/truncated", "/truncated-chunked"] {
                var received: [UInt8] = []
                do {
                    try client.send(HTTPRequest(method: "GET", url: server.url(path))) {
                        received += $0; return true
                    }
                    Issue.record("expected a transport error for \(path)")
                } catch {
                    guard case .transport(let code, _) = error else {
                        Issue.record("wrong error \(error)")
                        continue
                    }
                    #expect(code == 18, "CURLE_PARTIAL_FILE for \(path): \(error)")
                    #expect(error.isRetryable)
                    #expect(received == HTTPClientTests.bytes("data: partial"))
                }
            }
        }

        @Test func lowSpeedTimeout() throws {
            let server = try LoopbackServer()
            defer { server.stop() }
            let client = try HTTPClient()
            let start = MonotonicClock.now
            // Headers, then silence. (libcurl averages the speed over up to the last 6 s, so after
            // a burst of bytes the cut comes later than `lowSpeedTimeout`.)
            let request = HTTPRequest(method: "GET", url: server.url("/stall"), totalTimeout: 30, lowSpeedTimeout: 1)
            #expect {
                try client.send(request) { _ in true }
            } throws: { error in
                guard let error = error as? HTTPError, case .transport(let code, _) = error else { return false }
                return code == 28 && error.isRetryable
            }
            let elapsed = MonotonicClock.now - start
            #expect(elapsed >= 0.9 && elapsed < 4, "\(elapsed)")
        }

        @Test func totalTimeout() throws {
            let server = try LoopbackServer()
            defer { server.stop() }
            let client = try HTTPClient()
            let start = MonotonicClock.now
            var gotFirstChunk = false
            let request = HTTPRequest(method: "GET", url: server.url("/slow"), totalTimeout: 0.5, lowSpeedTimeout: 0)
            do {
                try client.send(request) { _ in
                    gotFirstChunk = true; return true
                }
                Issue.record("expected a timeout")
            } catch {
                guard case .transport(let code, let message) = error else {
                    Issue.record("wrong error \(error)")
                    return
                }
                #expect(code == 28, "\(message)")
                #expect(message.lowercased().contains("timeout") || message.lowercased().contains("timed out"), "\(message)")
            }
            #expect(gotFirstChunk)
            let elapsed = MonotonicClock.now - start
            #expect(elapsed >= 0.4 && elapsed < 2, "\(elapsed)")
        }

        @Test func invalidRequestsAreRefusedBeforeSending() throws {
            let client = try HTTPClient()
            let cases = [
                HTTPRequest(url: "ftp://127.0.0.1/x"),
                HTTPRequest(url: "file:///etc/passwd"),
                HTTPRequest(url: "http://127.0.0.1/a b"),
                HTTPRequest(method: "GET /x HTTP/1.1\r\nHost", url: "http://127.0.0.1/"),
                HTTPRequest(url: "http://127.0.0.1/", headers: [HTTPHeader("x-a", "b\r\nInjected: yes")]),
                HTTPRequest(url: "http://127.0.0.1/", headers: [HTTPHeader("bad name", "v")]),
                HTTPRequest(url: "http://127.0.0.1/", totalTimeout: -1),
                HTTPRequest(url: "http://127.0.0.1/", lowSpeedTimeout: .nan),
            ]
            for request in cases {
                #expect {
                    try client.send(request) { _ in true }
                } throws: { error in
                    guard let error = error as? HTTPError, case .invalidRequest = error else { return false }
                    return !error.isRetryable
                }
            }
        }
    }
}

/// A Python http.server on 127.0.0.1, port 0; the chosen port is read from its stdout.
private final class LoopbackServer {
    static let script = #"""
        import http.server, json, socket, sys, time

        SAMPLE = open(sys.argv[1], "rb").read()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def do_GET(self):
                self.route()

            def do_POST(self):
                self.route()

            def route(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path == "/sse":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("X-Mixed-Case", "Yes")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    third = len(SAMPLE) // 3 + 7
                    for piece in (SAMPLE[:third], SAMPLE[third:2 * third], SAMPLE[2 * third:]):
                        self.chunk(piece)
                        time.sleep(0.25)
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/overloaded":
                    payload = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode()
                    self.send_response(529)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("retry-after", "2")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                elif self.path == "/echo":
                    payload = json.dumps({"method": self.command, "headers": [[k, v] for k, v in self.headers.items()],
                                          "body": list(body)}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                elif self.path == "/truncated":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"data: partial")
                    self.wfile.flush()
                    time.sleep(0.1)
                    self.close_connection = True
                elif self.path == "/truncated-chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.chunk(b"data: partial")
                    time.sleep(0.1)
                    self.close_connection = True
                elif self.path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    time.sleep(10)
                    self.close_connection = True
                elif self.path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.chunk(b": first\n\n")
                    time.sleep(10)
                    self.close_connection = True
                else:
                    self.send_error(404)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """#

    let process: ChildProcess
    let port: Int
    private let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "patchd-http-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.script.write(toFile: directory + "/server.py", atomically: true, encoding: .utf8)
        try HTTPClientTests.anthropicSample.write(toFile: directory + "/sample.txt", atomically: true, encoding: .utf8)
        process = try ChildProcess(
            executable: "/usr/bin/python3",
            arguments: ["-I", directory + "/server.py", directory + "/sample.txt"],
            environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"],
            stdout: .pipe, stderr: .null)
        port = try Self.readPort(process.stdout!.raw)
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Kills the server by pid (once: a reaped pid may belong to someone else) and removes its files.
    func stop() {
        if process.poll() == nil {
            _ = kill(process.pid, SIGKILL)
            process.wait()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The first line of the server's stdout, waiting at most 10 s.
    private static func readPort(_ fd: Int32) throws -> Int {
        var line: [UInt8] = []
        let deadline = MonotonicClock.now + 10
        while MonotonicClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) >= 0 else { continue }
            guard pfd.revents != 0 else { continue }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { break }
            if byte == UInt8(ascii: "\n") {
                if let port = Int(String(decoding: line, as: UTF8.self)) { return port }
                break
            }
            line.append(byte)
        }
        throw SystemError("python3 http.server", errno: EIO, context: "no port on stdout: \(String(decoding: line, as: UTF8.self))")
    }

    deinit { stop() }
}

/// A loopback TCP port that is bound but not listening, so connecting to it is refused
/// (and no other test can take it meanwhile).
private final class ReservedPort {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw SystemError("bind", errno: errno) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}
