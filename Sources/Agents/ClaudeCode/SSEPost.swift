// Agents: one streaming POST for the builtin agent's transports: a 2xx text/event-stream answer goes out event by event.
import Foundation
import HTTPClient

/// Shared by `AnthropicTransport` and `OpenAIChatTransport`: they differ only in the URL and
/// the headers (where the key goes). A non-2xx answer's body (up to 64 KiB) comes back in the
/// result for the caller to judge; an error thrown by `onEvent` aborts the transfer and is
/// rethrown as itself (not as curl's "aborted by callback").
enum SSEPost {
    static func send(
        client: HTTPClient, url: String, headers: [HTTPHeader], body: [UInt8],
        onEvent: (String, String) throws -> Void
    ) throws -> TransportResult {
        let request = HTTPRequest(
            method: "POST", url: url, headers: headers, body: body,
            connectTimeout: 10, totalTimeout: 600, lowSpeedTimeout: 120)
        var parser = SSEParser()
        var status = 0
        var errorBody: [UInt8] = []
        var callbackError: Error?
        let head: HTTPResponseHead
        do {
            head = try client.send(
                request, onHead: { status = $0.status },
                onData: { chunk in
                    guard (200..<300).contains(status) else {
                        if errorBody.count < 65536 { errorBody += chunk }
                        return true
                    }
                    do {
                        for event in parser.feed(chunk) { try onEvent(event.event, event.data) }
                        return true
                    } catch {
                        callbackError = error
                        return false
                    }
                })
        } catch {
            // An abort we asked for carries the real reason (a malformed or error event).
            if let callbackError { throw callbackError }
            throw error
        }
        if let callbackError { throw callbackError }
        if (200..<300).contains(head.status) {
            for event in parser.finish() { try onEvent(event.event, event.data) }
        }
        return TransportResult(status: head.status, headers: head.headers, body: String(decoding: errorBody, as: UTF8.self))
    }
}
