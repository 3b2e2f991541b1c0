// Agents: patchd's own agent: the tool loop over the Messages or Chat Completions API (streaming), tools in the sandbox, check feedback, budgets.

import Foundation
package import PatchdCore
import PatchdSystem
package import Sandboxing

/// How the agent reaches its API (Messages: `AnthropicTransport`; Chat Completions:
/// `OpenAIChatTransport`). The production transports are libcurl; tests use the same ones
/// against loopback stand-ins. The transport adds the key; nothing else in the agent sees it.
package protocol MessagesTransport {
    /// POSTs `body` to the API's endpoint. For a 2xx answer, each SSE event goes to `onEvent`
    /// (event name, data) as it arrives; otherwise the body comes back in the result.
    func send(body: [UInt8], onEvent: (String, String) throws -> Void) throws -> TransportResult
}

package struct TransportResult: Sendable {
    package var status: Int
    package var headers: [String: String]
    package var body: String
    package init(status: Int, headers: [String: String], body: String) {
        self.status = status; self.headers = headers; self.body = body
    }
}

/// Prices in USD per million tokens.
package struct ModelPrice: Sendable, Codable, Equatable {
    package var input: Double
    package var output: Double
    package var cacheRead: Double
    package var cacheWrite: Double
    package init(input: Double, output: Double, cacheRead: Double, cacheWrite: Double) {
        self.input = input; self.output = output; self.cacheRead = cacheRead; self.cacheWrite = cacheWrite
    }

    package func cost(_ u: MessageUsage) -> Double {
        (Double(u.inputTokens) * input + Double(u.outputTokens) * output
            + Double(u.cacheReadTokens) * cacheRead + Double(u.cacheWriteTokens) * cacheWrite) / 1_000_000
    }
}

