// Agents: the builtin agent's saved state (conversation in its wire's shape, usage, check rounds) for checkpoints and resume.

import Foundation

/// What the builtin loop needs to go on after a restart or a `run resume`: the messages as sent
/// (in the wire's shape, so they are replayed as they were), and the counters of the run.
struct BuiltinConversation: Codable {
    var version = 1
    /// `ModelProvider` raw value: a conversation is replayed only on the wire it was made for.
    var provider: String
    var model: String
    var messages: [JSONValue]
    var usage: AgentUsage
    var checkRounds: Int
    var lastText: String

    static func decode(_ data: Data?) -> BuiltinConversation? {
        guard let data, let saved = try? JSONDecoder().decode(BuiltinConversation.self, from: data), saved.version == 1 else { return nil }
        return saved
    }
}

extension ModelWire {
    /// Adds `text` as the user's next words. On Messages a conversation that ends with a user turn
    /// (tool results, after a stop at a budget) gets it as one more text block of that turn, so
    /// the roles still alternate; otherwise (and on Chat Completions, where a user message may
    /// follow tool messages) it is a new user message.
    func appendUserText(_ text: String, to messages: inout [JSONValue]) {
        if self == .anthropicMessages, case .object(var last)? = messages.last, last["role"]?.string == "user" {
            var blocks: [JSONValue]
            switch last["content"] {
            case .array(let existing)?: blocks = existing
            case .string(let earlier)?: blocks = [.object(["type": .string("text"), "text": .string(earlier)])]
            default: blocks = []
            }
            blocks.append(.object(["type": .string("text"), "text": .string(text)]))
            last["content"] = .array(blocks)
            messages[messages.count - 1] = .object(last)
            return
        }
        messages.append(user(text))
    }
}
