// Agents: the builtin agent's Messages API transport: libcurl, SSE, and the only place the API key is used.

import Foundation
import HTTPClient
import PatchdCore
import Sandboxing

/// POSTs to ANTHROPIC_BASE_URL/v1/messages with the key in `x-api-key`. The key lives
/// in this struct and in the request headers only: never in an event, a log line or the
/// sandbox. One HTTPClient (curl handle) per transport, and one transport per run thread.
package final class AnthropicTransport: MessagesTransport {
    let baseURL: String
    private let apiKey: String
    private let client: HTTPClient

    package init(baseURL: String, apiKey: String) throws {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        client = try HTTPClient()
    }

    package func send(body: [UInt8], onEvent: (String, String) throws -> Void) throws -> TransportResult {
        let request = HTTPRequest(
            method: "POST", url: baseURL + "/v1/messages",
            headers: [
                HTTPHeader("content-type", "application/json"),
                HTTPHeader("accept", "text/event-stream"),
                HTTPHeader("anthropic-version", "2023-06-01"),
                HTTPHeader("x-api-key", apiKey),
            ], body: body, connectTimeout: 10, totalTimeout: 600, lowSpeedTimeout: 120)
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
