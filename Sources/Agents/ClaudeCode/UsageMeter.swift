// Agents: what a claude-code run spends, counted from the API answers passing through patchd's proxy.
import Foundation
import HTTPClient
import PatchdCore
import Sandboxing
import Synchronization

/// The run's spending as patchd sees it on the wire, not as the CLI in the sandbox reports it
/// (the sandbox is untrusted). Once the cost reaches the budget the run is canceled with
/// `limit: cost` and the proxy refuses further Messages requests.
final class UsageMeter: Sendable {
    private struct Totals {
        var usage = AgentUsage()
        var requests = 0
    }
    private let totals = Mutex(Totals())
    let budgetUSD: Double?
    private let prices: BuiltinAgentConfiguration
    private let cancel: CancellationFlag

    init(budgetUSD: Double?, prices: BuiltinAgentConfiguration, cancel: CancellationFlag) {
        self.budgetUSD = budgetUSD
        self.prices = prices
        self.cancel = cancel
    }

    /// Adds one answer's usage; cancels the run once the budget is spent.
    func record(model: String, usage: MessageUsage) {
        let cost = prices.price(model).cost(usage)
        let spent = totals.withLock { t -> Double in
            t.usage.inputTokens += usage.inputTokens
            t.usage.outputTokens += usage.outputTokens
            t.usage.cacheReadTokens += usage.cacheReadTokens
            t.usage.cacheWriteTokens += usage.cacheWriteTokens
            t.usage.costUSD += cost
            t.requests += 1
            return t.usage.costUSD
        }
        if let budgetUSD, spent >= budgetUSD { cancel.cancel(.cost) }
    }

    var usage: AgentUsage { totals.withLock { $0.usage } }
    var requests: Int { totals.withLock { $0.requests } }

    /// True once the budget is spent: no further request may go out.
    var exhausted: Bool {
        guard let budgetUSD else { return false }
        return totals.withLock { $0.usage.costUSD } >= budgetUSD
    }
}

/// Reads the usage out of one Messages API answer as it streams by: from `message_start`
/// (input and cache tokens, model) and `message_delta` (output tokens, cumulative) events of
/// an SSE stream, or from the `usage` object of a JSON answer.
struct ResponseUsageReader {
    private var parser: SSEParser?
    private var json: [UInt8] = []
    private(set) var model: String
    private(set) var usage = MessageUsage()
    private(set) var sawUsage = false
    static let maxJSONBytes = 4 << 20

    /// `requestModel`: the model the request named, until the answer names its own.
    init(contentType: String, requestModel: String) {
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
        guard event == "message_start" || event == "message_delta", let value = JSONValue.parse(data) else { return }
        if event == "message_start" {
            if let m = value["message"]?["model"]?.string { model = m }
            readUsage(value["message"]?["usage"])
        } else {
            readUsage(value["usage"])
        }
    }

    private mutating func readUsage(_ u: JSONValue?) {
        guard u != nil else { return }
        sawUsage = true
        usage.read(u)
    }
}
