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
        try SSEPost.send(
            client: client, url: baseURL + "/v1/messages",
            headers: [
                HTTPHeader("content-type", "application/json"),
                HTTPHeader("accept", "text/event-stream"),
                HTTPHeader("anthropic-version", "2023-06-01"),
                HTTPHeader("x-api-key", apiKey),
            ], body: body, onEvent: onEvent)
    }
}