package struct BuiltinAgentConfiguration: Sendable {
    /// The API for tasks that name no `provider:`.
    package var defaultProvider = ModelProvider.anthropic
    package var defaultModel = "claude-sonnet-4-5"
    /// The model for `provider: openai` tasks that name none.
    package var defaultOpenAIModel = "gpt-5"
    package var maxTurns = 40
    package var maxTokens = 8192
    /// Retries of one request (429, 5xx, 529, connection errors, cut streams).
    package var maxAttempts = 5
    package var baseRetryDelay = 1.0
    package var maxRetryDelay = 60.0
    /// The server's cap on a task's max_cost_usd (nil: no cap beyond the task's own).
    package var maxCostUSD: Double?
    /// Check runs that may feed back into the loop before the agent gives up.
    package var maxCheckRounds = 3
    package var prices: [String: ModelPrice] = [
        "claude-sonnet-4-5": ModelPrice(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
        "claude-opus-4-1": ModelPrice(input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75),
        "claude-haiku-4-5": ModelPrice(input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25),
    ]
    /// Chat Completions models (OpenAI's list prices; a server's `prices:` merged over them).
    package var openAIPrices = OpenAIPrices.table
    package init() {}

    /// The price of `model` on `provider`'s table: its exact name, else the longest prefix of it
    /// in the table, else the table's fallback (Sonnet 4.5, gpt-5); `listed` is false then.
    package func price(_ model: String, provider: ModelProvider) -> (price: ModelPrice, listed: Bool, fallback: String) {
        let (table, fallback) = provider == .openai ? (openAIPrices, OpenAIPrices.fallbackModel) : (prices, "claude-sonnet-4-5")
        if let exact = table[model] { return (exact, true, fallback) }
        if let prefix = table.filter({ model.hasPrefix($0.key) }).max(by: { $0.key.count < $1.key.count }) { return (prefix.value, true, fallback) }
        return (table[fallback] ?? ModelPrice(input: 0, output: 0, cacheRead: 0, cacheWrite: 0), false, fallback)
    }

    /// The price of `model`: its exact name, else a configured prefix of it, else Sonnet 4.5's.
    package func price(_ model: String) -> ModelPrice {
        prices[model] ?? prices.first { model.hasPrefix($0.key) }?.value ?? prices["claude-sonnet-4-5"]!
    }
}

/// An API answer the agent does not retry (400, 401, 403, 404, ...).
struct FatalAPIError: Error, CustomStringConvertible {
    let description: String
}

package struct BuiltinAgent: Agent {
    package let kind = AgentKind.builtin
    let configuration: BuiltinAgentConfiguration
    /// One transport per run (a curl handle belongs to one thread), for each provider the server has an endpoint for.
    let transports: [ModelProvider: @Sendable () throws -> MessagesTransport]

    package init(configuration: BuiltinAgentConfiguration, transports: [ModelProvider: @Sendable () throws -> MessagesTransport]) {
        self.configuration = configuration
        self.transports = transports
    }

    /// An agent speaking the Messages API only.
    package init(configuration: BuiltinAgentConfiguration, makeTransport: @escaping @Sendable () throws -> MessagesTransport) {
        self.init(configuration: configuration, transports: [.anthropic: makeTransport])
    }

    /// The MCP servers' FIFO directory (created here, empty): `.mcp.json` is read only after
    /// setup, but the run sandbox's mounts are fixed when it opens.
    package func sandboxBinds(_ mounts: SandboxMounts) -> [SandboxBind] {
        let bind = MCPServers.bind(mounts)
        try? FileManager.default.createDirectory(atPath: bind.host, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return [bind]
    }

    package func run(_ context: AgentContext) throws -> AgentOutcome {
        let provider = context.task.provider ?? configuration.defaultProvider
        let model = context.task.model ?? (provider == .openai ? configuration.defaultOpenAIModel : configuration.defaultModel)
        guard let makeTransport = transports[provider] else {
            let others = transports.keys.map(\.rawValue).sorted()
            return AgentOutcome(
                succeeded: false, summary: "",
                error: "this server has no endpoint for provider \(provider.rawValue) "
                    + (provider == .openai ? "(an admin sets OPENAI_API_KEY and/or OPENAI_BASE_URL)" : "(an admin sets ANTHROPIC_API_KEY)")
                    + (others.isEmpty ? "" : "; use provider: \(others.joined(separator: " or "))"), model: model)
        }
        let wire = ModelWire(provider)
        let maxTurns = min(context.task.maxTurns ?? configuration.maxTurns, configuration.maxTurns)
        let maxCost = [context.task.maxCostUSD, configuration.maxCostUSD].compactMap { $0 }.min()
        let files = WorkspaceFiles(
            root: context.mounts.workspace,
            displayRoot: context.sandbox.workspacePath == "." ? context.mounts.workspace : context.sandbox.workspacePath)
        let transport = try makeTransport()
        var tools = AgentTools(context: context, files: files)
        // The repository's MCP servers run in the sandbox for the whole run; they end with it.
        tools.mcp = MCPServers.start(context: context, files: files)
        defer { tools.mcp?.stop() }
        let (price, listed, fallback) = configuration.price(model, provider: provider)
        if !listed {
            context.log(
                RunEvent(
                    .info,
                    "model \(model) is not in the \(provider.rawValue) price table: its cost is counted at \(fallback)'s price (an admin can set prices: for it)"
                ))
        }

        var usage = AgentUsage()
        var messages: [JSONValue] = [wire.user(context.prompt)]
        let system = Self.systemPrompt(context: context, files: files)
        var checkRounds = 0
        var lastText = ""
        if let resume = context.resume {
            // Go on from the saved conversation (the workspace already holds its work), with a note.
            if let saved = BuiltinConversation.decode(resume.conversation), saved.provider == provider.rawValue, !saved.messages.isEmpty {
                messages = saved.messages
                lastText = saved.lastText
                if resume.reason == .interrupted {
                    // The same run: its budgets count what it spent before the restart.
                    usage = saved.usage
                    checkRounds = saved.checkRounds
                }
                context.log(RunEvent(.info, "resuming the conversation: \(saved.messages.count) messages, \(saved.usage.turns) turns"))
            } else {
                context.log(RunEvent(.info, "no saved conversation to resume: starting from the task, with the work so far in the workspace"))
            }
            wire.appendUserText(resume.note, to: &messages)
        }

        func outcome(_ ok: Bool, error: String? = nil, limit: LimitHit? = nil) -> AgentOutcome {
            AgentOutcome(succeeded: ok, summary: lastText, error: error, limit: limit, usage: usage, model: model)
        }
        // After each turn (its tool calls ran, or check feedback was added) and at the end: the
        // workspace as a checkpoint, and the conversation it matches.
        var savedCount = messages.count
        func saveState() {
            guard let checkpointer = context.checkpointer, messages.count != savedCount else { return }
            savedCount = messages.count
            let state = BuiltinConversation(
                provider: provider.rawValue, model: model, messages: messages, usage: usage, checkRounds: checkRounds, lastText: lastText)
            checkpointer.save(conversation: try? JSONEncoder().encode(state), turns: usage.turns, workspace: true)
        }
        defer { saveState() }

        while true {
            saveState()
            if let reason = context.cancel.reason { return outcome(false, error: reason.explanation, limit: reason) }
            if MonotonicClock.now >= context.deadline { return outcome(false, error: "time limit reached", limit: .timeout) }
            if usage.turns >= maxTurns { return outcome(false, error: "stopped after \(usage.turns) turns (max_turns)", limit: .turns) }
            if let maxCost, usage.costUSD >= maxCost {
                return outcome(false, error: BudgetText.costStop(spent: usage.costUSD, budget: maxCost), limit: .cost)
            }
            let body = wire.body(model: model, maxTokens: configuration.maxTokens, system: system, tools: tools.extraSpecs, messages: messages)
            let message: AssistantMessage
            do {
                message = try request(Array(body.serialized().utf8), transport: transport, context: context, wire: wire)
            } catch let error as FatalAPIError {
                return outcome(false, error: error.description)
            }
            usage.turns += 1
            usage.inputTokens += message.usage.inputTokens
            usage.outputTokens += message.usage.outputTokens
            usage.cacheReadTokens += message.usage.cacheReadTokens
            usage.cacheWriteTokens += message.usage.cacheWriteTokens
            usage.costUSD += price.cost(message.usage)
            if !message.text.isEmpty {
                lastText = message.text
                // On scalars: "\r\n" is one Character, so a Character split would not break a CRLF line.
                for line in message.text.unicodeScalars.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
                    context.log(RunEvent(.info, "agent: " + String(String.UnicodeScalarView(line))))
                }
            }
            messages.append(wire.assistant(message))

            let toolUses = message.content.compactMap { block -> (String, String, JSONValue)? in
                if case .toolUse(let id, let name, let input) = block { return (id, name, input) } else { return nil }
            }
            if !toolUses.isEmpty {
                var results: [ToolResult] = []
                for (id, name, input) in toolUses {
                    let (text, isError) = tools.run(name: name, input: input)
                    results.append(ToolResult(id: id, text: text, isError: isError))
                }
                messages += wire.toolResults(results)
                continue
            }
            if message.stopReason == "max_tokens" {
                messages.append(wire.user("Your reply was cut at the token limit. Continue."))
                continue
            }
            // The agent says it is done. If the task has a check, it decides; a failure goes back to the agent.
            guard let check = context.task.check, !check.isEmpty, checkRounds < configuration.maxCheckRounds else {
                return outcome(true)
            }
            checkRounds += 1
            context.log(RunEvent(.check, "$ check: \(ScriptSummary.firstLine(check))"))
            let result = try context.runScript(check)
            if result.succeeded {
                context.log(RunEvent(.check, "check passed"))
                return outcome(true)
            }
            if let limit = result.limit, limit != .timeout || MonotonicClock.now >= context.deadline {
                return outcome(false, error: "check: \(limit.explanation)", limit: limit)
            }
            context.log(RunEvent(.check, "check failed (exit \(result.exitStatus)); back to the agent"))
            messages.append(
                wire.user(
                    """
                    The task's check failed (exit \(result.exitStatus)). It runs:
                    \(check)
                    Its output:
                    \(VisibleText.commandOutput(result.output, budget: AgentTools.maxResultBytes))
                    Fix the problem, then reply with a short summary of the change.
                    """))
        }
    }

    /// One API call with bounded retries. Only a complete stream is used.
    func request(
        _ body: [UInt8], transport: MessagesTransport, context: AgentContext,
        wire: ModelWire = .anthropicMessages
    ) throws -> AssistantMessage {
        var attempt = 0
        while true {
            attempt += 1
            var delay = min(configuration.maxRetryDelay, configuration.baseRetryDelay * pow(2, Double(attempt - 1)))
            var why = ""
            do {
                var assembler = wire.makeAssembler()
                let result = try transport.send(body: body) { event, data in try assembler.feed(event: event, data: data) }
                if (200..<300).contains(result.status) {
                    return try assembler.finish()
                }
                let apiMessage =
                    JSONValue.parse(result.body).flatMap { $0["error"]?["message"]?.string ?? $0["error"]?.string } ?? String(result.body.prefix(300))
                why = "HTTP \(result.status): \(apiMessage)"
                guard [408, 409, 429, 500, 502, 503, 504, 529].contains(result.status) else {
                    throw FatalAPIError(description: "\(wire.apiName) refused the request: \(why)")
                }
                if let after = result.headers["retry-after"].flatMap(Double.init) { delay = min(configuration.maxRetryDelay, max(delay, after)) }
            } catch let error as FatalAPIError {
                throw error
            } catch let error as StreamError {
                why = error.description
                if case .malformed = error { why = "malformed stream: \(error)" }
            } catch {
                why = "\(error)"
            }
            guard attempt < configuration.maxAttempts else {
                throw FatalAPIError(description: "\(wire.apiName) failed \(attempt) times; last: \(why)")
            }
            guard MonotonicClock.now + delay < context.deadline else {
                throw FatalAPIError(description: "\(wire.apiName) failed and the time limit leaves no room to retry: \(why)")
            }
            context.log(
                RunEvent(.info, "API: \(why); retrying in \(String(format: "%.1f", delay))s (attempt \(attempt + 1) of \(configuration.maxAttempts))")
            )
            if let reason = Self.wait(delay, cancel: context.cancel) { throw FatalAPIError(description: reason.explanation) }
        }
    }

    /// How often a retry wait looks at the cancellation flag (a cancel is seen within this).
    static let cancelPollSeconds = 0.02

    /// Sleeps `seconds`, waking early when the run is canceled (returns why). A retry wait can be
    /// a minute (Retry-After); the flag has no way to signal, so it is polled in short naps.
    static func wait(_ seconds: Double, cancel: CancellationFlag) -> LimitHit? {
        let until = MonotonicClock.now + seconds
        while true {
            if let reason = cancel.reason { return reason }
            let left = until - MonotonicClock.now
            if left <= 0 { return nil }
            usleep(useconds_t(min(left, cancelPollSeconds) * 1_000_000))
        }
    }

    static func systemPrompt(context: AgentContext, files: WorkspaceFiles) -> String {
        var prompt = """
            You are a coding agent run by patchd. The repository is checked out at \(files.displayRoot) (your working \
            directory), on a branch the user pushed; the user's message is the task.
            Work with the tools: `bash` runs commands in one persistent shell started in \(files.displayRoot) (the working \
            directory, variables and an activated virtualenv carry over between calls; no network unless the task allows \
            it), `str_replace_based_edit_tool` views and edits files (paths inside \(files.displayRoot)).
            Make the change the task asks for, run what checks you can, and keep the change focused.
            Do not commit, push or create branches: patchd turns the files you leave into one commit on agent/BRANCH.
            When you are done, reply with a short summary of what you changed and why; it becomes the commit message body.
            """
        if let check = context.task.check, !check.isEmpty {
            prompt += "\nWhen you finish, patchd runs this check; if it fails you get its output and continue:\n\(check)"
        }
        for name in ["AGENTS.md", "CLAUDE.md"] {
            if let text = try? files.read(name, limit: 64 * 1024) {
                prompt += "\n\nThe repository's \(name):\n\(text)"
                break
            }
        }
        return prompt
    }
}
