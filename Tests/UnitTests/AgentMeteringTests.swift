// UnitTests: budget text as set, the Responses API usage reader, the proxy's routes, and agent availability.

import Foundation
import HTTPClient
import PatchdCore
import Sandboxing
import Testing

@testable import Agents

@Suite struct AgentMeteringTests {
    @Test("budgets read as they were set: 0.0001 is not 0.00")
    func budgetText() {
        #expect(BudgetText.usd(0.0001) == "0.0001")
        #expect(BudgetText.usd(1) == "1.00")
        #expect(BudgetText.usd(1.35) == "1.35")
        #expect(BudgetText.usd(0.000105) == "0.000105")
        #expect(BudgetText.usd(1.3500000000000001) == "1.35")
        #expect(BudgetText.costStop(spent: 0.000105, budget: 0.0001) == "stopped at $0.000105 (max_cost_usd 0.0001)")
    }

    @Test("Responses API usage: response.completed's usage, cached input counted as cache reads, split across chunks")
    func responsesUsage() {
        let stream = """
            event: response.created
            data: {"type":"response.created","response":{"model":"gpt-5-codex","usage":null}}

            event: response.output_text.delta
            data: {"type":"response.output_text.delta","delta":"hi"}

            event: response.completed
            data: {"type":"response.completed","response":{"model":"gpt-5-codex-2025","usage":{"input_tokens":1000,"input_tokens_details":{"cached_tokens":600},"output_tokens":50,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":1050}}}


            """
        var reader = ResponseUsageReader(wire: .openAIResponses, contentType: "text/event-stream; charset=utf-8", requestModel: "gpt-5-codex")
        let bytes = Array(stream.utf8)
        for start in stride(from: 0, to: bytes.count, by: 7) { reader.feed(Array(bytes[start..<min(start + 7, bytes.count)])) }
        reader.finish()
        #expect(reader.sawUsage)
        #expect(reader.model == "gpt-5-codex-2025")
        #expect(reader.usage.inputTokens == 400)
        #expect(reader.usage.cacheReadTokens == 600)
        #expect(reader.usage.outputTokens == 50)

        var json = ResponseUsageReader(wire: .openAIResponses, contentType: "application/json", requestModel: "o3")
        json.feed(Array(#"{"model":"o3","usage":{"input_tokens":10,"output_tokens":2}}"#.utf8))
        json.finish()
        #expect(json.usage.inputTokens == 10 && json.usage.outputTokens == 2 && json.sawUsage)
    }

    @Test("the meter prices OpenAI models by the longest prefix, counts turns, and cancels past max_turns")
    func meterTurns() {
        let cancel = CancellationFlag()
        let meter = UsageMeter(budgetUSD: nil, maxTurns: 2, prices: OpenAIPrices.table, fallbackModel: OpenAIPrices.fallbackModel, cancel: cancel)
        #expect(meter.price("gpt-5-mini-2025") == OpenAIPrices.table["gpt-5-mini"])
        #expect(meter.price("gpt-5.1-codex") == OpenAIPrices.table["gpt-5"])
        #expect(!meter.hasPrice("some-new-model") && meter.price("some-new-model") == OpenAIPrices.table["gpt-5"])
        #expect(meter.beginTurn() && meter.beginTurn())
        #expect(cancel.reason == nil)
        #expect(!meter.beginTurn())
        #expect(cancel.reason == .turns)
        #expect(meter.turns == 2)
    }

    @Test("routes: OpenAI's base URL carries /v1 and gets a Bearer key; Anthropic's gets x-api-key; errors in each API's shape")
    func routes() {
        let openAI = APIRoute(wire: .openAIResponses, upstream: "https://api.openai.com/v1/", apiKey: "k")
        #expect(openAI.url(for: "/v1/responses") == "https://api.openai.com/v1/responses")
        #expect(openAI.keyHeader.value == "Bearer k")
        #expect(openAI.isTurn("POST", "/v1/responses") && !openAI.isTurn("POST", "/v1/responses/compact"))
        #expect(openAI.isMetered("/v1/responses/compact"))
        #expect(
            JSONValue.parse(openAI.errorBody("a \"quoted\" message", type: "invalid_request_error"))?["error"]?["message"]?.string
                == "patchd proxy: a \"quoted\" message")
        let anthropic = APIRoute(wire: .anthropicMessages, upstream: "http://127.0.0.1:9", apiKey: "k")
        #expect(anthropic.url(for: "/v1/messages?beta=true") == "http://127.0.0.1:9/v1/messages?beta=true")
        #expect(anthropic.isTurn("POST", "/v1/messages?beta=true") && !anthropic.isMetered("/v1/messages/count_tokens"))
        #expect(anthropic.keyHeader.name == "x-api-key")
    }

    @Test("availability travels through the hook environment and refuses with the reason")
    func availability() {
        let a = AgentAvailability(entries: [
            .init(kind: .command, offered: true, detail: "runs the script"),
            .init(kind: .builtin, offered: false, detail: "the server has no ANTHROPIC_API_KEY: ask its admin, or use agent: command"),
        ])
        let back = AgentAvailability(environmentValue: a.environmentValue)
        #expect(back == a)
        #expect(back?.refusal(for: .command) == nil)
        #expect(
            back?.refusal(for: .builtin)
                == "this server cannot run the builtin agent: the server has no ANTHROPIC_API_KEY: ask its admin, or use agent: command")
        #expect(back?.refusal(for: .codex)?.contains("use one of: command") == true)
        #expect(AgentAvailability(environmentValue: "not json") == nil)
        #expect(AgentAvailability(environmentValue: nil) == nil)
    }
}
