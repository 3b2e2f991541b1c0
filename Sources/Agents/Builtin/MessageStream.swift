// Agents: assembles one streamed Messages API response from its SSE events (text, tool_use, usage).

import Foundation

/// One content block of an assistant message.
package enum ContentBlock: Sendable, Equatable {
    case text(String)
    case toolUse(id: String, name: String, input: JSONValue)

    var json: JSONValue {
        switch self {
        case .text(let t): return .object(["type": .string("text"), "text": .string(t)])
        case .toolUse(let id, let name, let input):
            return .object(["type": .string("tool_use"), "id": .string(id), "name": .string(name), "input": input])
        }
    }
}

package struct MessageUsage: Sendable, Equatable {
    package var inputTokens = 0
    package var outputTokens = 0
    package var cacheReadTokens = 0
    package var cacheWriteTokens = 0
    package init() {}

    /// Takes the counts a Messages API `usage` object carries (absent ones stay as they are:
    /// `message_delta` repeats only some of them, cumulatively).
    package mutating func read(_ u: JSONValue?) {
        guard let u else { return }
        if let v = u["input_tokens"]?.int { inputTokens = v }
        if let v = u["output_tokens"]?.int { outputTokens = v }
        if let v = u["cache_read_input_tokens"]?.int { cacheReadTokens = v }
        if let v = u["cache_creation_input_tokens"]?.int { cacheWriteTokens = v }
    }
}

/// A complete assistant message.
package struct AssistantMessage: Sendable {
    package var content: [ContentBlock]
    package var stopReason: String
    package var usage: MessageUsage
    package var model: String?
    package var text: String {
        content.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined(separator: "\n")
    }
}

package enum StreamError: Error, Equatable, CustomStringConvertible {
    /// The API sent an `error` event (overloaded mid-stream, ...).
    case apiError(type: String, message: String)
    /// The stream ended before message_stop: nothing of it is used, the request is retried.
    case truncated
    case malformed(String)

    package var description: String {
        switch self {
        case .apiError(let t, let m): return "\(t): \(m)"
        case .truncated: return "the response stream ended before its end (message_stop, or [DONE] for Chat Completions)"
        case .malformed(let w): return "malformed stream: \(w)"
        }
    }
}

/// Feed it SSE events in order; `finish()` gives the message once `message_stop` arrived.
package struct MessageStreamAssembler {
    private struct Partial {
        var kind: String
        var text = ""
        var json = ""
        var id = ""
        var name = ""
    }
    private var blocks: [Int: Partial] = [:]
    private var order: [Int] = []
    private var usage = MessageUsage()
    private var stopReason = ""
    private var model: String?
    private(set) var complete = false
    /// Text deltas as they arrive (for live progress).
    package var onText: ((String) -> Void)?

    package init() {}

    package mutating func feed(event: String, data: String) throws(StreamError) {
        guard let json = JSONValue.parse(data) else {
            if event == "ping" { return }
            throw .malformed("event \(event) has invalid JSON")
        }
        switch event {
        case "message_start":
            let message = json["message"]
            model = message?["model"]?.string
            readUsage(message?["usage"])
        case "content_block_start":
            guard let index = json["index"]?.int, let block = json["content_block"], let kind = block["type"]?.string else {
                throw .malformed("content_block_start without index or type")
            }
            var partial = Partial(kind: kind)
            partial.id = block["id"]?.string ?? ""
            partial.name = block["name"]?.string ?? ""
            partial.text = block["text"]?.string ?? ""
            // A repeated start for the same index replaces the block; listing the index again would
            // emit it twice (a tool_use run twice, with a duplicate id). Found by fuzzing.
            if blocks[index] == nil { order.append(index) }
            blocks[index] = partial
        case "content_block_delta":
            guard let index = json["index"]?.int, let delta = json["delta"], blocks[index] != nil else {
                throw .malformed("content_block_delta for an unknown block")
            }
            switch delta["type"]?.string {
            case "text_delta":
                let piece = delta["text"]?.string ?? ""
                blocks[index]!.text += piece
                onText?(piece)
            case "input_json_delta": blocks[index]!.json += delta["partial_json"]?.string ?? ""
            default: break  // thinking, signature deltas: not used
            }
        case "message_delta":
            if let reason = json["delta"]?["stop_reason"]?.string { stopReason = reason }
            readUsage(json["usage"])
        case "message_stop":
            complete = true
        case "error":
            throw .apiError(type: json["error"]?["type"]?.string ?? "error", message: json["error"]?["message"]?.string ?? data)
        default:
            break  // ping, content_block_stop (blocks are finalized at the end)
        }
    }

    private mutating func readUsage(_ u: JSONValue?) { usage.read(u) }

    package func finish() throws(StreamError) -> AssistantMessage {
        guard complete else { throw .truncated }
        var content: [ContentBlock] = []
        for index in order {
            guard let b = blocks[index] else { continue }
            switch b.kind {
            case "text": if !b.text.isEmpty { content.append(.text(b.text)) }
            case "tool_use":
                let input = b.json.isEmpty ? JSONValue.object([:]) : JSONValue.parse(b.json)
                guard let input else { throw .malformed("tool_use \(b.name) input is not JSON") }
                content.append(.toolUse(id: b.id, name: b.name, input: input))
            default: break
            }
        }
        return AssistantMessage(content: content, stopReason: stopReason, usage: usage, model: model)
    }
}
