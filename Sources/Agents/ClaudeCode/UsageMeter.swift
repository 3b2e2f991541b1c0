// Agents: what a CLI agent's run spends, counted from the API answers passing through patchd's proxy.

import Foundation
import HTTPClient
import PatchdCore
import PatchdSystem
import Sandboxing
import Synchronization

/// The run's spending as patchd sees it on the wire, not as the CLI in the sandbox reports it
/// (the sandbox is untrusted). Once the cost reaches the budget the run is canceled with
/// `limit: cost` and the proxy refuses further model requests. With `maxTurns`, the proxy also
/// counts turns (one model request of the conversation is one turn) and refuses the one past it.
final class UsageMeter: Sendable {
    private struct Totals {
        var usage = AgentUsage()
        var requests = 0
        var turnsStarted = 0
        var firstRequestAt: Double?
        var lastModel: String?
    }
    private let totals = Mutex(Totals())
    let budgetUSD: Double?
    let maxTurns: Int?
    private let prices: [String: ModelPrice]
    private let fallbackModel: String
    private let cancel: CancellationFlag

    /// `fallbackModel`: whose price a model missing from the table is counted at.
    init(budgetUSD: Double?, maxTurns: Int? = nil, prices: [String: ModelPrice], fallbackModel: String, cancel: CancellationFlag) {
        self.budgetUSD = budgetUSD
        self.maxTurns = maxTurns
        self.prices = prices
        self.fallbackModel = fallbackModel
        self.cancel = cancel
    }

    convenience init(budgetUSD: Double?, prices: BuiltinAgentConfiguration, cancel: CancellationFlag) {
        self.init(budgetUSD: budgetUSD, prices: prices.prices, fallbackModel: "claude-sonnet-4-5", cancel: cancel)
    }

    /// The price of `model`: its exact name, else the longest configured prefix of it, else the fallback's.
    func price(_ model: String) -> ModelPrice {
        if let exact = prices[model] { return exact }
        if let prefix = prices.filter({ model.hasPrefix($0.key) }).max(by: { $0.key.count < $1.key.count }) { return prefix.value }
        return prices[fallbackModel] ?? ModelPrice(input: 0, output: 0, cacheRead: 0, cacheWrite: 0)
    }

    /// Whether `model` is priced from the table (not at the fallback's price).
    func hasPrice(_ model: String) -> Bool { prices[model] != nil || prices.keys.contains { model.hasPrefix($0) } }

    /// Called as a turn's request arrives; false (and the run canceled with `limit: turns`) past max_turns.
    func beginTurn() -> Bool {
        let started = totals.withLock { t -> Int in
            if t.firstRequestAt == nil { t.firstRequestAt = MonotonicClock.now }
            t.turnsStarted += 1
            return t.turnsStarted
        }
        guard let maxTurns, started > maxTurns else { return true }
        cancel.cancel(.turns)
        return false
    }

    /// Turns that reached the API (refused ones not counted).
    var turns: Int { totals.withLock { t in min(t.turnsStarted, maxTurns ?? .max) } }
    /// When the first model request arrived (monotonic clock), for the CLI's start-up time.
    var firstRequestAt: Double? { totals.withLock { $0.firstRequestAt } }

    /// Adds one answer's usage; cancels the run once the budget is spent.
    func record(model: String, usage: MessageUsage) {
        let cost = price(model).cost(usage)
        let spent = totals.withLock { t -> Double in
            t.usage.inputTokens += usage.inputTokens
            t.usage.outputTokens += usage.outputTokens
            t.usage.cacheReadTokens += usage.cacheReadTokens
            t.usage.cacheWriteTokens += usage.cacheWriteTokens
            t.usage.costUSD += cost
            t.requests += 1
            t.lastModel = model
            return t.usage.costUSD
        }
        if let budgetUSD, spent >= budgetUSD { cancel.cancel(.cost) }
    }

    var usage: AgentUsage { totals.withLock { $0.usage } }
    /// The model the last counted answer named.
    var lastModel: String? { totals.withLock { $0.lastModel } }
    var requests: Int { totals.withLock { $0.requests } }

    /// True once the budget is spent: no further request may go out.
    var exhausted: Bool {
        guard let budgetUSD else { return false }
        return totals.withLock { $0.usage.costUSD } >= budgetUSD
    }
}

/// Reads the usage out of one model answer as it streams by. Messages API: `message_start`
/// (input and cache tokens, model) and `message_delta` (output tokens, cumulative) events of
/// an SSE stream, or the `usage` object of a JSON answer. Responses API: the `response` of
/// `response.completed` (or `.incomplete`, `.failed`), or the JSON answer; its `input_tokens`
/// include the cached ones, which are counted as cache reads instead.
struct ResponseUsageReader {
    private let wire: APIRoute.Wire
    private var parser: SSEParser?
    private var json: [UInt8] = []
    private(set) var model: String
    private(set) var usage = MessageUsage()
    private(set) var sawUsage = false
    static let maxJSONBytes = 4 << 20

    /// `requestModel`: the model the request named, until the answer names its own.
    init(wire: APIRoute.Wire = .anthropicMessages, contentType: String, requestModel: String) {
        self.wire = wire
        parser = contentType.lowercased().hasPrefix("text/event-stream") ? SSEParser() : nil
        model = requestModel
    }

    mutating func feed(_ bytes: [UInt8]) {
        if parser != nil {
            for event in parser!.feed(bytes) { read(event: event.event, data: event.data) }
        } else if json.count < Self.maxJSONBytes {
            json += bytes.prefix(Self.maxJSONBytes - json.count)
        }
    }

    /// Call once the answer ended (or was cut): a cut stream still used what it reported.
    mutating func finish() {
        if parser != nil {
            for event in parser!.finish() { read(event: event.event, data: event.data) }
        } else if let value = JSONValue.parse(String(decoding: json, as: UTF8.self)) {
            if let m = value["model"]?.string { model = m }
            readUsage(value["usage"])
        }
    }

    private mutating func read(event: String, data: String) {
        if wire == .openAIResponses {
            guard ["response.completed", "response.incomplete", "response.failed"].contains(event),
                let value = JSONValue.parse(data), let response = value["response"]
            else { return }
            if let m = response["model"]?.string { model = m }
            readUsage(response["usage"])
            return
        }
        guard event == "message_start" || event == "message_delta", let value = JSONValue.parse(data) else { return }
        if event == "message_start" {
            if let m = value["message"]?["model"]?.string { model = m }
            readUsage(value["message"]?["usage"])
        } else {
            readUsage(value["usage"])
        }
    }

    private mutating func readUsage(_ u: JSONValue?) {
        guard let u, u != .null else { return }
        sawUsage = true
        if wire == .openAIResponses {
            let cached = u["input_tokens_details"]?["cached_tokens"]?.int ?? 0
            usage.inputTokens = max(0, (u["input_tokens"]?.int ?? 0) - cached)
            usage.cacheReadTokens = cached
            usage.outputTokens = u["output_tokens"]?.int ?? 0
            return
        }
        usage.read(u)
    }
}
