// Agents: assembles one streamed Chat Completions response (OpenAI-compatible) from its SSE chunks: text, tool calls, usage.
import Foundation

/// What the builtin loop needs of a stream assembler, whichever API it speaks.
protocol StreamAssembling {
    mutating func feed(event: String, data: String) throws(StreamError)
    func finish() throws(StreamError) -> AssistantMessage
}

extension MessageStreamAssembler: StreamAssembling {}

/// Feed it the `data:` of each SSE event in order; `finish()` gives the message once `[DONE]`
/// arrived (a stream cut before it is `.truncated`, and the request is retried). Tool calls come
/// as `choices[0].delta.tool_calls[]` pieces keyed by `index`: the first piece of a call carries
/// its `id` and `function.name`, later ones `function.arguments` fragments to concatenate.
/// Several calls (parallel tool calls) interleave by index. Some servers (older Ollama) send whole
/// calls without `index`: then a piece with a new `id` starts a call and one without continues the
/// last. Usage arrives in a last chunk with empty `choices` (`stream_options.include_usage`).
package struct ChatCompletionStreamAssembler {
    private struct Call {
        var id = ""
        var name = ""
        var arguments = ""
    }
    private var text = ""
    private var calls: [Int: Call] = [:]
    private var order: [Int] = []
    private var finishReason = ""
    private var usage = MessageUsage()
    private var model: String?
    private(set) var complete = false
    /// The most a streamed answer may hold (text plus tool arguments), against a server that never stops.
    static let maxBytes = 16 << 20
    private var bytes = 0

    package init() {}

    package mutating func feed(event: String, data: String) throws(StreamError) {
        let trimmed = data.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed == "[DONE]" { complete = true; return }
        if trimmed.isEmpty || event == "ping" { return }
        guard let json = JSONValue.parse(data) else { throw .malformed("a chunk is not JSON: \(trimmed.prefix(120))") }
        if let error = json["error"], error != .null {
            // OpenAI-compatible servers report a failure mid-stream as a chunk with `error`.
            let type = error["type"]?.string ?? error["code"]?.string ?? "error"
            throw .apiError(type: type, message: error["message"]?.string ?? error.string ?? trimmed)
        }
        if let m = json["model"]?.string { model = m }
        if let u = json["usage"], u != .null { usage = Self.usage(u) }
        guard case .array(let choices)? = json["choices"] else { return }
        for choice in choices where (choice["index"]?.int ?? 0) == 0 {
            if let reason = choice["finish_reason"]?.string { finishReason = reason }
            guard let delta = choice["delta"] else { continue }
            if let piece = delta["content"]?.string {
                text += piece
                bytes += piece.utf8.count
            }
            guard case .array(let pieces)? = delta["tool_calls"] else { continue }
            for piece in pieces {
                let id = piece["id"]?.string ?? ""
                let index: Int
                if let i = piece["index"]?.int {
                    index = i
                } else if !id.isEmpty {
                    index = order.first { calls[$0]?.id == id } ?? ((order.max() ?? -1) + 1)
                } else if let last = order.last {
                    index = last
                } else {
                    throw .malformed("a tool call piece with neither index nor id")
                }
                guard index >= 0, index < 1024 else { throw .malformed("tool call index \(index) out of range") }
                if calls[index] == nil { calls[index] = Call(); order.append(index) }
                if !id.isEmpty, calls[index]!.id.isEmpty { calls[index]!.id = id }
                if let name = piece["function"]?["name"]?.string, !name.isEmpty, calls[index]!.name.isEmpty {
                    calls[index]!.name = name
                }
                if let arguments = piece["function"]?["arguments"]?.string {
                    calls[index]!.arguments += arguments
                    bytes += arguments.utf8.count
                }
            }
        }
        if bytes > Self.maxBytes { throw .malformed("the answer is over \(Self.maxBytes) bytes") }
    }

    /// Chat Completions usage: `prompt_tokens` include the cached ones (counted as cache reads instead).
    static func usage(_ u: JSONValue) -> MessageUsage {
        var usage = MessageUsage()
        let cached = u["prompt_tokens_details"]?["cached_tokens"]?.int ?? 0
        usage.inputTokens = max(0, (u["prompt_tokens"]?.int ?? 0) - cached)
        usage.cacheReadTokens = cached
        usage.outputTokens = u["completion_tokens"]?.int ?? 0
        return usage
    }

    /// Tool calls are ordered by index. Arguments that are not a JSON object stay a `.string` so the
    /// dispatcher can answer the model with what was wrong (local models do send broken JSON).
    package func finish() throws(StreamError) -> AssistantMessage {
        guard complete else { throw .truncated }
        var content: [ContentBlock] = []
        if !text.isEmpty { content.append(.text(text)) }
        for index in order.sorted() {
            guard let call = calls[index] else { continue }
            guard !call.name.isEmpty else { throw .malformed("tool call \(index) has no function name") }
            let raw = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
            let input: JSONValue
            if raw.isEmpty {
                input = .object([:])
            } else if let parsed = JSONValue.parse(raw), case .object = parsed {
                input = parsed
            } else {
                input = .string(call.arguments)
            }
            content.append(.toolUse(id: call.id.isEmpty ? "call_\(index)" : call.id, name: call.name, input: input))
        }
        let hasCalls = content.contains { if case .toolUse = $0 { return true } else { return false } }
        let stop = hasCalls ? "tool_use" : finishReason == "length" ? "max_tokens" : "end_turn"
        return AssistantMessage(content: content, stopReason: stop, usage: usage, model: model)
    }
}

extension ChatCompletionStreamAssembler: StreamAssembling {}
