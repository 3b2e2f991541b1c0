// PatchdCore: the task file `.patchd/task.md` (YAML front matter + Markdown body) parsed into a TaskSpec, strictly.

import Egress
import Foundation
import Yams

/// Who does the work of a run.
package enum AgentKind: String, Sendable, Codable, CaseIterable {
    case builtin, claudeCode = "claude-code", codex, command
    /// Whether the agent is an LLM (takes a model and a Markdown task) rather than a script.
    package var usesModel: Bool { self != .command }
}

/// Which API the builtin agent speaks: Anthropic's Messages API, or the Chat Completions API of
/// OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenRouter, LiteLLM).
package enum ModelProvider: String, Sendable, Codable, CaseIterable {
    case anthropic, openai
}

/// What a task file (or a task given as text) asks for. Limits are the task's wishes; the server caps them.
package struct TaskSpec: Sendable, Equatable, Codable {
    /// nil: the server's default.
    package var agent: AgentKind?
    package var model: String?
    /// The builtin agent's API (nil: the server's default_provider).
    package var provider: ModelProvider?
    /// From "20m", "90s", "2h", "1h30m", or a bare integer = seconds; > 0.
    package var timeoutSeconds: Int?
    /// Integer >= 1.
    package var maxTurns: Int?
    /// Number > 0.
    package var maxCostUSD: Double?
    package var setup: String?
    package var run: String?
    package var check: String?
    /// The longest one builtin bash tool call may take (`command_timeout`); nil: the default.
    package var commandTimeoutSeconds: Int?
    /// Extra patterns (.gitignore syntax) for untracked paths kept out of the result (`exclude`).
    package var resultExclude: [String]?
    /// `default_excludes: false` turns `TaskSpec.defaultResultExclude` off.
    package var defaultExcludes: Bool?
    /// Which phases may reach the allowlist (`network`); nil: the repository's or server's default.
    package var network: NetworkMode?
    /// Hosts added to the allowlist for this run (`allowed_domains`): `pypi.org`, `*.example.com`,
    /// `host:8443`, or a preset name; checked by the egress policy parser when the run starts.
    package var allowedDomains: [String]?
    /// Paths or globs whose content keys the cached environment (`cache_key`); nil: the
    /// dependency manifests found in the pushed tree (`EnvironmentKey.defaultManifests`).
    package var cacheKey: [String]?
    /// Runs instead of setup when the environment came from the cache (`maintenance`).
    package var maintenance: String?
    /// Best of N: how many attempts from the same base (`attempts`, integer >= 1; the server caps it).
    package var attempts: Int?
    /// Models given to the attempts round-robin (`models`, LLM agents only; not with `model`).
    package var models: [String]?
    /// Markdown after the front matter, trimmed of surrounding blank lines.
    package var body: String

    package static let defaultCommandTimeoutSeconds = 600

    /// Untracked caches and environments kept out of every result unless the task turns them
    /// off (.gitignore syntax; tracked files are never excluded).
    package static let defaultResultExclude = [
        "__pycache__/", "*.py[cod]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".tox/", ".nox/",
        ".venv/", "venv/", "node_modules/", ".npm/", ".cache/", ".gradle/",
    ]

    /// The exclude patterns in force for this task.
    package var resultExcludePatterns: [String] {
        (defaultExcludes == false ? [] : Self.defaultResultExclude) + (resultExclude ?? [])
    }

    package init(
        agent: AgentKind? = nil, model: String? = nil, timeoutSeconds: Int? = nil, maxTurns: Int? = nil,
        maxCostUSD: Double? = nil, setup: String? = nil, run: String? = nil, check: String? = nil,
        body: String = ""
    ) {
        self.agent = agent
        self.model = model
        self.timeoutSeconds = timeoutSeconds
        self.maxTurns = maxTurns
        self.maxCostUSD = maxCostUSD
        self.setup = setup
        self.run = run
        self.check = check
        self.body = body
    }

    /// The first non-empty body line without leading '#'s and spaces (control characters removed),
    /// at most 72 characters; "" if there is no body.
    package var title: String {
        for line in body.split(separator: "\n", omittingEmptySubsequences: true) {
            var scalars = String.UnicodeScalarView()
            for scalar in line.unicodeScalars {
                if scalar == "\t" { scalars.append(" ") } else if scalar.properties.generalCategory != .control { scalars.append(scalar) }
            }
            var text = Substring(String(scalars)).drop { $0 == "#" || $0 == " " }
            while text.last == " " { text.removeLast() }
            guard !text.isEmpty else { continue }
            var title = text.prefix(TaskFile.maxTitleLength)
            while title.last == " " { title.removeLast() }
            return String(title)
        }
        return ""
    }
}

