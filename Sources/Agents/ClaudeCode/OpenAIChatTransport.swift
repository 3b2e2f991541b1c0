// Agents: the builtin agent's Chat Completions transport (OpenAI and compatible servers): libcurl, SSE, the key.
import Foundation
import HTTPClient

/// POSTs to BASE_URL/chat/completions (the base URL includes the version, as OPENAI_BASE_URL
/// does: https://api.openai.com/v1, http://127.0.0.1:11434/v1 for Ollama). The key goes in
/// `Authorization: Bearer` and nowhere else; with no key (a local server) no Authorization
/// header is sent at all. One HTTPClient (curl handle) per transport, one transport per run thread.
package final class OpenAIChatTransport: MessagesTransport {
    let baseURL: String
    private let apiKey: String?
    private let client: HTTPClient

    package init(baseURL: String, apiKey: String?) throws {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        client = try HTTPClient()
    }

    package func send(body: [UInt8], onEvent: (String, String) throws -> Void) throws -> TransportResult {
        var headers = [HTTPHeader("content-type", "application/json"), HTTPHeader("accept", "text/event-stream")]
        if let apiKey { headers.append(HTTPHeader("authorization", "Bearer " + apiKey)) }
        return try SSEPost.send(client: client, url: baseURL + "/chat/completions", headers: headers, body: body, onEvent: onEvent)
    }
}
