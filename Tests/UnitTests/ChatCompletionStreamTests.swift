// UnitTests: the Chat Completions stream assembler (tool calls split across chunks, parallel calls, cut streams) and its retry.
import Foundation
import PatchdCore
import Synchronization
import Testing

@testable import Agents
@testable import Sandboxing

/// Feeds chunks as a server would send them; `[DONE]` ends a complete stream.
private func assemble(_ chunks: [String], done: Bool = true) throws(StreamError) -> AssistantMessage {
    var a = ChatCompletionStreamAssembler()
    for c in chunks { try a.feed(event: "message", data: c) }
    if done { try a.feed(event: "message", data: "[DONE]") }
    return try a.finish()
}

private func delta(_ d: String, finish: String? = nil) -> String {
    #"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4.1-mini","choices":[{"index":0,"delta":\#(d),"finish_reason":\#(finish.map { "\"\($0)\"" } ?? "null")}],"usage":null}"#
}

private let usageChunk =
    #"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4.1-mini","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150,"prompt_tokens_details":{"cached_tokens":20}}}"#

@Suite struct ChatCompletionStreamTests {
    @Test func oneToolCallSplitAcrossChunks() throws {
        let m = try assemble([
            delta(#"{"role":"assistant","content":""}"#),
            delta(#"{"content":"Let me "}"#), delta(#"{"content":"look."}"#),
            delta(#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"bash","arguments":""}}]}"#),
            delta(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"comm"}}]}"#),
            delta(#"{"tool_calls":[{"index":0,"function":{"arguments":"and\": \"ls -"}}]}"#),
            delta(#"{"tool_calls":[{"index":0,"function":{"arguments":"la\"}"}}]}"#),
            delta("{}", finish: "tool_calls"), usageChunk,
        ])
        #expect(m.content == [.text("Let me look."), .toolUse(id: "call_1", name: "bash", input: .object(["command": .string("ls -la")]))])
        #expect(m.stopReason == "tool_use")
        #expect(m.model == "gpt-4.1-mini")
        #expect(m.usage.inputTokens == 100 && m.usage.cacheReadTokens == 20 && m.usage.outputTokens == 30)
    }

    @Test func parallelCallsInterleavedByIndexComeOutInIndexOrder() throws {
        let m = try assemble([
            delta(#"{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"str_replace_based_edit_tool","arguments":""}}]}"#),
            delta(#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"bash","arguments":"{\"command\""}}]}"#),
            delta(#"{"tool_calls":[{"index":1,"function":{"arguments":"{\"command\":\"view\","}}]}"#),
            delta(#"{"tool_calls":[{"index":0,"function":{"arguments":":\"true\"}"}},{"index":1,"function":{"arguments":"\"path\":\"a\"}"}}]}"#),
            delta("{}", finish: "tool_calls"),
        ])
        #expect(
            m.content == [
                .toolUse(id: "call_a", name: "bash", input: .object(["command": .string("true")])),
                .toolUse(id: "call_b", name: "str_replace_based_edit_tool", input: .object(["command": .string("view"), "path": .string("a")])),
            ])
        #expect(m.usage == MessageUsage(), "no usage chunk: zero, not a failure")
    }

    @Test func callsWithoutIndexAndBrokenArguments() throws {
        // Older Ollama: whole calls without index; a local model's arguments that are not JSON stay text.
        let m = try assemble([
            delta(#"{"tool_calls":[{"id":"call_x","function":{"name":"bash","arguments":"{\"command\":\"ls\"}"}}]}"#),
            delta(#"{"tool_calls":[{"id":"call_y","function":{"name":"bash","arguments":"{\"command\": \"ls"}}]}"#),
            delta("{}", finish: "stop"),
        ])
        #expect(
            m.content == [
                .toolUse(id: "call_x", name: "bash", input: .object(["command": .string("ls")])),
                .toolUse(id: "call_y", name: "bash", input: .string(#"{"command": "ls"#)),
            ])
        #expect(m.stopReason == "tool_use")
        let ws = try ToolWorkspace()
        let answer = ws.tools.run(name: "bash", input: .string(#"{"command": "ls"#))
        #expect(answer.isError && answer.text.contains("must be a JSON object"))
    }

    @Test func cutStreamsErrorsAndLength() throws {
        // Everything but [DONE]: truncated, nothing of it used.
        #expect(throws: StreamError.truncated) {
            try assemble([delta(#"{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"bash","arguments":"{"}}]}"#)], done: false)
        }
        #expect(throws: StreamError.apiError(type: "server_error", message: "overloaded")) {
            try assemble([delta(#"{"content":"a"}"#), #"{"error":{"message":"overloaded","type":"server_error"}}"#])
        }
        #expect(throws: StreamError.malformed("tool call 0 has no function name")) {
            try assemble([delta(#"{"tool_calls":[{"index":0,"id":"call_1","function":{"arguments":"{}"}}]}"#)])
        }
        let cut = try assemble([delta(#"{"content":"partial"}"#), delta("{}", finish: "length")])
        #expect(cut.stopReason == "max_tokens" && cut.text == "partial")
    }

    @Test func aCutStreamIsRetriedAndTheCompleteOneUsed() throws {
        let transport = ScriptedTransport([
            [delta(#"{"tool_calls":[{"index":0,"id":"call_cut","function":{"name":"bash","arguments":"{\"comm"}}]}"#)],
            [delta(#"{"content":"done"}"#), delta("{}", finish: "stop"), usageChunk, "[DONE]"],
        ])
        let ws = try ToolWorkspace()
        var configuration = BuiltinAgentConfiguration()
        configuration.baseRetryDelay = 0.01
        let agent = BuiltinAgent(configuration: configuration, transports: [.openai: { transport }])
        let message = try agent.request([], transport: transport, context: ws.context, wire: .openAIChat)
        #expect(message.content == [.text("done")])
        #expect(message.usage.inputTokens == 100)
        #expect(transport.calls == 2)
    }

    @Test func aProviderWithoutAnEndpointFailsTheRunSayingWhatToDo() throws {
        let ws = try ToolWorkspace()
        var task = TaskSpec(body: "Do it.")
        task.provider = .openai
        let c = ws.context
        let context = AgentContext(
            runID: 1, task: task, sandbox: c.sandbox, mounts: c.mounts, limits: c.limits,
            cancel: c.cancel, deadline: c.deadline, log: c.log)
        let agent = BuiltinAgent(configuration: BuiltinAgentConfiguration()) { OverloadedTransport() }
        let outcome = try agent.run(context)
        #expect(!outcome.succeeded)
        #expect(
            outcome.error
                == "this server has no endpoint for provider openai (an admin sets OPENAI_API_KEY and/or OPENAI_BASE_URL); use provider: anthropic")
        #expect(outcome.model == "gpt-5", "openai's default model")
    }

    @Test func requestBodyAndHistoryShapes() throws {
        let wire = ModelWire.openAIChat
        let body = wire.body(model: "m", maxTokens: 100, system: "sys", tools: [], messages: [wire.user("task")])
        #expect(body["stream_options"]?["include_usage"] == .bool(true))
        #expect(
            body["messages"]
                == .array([
                    .object(["role": .string("system"), "content": .string("sys")]),
                    .object(["role": .string("user"), "content": .string("task")]),
                ]))
        let assistant = wire.assistant(
            AssistantMessage(
                content: [.toolUse(id: "c1", name: "bash", input: .object(["command": .string("ls")]))],
                stopReason: "tool_use", usage: MessageUsage(), model: nil))
        #expect(assistant["content"] == .null)
        #expect(
            assistant["tool_calls"]
                == .array([
                    .object([
                        "id": .string("c1"), "type": .string("function"),
                        "function": .object(["name": .string("bash"), "arguments": .string(#"{"command":"ls"}"#)]),
                    ])
                ]))
        #expect(
            wire.toolResults([ToolResult(id: "c1", text: "boom", isError: true)])
                == [.object(["role": .string("tool"), "tool_call_id": .string("c1"), "content": .string("Error: boom")])])
    }
}

/// Answers each request with the next list of SSE data lines (then a clean end).
final class ScriptedTransport: MessagesTransport, Sendable {
    private let answers: Mutex<[[String]]>
    private let count = Mutex(0)
    init(_ answers: [[String]]) { self.answers = Mutex(answers) }
    var calls: Int { count.withLock { $0 } }

    func send(body: [UInt8], onEvent: (String, String) throws -> Void) throws -> TransportResult {
        count.withLock { $0 += 1 }
        let lines = answers.withLock { $0.isEmpty ? [] : $0.removeFirst() }
        for line in lines { try onEvent("message", line) }
        return TransportResult(status: 200, headers: [:], body: "")
    }
}