/// A refused task: the file, the line when known, what is wrong and how to fix it.
package struct TaskFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// e.g. ".patchd/task.md" or "push option task".
    package let file: String
    /// 1-based line in the whole file, when known.
    package let line: Int?
    /// What is wrong and how to fix it.
    package let message: String

    package init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// "FILE:LINE: MESSAGE", or "FILE: MESSAGE" without a line.
    package var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

package enum TaskFile {
    package static let path = ".patchd/task.md"
    package static let maxBytes = 64 * 1024
    /// The most attempts a task may ask for (a sanity bound; the server's max_attempts caps lower).
    package static let maxAttempts = 64
    /// The longest timeout a task file may ask for (a sanity bound; the server caps lower).
    package static let maxTimeoutSeconds = 366 * 24 * 3600
    package static let maxTitleLength = 72
    /// The front matter keys, sorted.
    package static let knownKeys = [
        "agent", "allowed_domains", "attempts", "cache_key", "check", "command_timeout", "default_excludes", "exclude",
        "maintenance", "max_cost_usd", "max_turns", "model", "models", "network", "provider", "run", "setup", "timeout",
    ]

    /// Parses raw bytes. `defaultAgent` resolves the body rules when the file names no agent.
    package static func parse(_ bytes: [UInt8], file: String = path, defaultAgent: AgentKind) throws(TaskFileError) -> TaskSpec {
        func fail(_ line: Int?, _ message: String) -> TaskFileError { TaskFileError(file: file, line: line, message: message) }

        guard bytes.count <= maxBytes else {
            throw fail(
                nil,
                "the file is \(bytes.count) bytes, over the limit of \(maxBytes) bytes (64 KiB); "
                    + "shorten the task description and move long material into files in the repository")
        }
        var content = bytes[...]
        if content.starts(with: [0xEF, 0xBB, 0xBF]) { content = content.dropFirst(3) }
        if let nul = content.firstIndex(of: 0) {
            throw fail(
                lineNumber(at: nul, in: content),
                "the file contains a NUL byte; a task file must be UTF-8 text: remove the NUL byte")
        }
        if let bad = firstInvalidUTF8(content) {
            throw fail(
                lineNumber(at: bad, in: content),
                "the file is not valid UTF-8 (bad byte 0x\(String(content[bad], radix: 16, uppercase: true))); "
                    + "save it as UTF-8 text")
        }
        let lines = splitLines(content)

        // Front matter: a first line `---`, up to the next `---` line.
        var spec = TaskSpec()
        var bodyStart = 0
        var agentLine: Int?
        var runLine: Int?
        var providerLine: Int?
        var modelsLine: Int?
        if isDelimiter(lines[0]) {
            guard let close = lines.indices.dropFirst().first(where: { isDelimiter(lines[$0]) }) else {
                throw fail(
                    1,
                    "the front matter opened by '---' on line 1 is never closed; add a line with only '---' "
                        + "after the last key (or remove line 1 if the file has no front matter)")
            }
            bodyStart = close + 1
            let yamlLines = lines[1..<close]
            for (index, line) in zip(yamlLines.indices, yamlLines) {
                if line.unicodeScalars.contains(where: { ["\u{85}", "\u{2028}", "\u{2029}"].contains($0) }) {
                    throw fail(
                        index + 1,
                        "the front matter contains a Unicode line or paragraph separator "
                            + "(U+0085, U+2028 or U+2029); replace it with a plain newline or a space")
                }
            }
            let fields = try FrontMatter.parse(yamlLines.joined(separator: "\n") + "\n", firstLine: 2, file: file)
            spec = fields.spec
            agentLine = fields.agentLine
            runLine = fields.runLine
            providerLine = fields.providerLine
            modelsLine = fields.modelsLine
        }
        spec.body = trimBlankLines(lines[bodyStart...])

        let agent = spec.agent ?? defaultAgent
        if let provider = spec.provider, agent != .builtin {
            let whose = spec.agent == nil ? "the server's default agent is '\(agent.rawValue)'" : "the agent is '\(agent.rawValue)'"
            throw fail(
                providerLine,
                "'provider' is only for `agent: builtin` (it picks the API the builtin agent speaks), but "
                    + "\(whose)\(agent == .claudeCode ? ", which always speaks Anthropic's API" : agent == .codex ? ", which always speaks OpenAI's API" : "")"
                    + "; remove `provider: \(provider.rawValue)` or set `agent: builtin`")
        }
        if let models = spec.models {
            if !agent.usesModel {
                let whose = spec.agent == nil ? "the server's default agent is 'command'" : "the agent is 'command'"
                throw fail(
                    modelsLine,
                    "'models' spreads attempts over LLM models, but \(whose), which runs a script; remove 'models:' "
                        + "(a command task can vary per attempt with $PATCHD_ATTEMPT) or use an LLM agent")
            }
            if let model = spec.model {
                throw fail(
                    modelsLine,
                    "give either 'model' or 'models', not both; put '\(model)' into the list "
                        + "(`models: [\(([model] + models.filter { $0 != model }).joined(separator: ", "))]`) and remove 'model:'")
            }
        }
        if agent == .command {
            guard spec.run != nil else {
                let whose = spec.agent == nil ? "the server's default agent is 'command', which" : "agent 'command'"
                let how =
                    bodyStart > 0
                    ? "add `run: |` to the front matter with the shell commands on indented lines "
                        + "below it"
                    : "start the file with front matter: a line '---', `run: |` with the shell commands on "
                        + "indented lines below it, and a closing '---' line"
                throw fail(
                    agentLine ?? 1,
                    "\(whose) needs a 'run:' script; \(how)"
                        + (spec.agent == nil ? ", or set `agent: builtin` to have an LLM agent do the task" : ""))
            }
        } else {
            if let runLine {
                throw fail(
                    runLine,
                    "'run' is only for `agent: command`, but the agent is '\(agent.rawValue)', which "
                        + "takes its task from the Markdown body; remove 'run:' (use 'setup:' or 'check:' for commands "
                        + "around the agent) or set `agent: command`")
            }
            if spec.body.allSatisfy(\.isWhitespace) {
                let message =
                    "the task has no description; write what the agent should do, in Markdown, "
                    + (bodyStart > 0 ? "below the closing '---'" : "in the file")
                    + " (or use `agent: command` with a 'run:' script)"
                throw fail(bodyStart > 0 ? bodyStart : 1, message)
            }
        }
        return spec
    }

    /// A task given as text (git push -o task=TEXT or `run start ... -- TEXT`): all body, no front matter parsing.
    /// For `agent: command` the text is the `run` script and the body is empty.
    package static func fromText(
        _ text: String, agent: AgentKind?, defaultAgent: AgentKind,
        file: String = "push option task"
    ) throws(TaskFileError) -> TaskSpec {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxBytes else {
            throw TaskFileError(
                file: file, line: nil,
                message: "the task is \(bytes.count) bytes, over the limit of "
                    + "\(maxBytes) bytes (64 KiB); shorten it, or commit the details and refer to them")
        }
        if let nul = bytes.firstIndex(of: 0) {
            throw TaskFileError(
                file: file, line: lineNumber(at: nul, in: bytes[...]),
                message: "the task contains a NUL byte; remove it")
        }
        let trimmed = trimBlankLines(splitLines(bytes[...])[...])
        var spec = TaskSpec(agent: agent)
        if (agent ?? defaultAgent) == .command {
            guard !trimmed.allSatisfy(\.isWhitespace) else {
                throw TaskFileError(
                    file: file, line: nil,
                    message: "the task is empty; for agent 'command' the task "
                        + "text is the shell script to run: give the commands")
            }
            spec.run = trimmed
        } else {
            guard !trimmed.allSatisfy(\.isWhitespace) else {
                throw TaskFileError(file: file, line: nil, message: "the task is empty; write what the agent should do")
            }
            spec.body = trimmed
        }
        return spec
    }

    // MARK: Text

    /// `---` alone on its line (trailing spaces and tabs allowed).
    static func isDelimiter(_ line: String) -> Bool {
        line.hasPrefix("---") && line.dropFirst(3).allSatisfy { $0 == " " || $0 == "\t" }
    }

    /// Lines split at LF, CRLF or a lone CR; there is always at least one (possibly empty) line.
    static func splitLines(_ bytes: ArraySlice<UInt8>) -> [String] {
        var lines: [String] = []
        var start = bytes.startIndex
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let byte = bytes[i]
            if byte == 0x0A || byte == 0x0D {
                lines.append(String(decoding: bytes[start..<i], as: UTF8.self))
                if byte == 0x0D, i + 1 < bytes.endIndex, bytes[i + 1] == 0x0A { i += 1 }
                start = i + 1
            }
            i += 1
        }
        lines.append(String(decoding: bytes[start..<bytes.endIndex], as: UTF8.self))
        return lines
    }

    /// The 1-based line holding the byte at `index`, counting LF, CRLF and lone CR as line breaks.
    static func lineNumber(at index: Int, in bytes: ArraySlice<UInt8>) -> Int {
        var line = 1
        var i = bytes.startIndex
        while i < index {
            if bytes[i] == 0x0A || (bytes[i] == 0x0D && (i + 1 >= bytes.endIndex || bytes[i + 1] != 0x0A)) { line += 1 }
            i += 1
        }
        return line
    }

    /// The index of the first byte that does not start or continue a valid UTF-8 sequence, if any.
    static func firstInvalidUTF8(_ bytes: ArraySlice<UInt8>) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = bytes.startIndex
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// The lines joined with LF, without leading and trailing blank (whitespace-only) lines.
    static func trimBlankLines(_ lines: ArraySlice<String>) -> String {
        func blank(_ line: String) -> Bool { line.allSatisfy { $0 == " " || $0 == "\t" } }
        guard let first = lines.firstIndex(where: { !blank($0) }), let last = lines.lastIndex(where: { !blank($0) }) else {
            return ""
        }
        return lines[first...last].joined(separator: "\n")
    }

    /// "20m", "90s", "2h", "1h30m", "1h30m15s" (units h, m, s in that order, each once) or bare digits (seconds).
    /// nil if malformed, zero, or over `maxTimeoutSeconds`.
    package static func parseDuration(_ text: String) -> Int? {
        let units: [(Character, Int)] = [("h", 3600), ("m", 60), ("s", 1)]
        var total = 0
        var nextUnit = 0
        var digits = ""
        var sawUnit = false
        func add(_ number: String, _ scale: Int) -> Bool {
            guard !number.isEmpty, number.count <= 12, let value = Int(number) else { return false }
            total += value * scale
            return total <= maxTimeoutSeconds
        }
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
            } else if let unit = units[nextUnit...].firstIndex(where: { $0.0 == character }) {
                guard add(digits, units[unit].1) else { return nil }
                digits = ""
                nextUnit = unit + 1
                sawUnit = true
            } else {
                return nil
            }
        }
        if !digits.isEmpty {
            guard !sawUnit, add(digits, 1) else { return nil }  // "1h30" is ambiguous
        } else if !sawUnit {
            return nil
        }
        return total > 0 ? total : nil
    }
}

