// Agents: the two APIs the builtin loop speaks (Anthropic Messages, OpenAI Chat Completions): request bodies, conversation turns, tools.
import Foundation
import PatchdCore

/// A tool offered to the model as a plain JSON-schema tool (MCP tools; every tool on Chat Completions).
struct ToolSpec: Sendable, Equatable {
    var name: String
    var description: String
    /// A JSON schema of the input object.
    var schema: JSONValue
}

/// One tool_use's answer, before it is shaped for the API.
struct ToolResult {
    var id: String
    var text: String
    var isError: Bool
}

/// The loop keeps the conversation in the wire's own shape; this is the only place that knows
/// the shapes. Messages: content blocks, tool results in a user turn, Anthropic's own bash and
/// text_editor tool types. Chat Completions: a system message, `tool_calls` on the assistant
/// message, one `role: tool` message per result, every tool a JSON-schema function.
enum ModelWire: Sendable {
    case anthropicMessages
    case openAIChat

    init(_ provider: ModelProvider) {
        switch provider {
        case .anthropic: self = .anthropicMessages
        case .openai: self = .openAIChat
        }
    }

    var apiName: String {
        switch self {
        case .anthropicMessages: return "the Messages API"
        case .openAIChat: return "the Chat Completions API"
        }
    }

    func makeAssembler() -> any StreamAssembling {
        switch self {
        case .anthropicMessages: return MessageStreamAssembler()
        case .openAIChat: return ChatCompletionStreamAssembler()
        }
    }

    func body(model: String, maxTokens: Int, system: String, tools: [ToolSpec], messages: [JSONValue]) -> JSONValue {
        switch self {
        case .anthropicMessages:
            let custom = tools.map {
                JSONValue.object(["name": .string($0.name), "description": .string($0.description), "input_schema": $0.schema])
            }
            guard case .array(let builtins) = AgentTools.definitions else { return .null }
            return .object([
                "model": .string(model), "max_tokens": .number(Double(maxTokens)), "stream": .bool(true),
                "system": .string(system), "tools": .array(builtins + custom), "messages": .array(messages),
            ])
        case .openAIChat:
            let functions = (AgentTools.functionSpecs + tools).map { tool in
                JSONValue.object([
                    "type": .string("function"),
                    "function": .object([
                        "name": .string(tool.name), "description": .string(tool.description), "parameters": tool.schema,
                    ]),
                ])
            }
            return .object([
                "model": .string(model), "max_completion_tokens": .number(Double(maxTokens)), "stream": .bool(true),
                "stream_options": .object(["include_usage": .bool(true)]), "tools": .array(functions),
                "messages": .array([.object(["role": .string("system"), "content": .string(system)])] + messages),
            ])
        }
    }

    func user(_ text: String) -> JSONValue {
        .object(["role": .string("user"), "content": .string(text)])
    }

    func assistant(_ message: AssistantMessage) -> JSONValue {
        switch self {
        case .anthropicMessages:
            return .object(["role": .string("assistant"), "content": .array(message.content.map(\.json))])
        case .openAIChat:
            var calls: [JSONValue] = []
            for case .toolUse(let id, let name, let input) in message.content {
                // Arguments the model sent as broken JSON go back as it sent them (a .string).
                let arguments = input.string ?? input.serialized()
                calls.append(
                    .object([
                        "id": .string(id), "type": .string("function"),
                        "function": .object([
                            "name": .string(name), "arguments": .string(arguments),
                        ]),
                    ]))
            }
            var turn: [String: JSONValue] = ["role": .string("assistant"), "content": message.text.isEmpty ? .null : .string(message.text)]
            if !calls.isEmpty { turn["tool_calls"] = .array(calls) }
            return .object(turn)
        }
    }

    func toolResults(_ results: [ToolResult]) -> [JSONValue] {
        switch self {
        case .anthropicMessages:
            let blocks = results.map { r -> JSONValue in
                var block: [String: JSONValue] = ["type": .string("tool_result"), "tool_use_id": .string(r.id), "content": .string(r.text)]
                if r.isError { block["is_error"] = .bool(true) }
                return .object(block)
            }
            return [.object(["role": .string("user"), "content": .array(blocks)])]
        case .openAIChat:
            // No is_error field in Chat Completions: the text says so.
            return results.map { r in
                .object(["role": .string("tool"), "tool_call_id": .string(r.id), "content": .string(r.isError ? "Error: " + r.text : r.text)])
            }
        }
    }
}