// MARK: - Front matter

/// The YAML between the `---` lines, checked key by key against the strict schema.
private struct FrontMatter {
    var spec = TaskSpec()
    /// File lines (not YAML lines) of the `agent:` and `run:` keys.
    var agentLine: Int?
    var runLine: Int?
    var providerLine: Int?
    var modelsLine: Int?

    /// `firstLine` is the file line of the YAML's line 1.
    static func parse(_ yaml: String, firstLine: Int, file: String) throws(TaskFileError) -> FrontMatter {
        let offset = firstLine - 1
        func fail(_ yamlLine: Int?, _ message: String) -> TaskFileError {
            TaskFileError(file: file, line: yamlLine.map { $0 + offset }, message: message)
        }
        func line(_ node: Node) -> Int? { node.mark.map(\.line) }

        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw yamlFailure(error, yaml: yaml, fail: fail)
        } catch {
            throw fail(nil, "the front matter could not be read as YAML (\(error)); check its syntax")
        }
        var result = FrontMatter()
        guard let root else { return result }  // empty, or only comments
        guard case .mapping(let mapping) = root else {
            throw fail(
                line(root) ?? 1,
                "the front matter must be `key: value` lines (a YAML mapping), not "
                    + describe(root) + "; known keys: " + TaskFile.knownKeys.joined(separator: ", "))
        }

        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                throw fail(
                    line(keyNode),
                    "keys must be plain names, not \(describe(keyNode)); known keys: "
                        + TaskFile.knownKeys.joined(separator: ", "))
            }
            let key = keyScalar.string
            guard TaskFile.knownKeys.contains(key) else {
                var message = "unknown key '\(key)'; known keys: " + TaskFile.knownKeys.joined(separator: ", ")
                if let guess = TaskFile.knownKeys.first(where: { editDistance($0, key) <= 2 }) {
                    message += " (did you mean '\(guess)'?)"
                }
                throw fail(line(keyNode), message)
            }
            let at = line(value) ?? line(keyNode)
            if case .scalar = value, tagName(value) == .null {
                throw fail(at, "'\(key)' has no value; give it one or remove the line")
            }
            switch key {
            case "agent":
                let allowed = AgentKind.allCases.map(\.rawValue)
                guard case .scalar(let s) = value, let agent = AgentKind(rawValue: s.string) else {
                    throw fail(at, "unknown agent \(describe(value)); use one of: " + allowed.joined(separator: ", "))
                }
                result.spec.agent = agent
                result.agentLine = line(keyNode).map { $0 + offset }
            case "provider":
                let allowed = ModelProvider.allCases.map(\.rawValue)
                guard case .scalar(let s) = value, let provider = ModelProvider(rawValue: s.string) else {
                    throw fail(
                        at,
                        "unknown provider \(describe(value)); use one of: " + allowed.joined(separator: ", ")
                            + " (openai also means any OpenAI-compatible server the admin configured: Ollama, vLLM, a gateway)")
                }
                result.spec.provider = provider
                result.providerLine = line(keyNode).map { $0 + offset }
            case "model":
                guard let text = string(value) else {
                    throw fail(
                        at,
                        "'model' must be a model name, not \(describe(value)); write it as text, "
                            + "e.g. `model: claude-sonnet-4-5` (quote it if it looks like a number)")
                }
                let name = text.trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    throw fail(at, "'model' must be a non-empty model name on one line, e.g. `model: claude-sonnet-4-5`")
                }
                result.spec.model = name
            case "timeout":
                let seconds: Int?
                switch scalarKind(value) {
                case .string(let text): seconds = TaskFile.parseDuration(text)
                case .integer(let text): seconds = TaskFile.parseDuration(text)  // digits only: seconds
                default: seconds = nil
                }
                guard let seconds else {
                    throw fail(
                        at,
                        "'timeout' must be a duration like 90s, 20m, 2h or 1h30m, or a whole number of "
                            + "seconds, greater than 0 and at most \(TaskFile.maxTimeoutSeconds / 86400) days; not "
                            + describe(value))
                }
                result.spec.timeoutSeconds = seconds
            case "command_timeout":
                let seconds: Int?
                switch scalarKind(value) {
                case .string(let text), .integer(let text): seconds = TaskFile.parseDuration(text)
                default: seconds = nil
                }
                guard let seconds else {
                    throw fail(
                        at,
                        "'command_timeout' must be a duration like 90s, 10m or 1h, or a whole number of seconds, "
                            + "greater than 0; not " + describe(value))
                }
                result.spec.commandTimeoutSeconds = seconds
            case "default_excludes":
                guard case .scalar(let s) = value, tagName(value) == .bool, ["true", "false"].contains(s.string) else {
                    throw fail(
                        at,
                        "'default_excludes' must be true or false (false keeps caches such as __pycache__/ and "
                            + "node_modules/ in the result), not " + describe(value))
                }
                result.spec.defaultExcludes = s.string == "true"
            case "exclude":
                var patterns: [String] = []
                if case .sequence(let items) = value {
                    for item in items {
                        guard let text = string(item), !text.isEmpty, text.count <= 256,
                            !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                        else {
                            throw fail(
                                line(item) ?? at,
                                "each 'exclude' entry must be a .gitignore pattern on one line "
                                    + "(at most 256 characters), like `dist/` or `\"*.log\"`, not " + describe(item))
                        }
                        patterns.append(text)
                    }
                } else {
                    throw fail(
                        at,
                        "'exclude' must be a list of .gitignore patterns, like `exclude: [dist/, \"*.log\"]`, not "
                            + describe(value))
                }
                guard patterns.count <= 100 else { throw fail(at, "'exclude' has \(patterns.count) patterns; at most 100") }
                result.spec.resultExclude = patterns
            case "network":
                let allowed = NetworkMode.allCases.map(\.rawValue)
                // YAML 1.1 reads a bare `on` or `none`-like word as a boolean or null: take the text as written.
                guard case .scalar(let s) = value, let mode = NetworkMode(rawValue: s.string) else {
                    throw fail(
                        at,
                        "'network' must be one of " + allowed.joined(separator: ", ")
                            + " (none: no connections; setup: setup reaches the allowlist, the agent and check do not; "
                            + "on: every phase does), not " + describe(value))
                }
                result.spec.network = mode
            case "allowed_domains":
                var entries: [String] = []
                guard case .sequence(let items) = value else {
                    throw fail(
                        at,
                        "'allowed_domains' must be a list of host names, like `allowed_domains: [pypi.org, \"*.example.com\"]`, not "
                            + describe(value))
                }
                for item in items {
                    guard let text = string(item), !text.isEmpty, text.utf8.count <= 260,
                        !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == " " })
                    else {
                        throw fail(
                            line(item) ?? at,
                            "each 'allowed_domains' entry must be a host name (optionally `*.` in front or `:PORT` after) "
                                + "or a preset such as preset:registries, not " + describe(item))
                    }
                    do {
                        _ = try EgressPolicy.parseEntry(text, source: "allowed_domains", position: entries.count + 1)
                    } catch {
                        throw fail(line(item) ?? at, "\(error)")
                    }
                    entries.append(text)
                }
                guard entries.count <= 100 else { throw fail(at, "'allowed_domains' has \(entries.count) entries; at most 100") }
                result.spec.allowedDomains = entries
            case "attempts":
                guard case .integer(let text) = scalarKind(value), let count = Int(text), (1...TaskFile.maxAttempts).contains(count)
                else {
                    throw fail(
                        at,
                        "'attempts' must be a whole number from 1 to \(TaskFile.maxAttempts), like `attempts: 3` "
                            + "(the server runs at most its max_attempts), not " + describe(value)
                            + (isQuoted(value) ? "; remove the quotes" : ""))
                }
                result.spec.attempts = count
            case "models":
                guard case .sequence(let items) = value, !items.isEmpty else {
                    throw fail(
                        at,
                        "'models' must be a list of model names, like `models: [claude-sonnet-4-5, claude-opus-4-1]`, not "
                            + describe(value))
                }
                var names: [String] = []
                for item in items {
                    let name = string(item)?.trimmingCharacters(in: .whitespaces) ?? ""
                    guard !name.isEmpty, name.count <= 200,
                        !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                    else {
                        throw fail(
                            line(item) ?? at,
                            "each 'models' entry must be a model name on one line (quote it if it looks like a number), not "
                                + describe(item))
                    }
                    names.append(name)
                }
                guard names.count <= TaskFile.maxAttempts else {
                    throw fail(at, "'models' has \(names.count) entries; at most \(TaskFile.maxAttempts)")
                }
                result.spec.models = names
                result.modelsLine = line(keyNode).map { $0 + offset }
            case "max_turns":
                guard case .integer(let text) = scalarKind(value), let turns = Int(text), turns >= 1 else {
                    throw fail(
                        at,
                        "'max_turns' must be a whole number of at least 1, like `max_turns: 40`, not "
                            + describe(value) + (isQuoted(value) ? "; remove the quotes" : ""))
                }
                result.spec.maxTurns = turns
            case "max_cost_usd":
                let cost: Double?
                switch scalarKind(value) {
                case .integer(let text), .decimal(let text): cost = Double(text)
                default: cost = nil
                }
                guard let cost, cost.isFinite, cost > 0 else {
                    throw fail(
                        at,
                        "'max_cost_usd' must be a number of dollars greater than 0, like "
                            + "`max_cost_usd: 2.5`, not " + describe(value) + (isQuoted(value) ? "; remove the quotes" : ""))
                }
                result.spec.maxCostUSD = cost
            case "cache_key":
                var patterns: [String] = []
                guard case .sequence(let items) = value else {
                    throw fail(
                        at,
                        "'cache_key' must be a list of paths or globs in the repository whose content decides when setup runs again, "
                            + "like `cache_key: [requirements.txt, \"requirements/*.txt\"]`, not " + describe(value))
                }
                for item in items {
                    guard let text = string(item), !text.isEmpty, text.utf8.count <= 256, !text.hasPrefix("/"),
                        !text.split(separator: "/").contains(".."),
                        !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                    else {
                        throw fail(
                            line(item) ?? at,
                            "each 'cache_key' entry must be a relative path or glob on one line (at most 256 characters, "
                                + "no leading '/', no '..'), like `uv.lock` or `\"**/package.json\"`, not " + describe(item))
                    }
                    patterns.append(text)
                }
                guard !patterns.isEmpty, patterns.count <= 100 else {
                    throw fail(at, "'cache_key' has \(patterns.count) entries; give 1 to 100 (or remove it to use the default manifests)")
                }
                result.spec.cacheKey = patterns
            case "setup", "run", "check", "maintenance":
                guard let script = string(value) else {
                    throw fail(
                        at,
                        "'\(key)' must be a shell script (text), not \(describe(value)); write "
                            + "`\(key): |` and the commands on indented lines below it")
                }
                guard !script.allSatisfy(\.isWhitespace) else {
                    throw fail(
                        at,
                        "'\(key)' is empty; write the commands on indented lines below `\(key): |`, "
                            + "or remove the key")
                }
                switch key {
                case "setup": result.spec.setup = script
                case "maintenance": result.spec.maintenance = script
                case "run": result.spec.run = script; result.runLine = line(keyNode).map { $0 + offset }
                default: result.spec.check = script
                }
            default:
                break
            }
        }
        return result
    }

    // MARK: Scalars

    enum ScalarKind {
        case string(String)  // str tag: quoted, block, or plain text that is not another type
        case integer(String)  // plain decimal digits only (no sign, '_', 0x, 0o, 1:30)
        case decimal(String)  // plain digits with one '.', e.g. 2.5, .5, 3.
        case other
    }

    static func scalarKind(_ node: Node) -> ScalarKind {
        guard case .scalar(let s) = node else { return .other }
        let text = s.string
        switch tagName(node) {
        case .str:
            return .string(text)
        case .int:
            return !text.isEmpty && text.allSatisfy({ $0.isASCII && $0.isNumber }) ? .integer(text) : .other
        case .float:
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            let ok =
                parts.count == 2 && parts.allSatisfy { $0.allSatisfy { $0.isASCII && $0.isNumber } }
                && parts.contains { !$0.isEmpty }
            return ok ? .decimal(text) : .other
        default:
            return .other
        }
    }

    /// The node's resolved tag (plain scalars resolved by YAML 1.1 rules; quoted and block scalars are str).
    static func tagName(_ node: Node) -> Tag.Name { Tag.Name(rawValue: node.tag.rawValue) }

    static func string(_ node: Node) -> String? {
        if case .string(let text) = scalarKind(node) { return text }
        return nil
    }

    static func isQuoted(_ node: Node) -> Bool {
        guard case .scalar(let s) = node else { return false }
        return s.style == .singleQuoted || s.style == .doubleQuoted
    }

    /// How a value reads in an error: "the list ...", "the string \"40\"", "'yes' (a boolean)".
    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping (nested keys)"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s):
            var text = s.string.replacingOccurrences(of: "\n", with: "\\n")
            if text.count > 40 { text = String(text.prefix(40)) + "..." }
            if isQuoted(node) { return "the quoted text \"\(text)\"" }
            switch tagName(node) {
            case .bool: return "'\(text)' (YAML reads it as a boolean)"
            case .null: return "an empty value"
            case .str: return "'\(text)'"
            default: return "'\(text)' (tagged \(node.tag.rawValue))"
            }
        }
    }

    // MARK: Errors

    static func yamlFailure(
        _ error: YamlError, yaml: String,
        fail: (Int?, String) -> TaskFileError
    ) -> TaskFileError {
        let hint =
            "; check the front matter's syntax: one `key: value` per line, scripts as `key: |` "
            + "with indented lines below, spaces (not tabs) for indentation, and quotes around values "
            + "containing ': ' or starting with a special character"
        func problem(_ context: YamlError.Context?, _ text: String) -> String {
            "invalid YAML: " + text + (context.map { " " + $0.text } ?? "")
        }
        switch error {
        case .scanner(let context, let text, let mark, _), .parser(let context, let text, let mark, _),
            .composer(let context, let text, let mark, _):
            // At the end of the YAML (e.g. an unclosed quote), the context (where the construct began) is more useful.
            let lineCount = yaml.reduce(0) { $1 == "\n" ? $0 + 1 : $0 }
            let line = mark.line > lineCount ? (context?.mark.line ?? lineCount) : mark.line
            return fail(line, problem(context, text) + hint)
        case .reader(let text, let offset, _, _):
            let line = offset.map { yaml.prefix($0).reduce(1) { $1 == "\n" ? $0 + 1 : $0 } }
            return fail(line, "the front matter cannot be read: \(text); remove control characters from it")
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams reports one occurrence; point at the second top-level occurrence when we can find it.
            let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
            var line = context.mark.line
            if let key = duplicates.first {
                let hits = lines.indices.filter { index in
                    ["", "\"", "'"].contains { quote in
                        let head = quote + key + quote
                        return lines[index].hasPrefix(head)
                            && lines[index].dropFirst(head.count).drop(while: { $0 == " " || $0 == "\t" }).hasPrefix(":")
                    }
                }
                if hits.count >= 2 { line = hits[1] + 1 }
            }
            let names = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return fail(line, "duplicate key \(names); each key may appear once: remove or merge the repeated one")
        default:
            return fail(nil, "the front matter could not be read as YAML (\(error))" + hint)
        }
    }

    /// Levenshtein distance, for "did you mean" hints.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in a.indices {
            var current = [i + 1]
            for j in b.indices {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (a[i] == b[j] ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}
