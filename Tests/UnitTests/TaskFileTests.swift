// UnitTests: task file parsing: front matter schema, strict types, file line numbers in errors, limits, titles.

import Foundation
import Testing

@testable import PatchdCore
@testable import Runs

@Suite struct TaskFileTests {
    static func parse(_ text: String, _ defaultAgent: AgentKind = .builtin) throws(TaskFileError) -> TaskSpec {
        try TaskFile.parse(Array(text.utf8), defaultAgent: defaultAgent)
    }

    /// The error a text must produce; fails the test if it parses.
    static func error(
        _ text: String, _ defaultAgent: AgentKind = .builtin,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> TaskFileError? {
        do {
            let spec = try parse(text, defaultAgent)
            Issue.record("expected an error, parsed \(spec)", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    static let keysList =
        "known keys: agent, allowed_domains, attempts, cache_key, check, command_timeout, default_excludes, exclude, maintenance, max_cost_usd, max_turns, model, models, network, provider, run, setup, timeout"

    // MARK: Valid files

    @Test func cacheKeyAndMaintenance() throws {
        let spec = try TaskFile.parse(
            Array(
                "---\nsetup: |\n  pip install -r requirements.txt\nmaintenance: |\n  pip install -e .\ncache_key: [requirements.txt, \"req/*.txt\"]\n---\nDo it\n"
                    .utf8),
            defaultAgent: .builtin)
        #expect(spec.cacheKey == ["requirements.txt", "req/*.txt"])
        #expect(spec.maintenance == "pip install -e .\n")
    }

    @Test func fullValidFile() throws {
        let text = """
            ---
            agent: claude-code        # an LLM agent
            model: claude-sonnet-4-5
            timeout: 1h30m
            max_turns: 40
            max_cost_usd: 2.5
            setup: |
              pip install -e .
              echo ready
            check: |
              pytest -q
            ---

            # Fix the flaky test

            The `test_retry` test fails one run in ten.

            """
        let spec = try Self.parse(text, .command)
        #expect(
            spec
                == TaskSpec(
                    agent: .claudeCode, model: "claude-sonnet-4-5", timeoutSeconds: 5400, maxTurns: 40, maxCostUSD: 2.5,
                    setup: "pip install -e .\necho ready\n", run: nil, check: "pytest -q\n",
                    body: "# Fix the flaky test\n\nThe `test_retry` test fails one run in ten."))
        #expect(spec.title == "Fix the flaky test")
        #expect(spec.agent?.usesModel == true)
    }

    @Test func commandAgentWithRunAndNoBody() throws {
        let spec = try Self.parse("---\nagent: command\nrun: |\n  ruff format .\ntimeout: 90\n---\n")
        #expect(spec == TaskSpec(agent: .command, timeoutSeconds: 90, run: "ruff format .\n", body: ""))
        #expect(spec.title == "")
        #expect(AgentKind.command.usesModel == false)
        // A plain one-line script and quoted values are strings too.
        let plain = try Self.parse("---\nagent: 'command'\nrun: make fmt\nmodel: \"4\"\n---\nformat the code\n")
        #expect(plain.run == "make fmt" && plain.model == "4" && plain.body == "format the code")
    }

    @Test func serverDefaultCommandAgent() throws {
        let spec = try Self.parse("---\nrun: make\n---\n", .command)
        #expect(spec == TaskSpec(run: "make", body: ""))
    }

    @Test func noFrontMatter() throws {
        let spec = try Self.parse("\n\n  Fix the bug in parse()\n\nThanks.\n\n\n")
        #expect(spec == TaskSpec(body: "  Fix the bug in parse()\n\nThanks."))
        #expect(spec.title == "Fix the bug in parse()")
        // A later `---` line is just Markdown (a rule), and so is a first line that is not exactly `---`.
        #expect(try Self.parse("Do it\n---\nagent: gpt\n").body == "Do it\n---\nagent: gpt")
        #expect(try Self.parse("--- not front matter\nagent: x\n").body == "--- not front matter\nagent: x")
    }

    @Test func emptyOrCommentOnlyFrontMatter() throws {
        #expect(try Self.parse("---\n---\nDo it\n") == TaskSpec(body: "Do it"))
        #expect(try Self.parse("---  \n# just a comment\n\n---\t\nDo it") == TaskSpec(body: "Do it"))
        #expect(try Self.parse("---\n{}\n---\nDo it") == TaskSpec(body: "Do it"))
    }

    @Test func crlfLineEndings() throws {
        let lf = "---\nagent: builtin\nsetup: |\n  make deps\n  make\n---\n\n# Title\n\nBody line\n"
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        let expected = TaskSpec(agent: .builtin, setup: "make deps\nmake\n", body: "# Title\n\nBody line")
        #expect(try Self.parse(crlf) == expected)
        #expect(try Self.parse(lf) == expected)
        // Old Mac lone CRs count as line breaks too.
        #expect(try Self.parse("---\ragent: builtin\r---\rDo it\r") == TaskSpec(agent: .builtin, body: "Do it"))
        // Line numbers count CRLF as one break.
        let e = Self.error("---\r\nagent: builtin\r\nmodle: x\r\n---\r\nDo it\r\n")
        #expect(e?.line == 3)
        #expect(e?.message.hasPrefix("unknown key 'modle'") == true)
    }

    @Test func byteOrderMarkIgnored() throws {
        let spec = try TaskFile.parse(
            [0xEF, 0xBB, 0xBF] + Array("---\nagent: builtin\n---\nDo it\n".utf8),
            defaultAgent: .command)
        #expect(spec == TaskSpec(agent: .builtin, body: "Do it"))
    }

    // MARK: Errors with file line numbers

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let text: String
        let defaultAgent: AgentKind
        let line: Int?
        let says: [String]
        init(_ name: String, _ text: String, _ defaultAgent: AgentKind = .builtin, line: Int?, says: String...) {
            self.name = name; self.text = text; self.defaultAgent = defaultAgent; self.line = line; self.says = says
        }
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            "unknown key", "---\nagent: builtin\nmodle: claude\n---\nDo it\n", line: 3,
            says: "unknown key 'modle'; \(keysList)", "did you mean 'model'?"),
        Case("unknown key, no guess", "---\n\n\nfoo: 1\n---\nDo it\n", line: 4, says: "unknown key 'foo'; \(keysList)"),
        Case("non-scalar key", "---\n? [a, b]\n: c\n---\nDo it\n", line: 2, says: "keys must be plain names"),
        Case(
            "timeout boolean", "---\ntimeout: yes\n---\nDo it\n", line: 2,
            says: "'timeout' must be a duration like 90s, 20m, 2h or 1h30m", "not 'yes' (YAML reads it as a boolean)"),
        Case("timeout zero", "---\ntimeout: 0s\n---\nDo it\n", line: 2, says: "greater than 0"),
        Case("timeout bare zero", "---\ntimeout: 0\n---\nDo it\n", line: 2, says: "greater than 0"),
        Case("timeout sexagesimal", "---\ntimeout: 1:30\n---\nDo it\n", line: 2, says: "'timeout' must be"),
        Case("timeout hex", "---\ntimeout: 0x10\n---\nDo it\n", line: 2, says: "'timeout' must be"),
        Case("timeout negative", "---\ntimeout: -5\n---\nDo it\n", line: 2, says: "'timeout' must be"),
        Case("timeout fraction", "---\ntimeout: 1.5\n---\nDo it\n", line: 2, says: "'timeout' must be"),
        Case("timeout bad unit", "---\ntimeout: 20 minutes\n---\nDo it\n", line: 2, says: "'timeout' must be"),
        Case("timeout huge", "---\ntimeout: 9999999999h\n---\nDo it\n", line: 2, says: "at most 366 days"),
        Case(
            "max_turns fraction", "---\nmax_turns: 2.5\n---\nDo it\n", line: 2,
            says: "'max_turns' must be a whole number of at least 1, like `max_turns: 40`"),
        Case("max_turns quoted", "---\nmax_turns: \"40\"\n---\nDo it\n", line: 2, says: "remove the quotes"),
        Case("max_turns zero", "---\nmax_turns: 0\n---\nDo it\n", line: 2, says: "at least 1"),
        Case("max_turns list", "---\nmax_turns:\n  - 4\n---\nDo it\n", line: 3, says: "a list"),
        Case(
            "max_turns overflow", "---\nmax_turns: 99999999999999999999999\n---\nDo it\n", line: 2,
            says: "whole number"),
        Case("max_cost_usd zero", "---\nmax_cost_usd: 0\n---\nDo it\n", line: 2, says: "greater than 0", "2.5"),
        Case("max_cost_usd negative", "---\nmax_cost_usd: -1.5\n---\nDo it\n", line: 2, says: "greater than 0"),
        Case("max_cost_usd infinite", "---\nmax_cost_usd: .inf\n---\nDo it\n", line: 2, says: "greater than 0"),
        Case("max_cost_usd quoted", "---\nmax_cost_usd: '2.5'\n---\nDo it\n", line: 2, says: "remove the quotes"),
        Case("max_cost_usd text", "---\nmax_cost_usd: $3\n---\nDo it\n", line: 2, says: "number of dollars"),
        Case(
            "agent unknown", "---\nagent: gpt\n---\nDo it\n", line: 2,
            says: "unknown agent 'gpt'; use one of: builtin, claude-code, codex, command"),
        Case(
            "attempts zero", "---\nattempts: 0\n---\nDo it\n", line: 2,
            says: "'attempts' must be a whole number from 1 to 64, like `attempts: 3`", "not '0'"),
        Case("attempts too many", "---\n\nattempts: 65\n---\nDo it\n", line: 3, says: "from 1 to 64", "max_attempts"),
        Case("attempts fraction", "---\nattempts: 2.5\n---\nDo it\n", line: 2, says: "'attempts' must be a whole number"),
        Case("attempts quoted", "---\nattempts: \"3\"\n---\nDo it\n", line: 2, says: "remove the quotes"),
        Case("attempts negative", "---\nattempts: -2\n---\nDo it\n", line: 2, says: "'attempts' must be a whole number"),
        Case("attempts list", "---\nattempts: [3]\n---\nDo it\n", line: 2, says: "not a list"),
        Case(
            "models scalar", "---\nmodels: claude-sonnet-4-5\n---\nDo it\n", line: 2,
            says: "'models' must be a list of model names, like `models: [", "not 'claude-sonnet-4-5'"),
        Case("models empty list", "---\nmodels: []\n---\nDo it\n", line: 2, says: "'models' must be a list of model names"),
        Case(
            "models entry not a name", "---\nmodels:\n  - a\n  - [b]\n---\nDo it\n", line: 4,
            says: "each 'models' entry must be a model name on one line", "not a list"),
        Case("models entry number", "---\nmodels: [a, 4.5]\n---\nDo it\n", line: 2, says: "quote it if it looks like a number"),
        Case(
            "models with command agent", "---\nagent: command\nmodels: [a, b]\nrun: |\n  true\n---\n", line: 3,
            says: "'models' spreads attempts over LLM models", "the agent is 'command'", "$PATCHD_ATTEMPT"),
        Case(
            "models with the default command agent", "---\nmodels: [a, b]\nrun: |\n  true\n---\n", .command, line: 2,
            says: "the server's default agent is 'command'"),
        Case(
            "model and models", "---\nmodel: a\nmodels: [b, c]\n---\nDo it\n", line: 3,
            says: "give either 'model' or 'models', not both", "`models: [a, b, c]`", "remove 'model:'"),
        Case("agent wrong case", "---\nagent: Builtin\n---\nDo it\n", line: 2, says: "use one of: builtin, claude-code, codex, command"),
        Case("agent empty", "---\nagent:\nmodel: x\n---\nDo it\n", line: 2, says: "'agent' has no value", "remove the line"),
        Case("model empty", "---\nmodel: \"  \"\n---\nDo it\n", line: 2, says: "non-empty model name"),
        Case(
            "provider unknown", "---\nprovider: ollama\n---\nDo it\n", line: 2,
            says: "unknown provider 'ollama'; use one of: anthropic, openai", "OpenAI-compatible"),
        Case("provider list", "---\nprovider: [openai]\n---\nDo it\n", line: 2, says: "unknown provider"),
        Case(
            "provider for claude-code", "---\nagent: claude-code\nmodel: m\nprovider: openai\n---\nDo it\n", line: 4,
            says: "'provider' is only for `agent: builtin`", "always speaks Anthropic's API", "remove `provider: openai`"),
        Case(
            "provider for the default command agent", "---\nprovider: anthropic\nrun: make\n---\n", .command, line: 2,
            says: "the server's default agent is 'command'", "set `agent: builtin`"),
        Case("model number", "---\nmodel: 4\n---\nDo it\n", line: 2, says: "'model' must be a model name", "quote it"),
        Case("model null", "---\nmodel: ~\n---\nDo it\n", line: 2, says: "'model' has no value"),
        Case("setup number", "---\nsetup: 42\n---\nDo it\n", line: 2, says: "'setup' must be a shell script", "`setup: |`"),
        Case("maintenance list", "---\nmaintenance: [a]\n---\nDo it\n", line: 2, says: "'maintenance' must be a shell script"),
        Case("cache_key scalar", "---\ncache_key: uv.lock\n---\nDo it\n", line: 2, says: "'cache_key' must be a list of paths or globs"),
        Case("cache_key absolute", "---\ncache_key: [/etc/passwd]\n---\nDo it\n", line: 2, says: "no leading '/'"),
        Case("cache_key dotdot", "---\ncache_key:\n  - a/../../b\n---\nDo it\n", line: 3, says: "no '..'"),
        Case("cache_key empty list", "---\ncache_key: []\n---\nDo it\n", line: 2, says: "give 1 to 100"),
        Case("check list", "---\nmodel: m\ncheck:\n  - pytest\n---\nDo it\n", line: 4, says: "'check' must be a shell script", "a list"),
        Case("check boolean", "---\ncheck: true\n---\nDo it\n", line: 2, says: "'check' must be a shell script"),
        Case("setup empty block", "---\nsetup: |\nmodel: m\n---\nDo it\n", line: 2, says: "'setup' is empty", "remove the key"),
        Case("run mapping", "---\nagent: command\nrun:\n  a: b\n---\n", line: 4, says: "'run' must be a shell script"),
        Case(
            "duplicate key", "---\nagent: builtin\nmodel: a\n\nmodel: b\n---\nDo it\n", line: 5,
            says: "duplicate key 'model'", "remove"),
        Case(
            "front matter is a list", "---\n- agent: builtin\n---\nDo it\n", line: 2,
            says: "must be `key: value` lines (a YAML mapping), not a list"),
        Case(
            "front matter is a scalar", "---\n# hi\nhello world\n---\nDo it\n", line: 3,
            says: "must be `key: value` lines (a YAML mapping)"),
        Case(
            "unclosed front matter", "---\nagent: builtin\nDo it\n", line: 1,
            says: "never closed", "add a line with only '---'"),
        Case(
            "yaml syntax: bad indentation", "---\nagent: builtin\n  model: x\n---\nDo it\n", line: 3,
            says: "invalid YAML", "check the front matter's syntax"),
        Case(
            "yaml syntax: unclosed quote", "---\nagent: builtin\nmodel: \"abc\n\n---\nDo it\n", line: 3,
            says: "invalid YAML", "quoted scalar"),
        Case("yaml syntax: tab indentation", "---\nsetup:\n\t- x\n---\nDo it\n", line: 3, says: "invalid YAML", "tabs"),
        Case("yaml: undefined alias", "---\nmodel: *m\n---\nDo it\n", line: 2, says: "invalid YAML"),
        Case("yaml: control character", "---\nmodel: a\u{1}b\n---\nDo it\n", line: 2, says: "remove control characters"),
        Case(
            "unicode line separator", "---\nagent: builtin\nmodel: a\u{2028}b\n---\nDo it\n", line: 3,
            says: "U+2028", "plain newline"),
        Case(
            "run refused for builtin", "---\nagent: builtin\n\nrun: make\n---\nDo it\n", line: 4,
            says: "'run' is only for `agent: command`", "remove 'run:'"),
        Case(
            "run refused for default LLM", "---\nrun: make\n---\nDo it\n", .claudeCode, line: 2,
            says: "but the agent is 'claude-code'"),
        Case(
            "run missing for command", "---\nmodel: m\nagent: command\n---\nDo it\n", line: 3,
            says: "agent 'command' needs a 'run:' script", "add `run: |`"),
        Case(
            "run missing for default command", "---\nmodel: m\n---\nDo it\n", .command, line: 1,
            says: "the server's default agent is 'command'", "`agent: builtin`"),
        Case(
            "run missing, no front matter, default command", "Do it\n", .command, line: 1,
            says: "needs a 'run:' script", "start the file with front matter"),
        Case(
            "empty body after front matter", "---\nagent: builtin\n---\n\n  \n", line: 3,
            says: "the task has no description", "below the closing '---'"),
        Case("empty file", "", line: 1, says: "the task has no description"),
        Case("blank file", " \n\t\n", .claudeCode, line: 1, says: "the task has no description"),
    ]

    @Test func attemptsAndModels() throws {
        let spec = try Self.parse("---\nattempts: 3\nmodels: [claude-sonnet-4-5, \"4.1\"]\n---\nDo it\n")
        #expect(spec.attempts == 3)
        #expect(spec.models == ["claude-sonnet-4-5", "4.1"])
        let command = try Self.parse("---\nagent: command\nattempts: 64\nrun: |\n  true\n---\n")
        #expect(command.attempts == 64 && command.models == nil)
        // The spec goes through the database as JSON: a stored spec without the keys still reads.
        let old = try JSONDecoder().decode(TaskSpec.self, from: Data(#"{"body":"x"}"#.utf8))
        #expect(old.attempts == nil && old.models == nil)
    }

    @Test func providerPicksTheBuiltinAgentsAPI() throws {
        #expect(try Self.parse("---\nprovider: openai\nmodel: llama3.1:8b\n---\nDo it\n").provider == .openai)
        #expect(try Self.parse("---\nagent: builtin\nprovider: anthropic\n---\nDo it\n").provider == .anthropic)
        #expect(try Self.parse("Do it\n").provider == nil)
    }

    @Test(arguments: cases) func refused(_ c: Case) {
        guard let e = Self.error(c.text, c.defaultAgent) else { return }
        #expect(e.file == ".patchd/task.md")
        #expect(e.line == c.line, "\(e)")
        for fragment in c.says { #expect(e.message.contains(fragment), "\(e)") }
    }

    @Test func errorDescription() {
        #expect(TaskFileError(file: ".patchd/task.md", line: 3, message: "bad").description == ".patchd/task.md:3: bad")
        #expect(TaskFileError(file: "push option task", line: nil, message: "bad").description == "push option task: bad")
        #expect(Self.error("---\nfoo: 1\n---\nx")?.description == ".patchd/task.md:2: unknown key 'foo'; \(Self.keysList)")
        // The file name is the caller's.
        #expect(
            throws: TaskFileError(
                file: "a/b.md", line: 1,
                message: "the front matter opened by '---' on line 1 "
                    + "is never closed; add a line with only '---' after the last key (or remove line 1 if the file has no "
                    + "front matter)")
        ) { try TaskFile.parse(Array("---\n".utf8), file: "a/b.md", defaultAgent: .builtin) }
    }

    // MARK: Bytes

    @Test func invalidUTF8() {
        var bytes = Array("---\nagent: builtin\n---\nFix ".utf8)
        bytes += [0xC3, 0x28] + Array(" it\n".utf8)
        #expect(
            throws: TaskFileError(
                file: ".patchd/task.md", line: 4,
                message: "the file is not valid UTF-8 (bad byte 0xC3); save it as UTF-8 text")
        ) {
            try TaskFile.parse(bytes, defaultAgent: .builtin)
        }
        // An encoded surrogate and a truncated sequence at the end of the file, with CRLF lines.
        let surrogate = Array("a\r\nb\r\n".utf8) + [0xED, 0xA0, 0x80]
        #expect(Self.lineOfError(surrogate) == 3)
        #expect(Self.lineOfError(Array("a\nb".utf8) + [0xE2, 0x82]) == 2)
        // Latin-1 é in the front matter.
        #expect(Self.lineOfError(Array("---\nmodel: caf".utf8) + [0xE9] + Array("\n---\nx".utf8)) == 2)
    }

    static func lineOfError(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Int? {
        do {
            _ = try TaskFile.parse(bytes, defaultAgent: .builtin)
            Issue.record("invalid bytes accepted", sourceLocation: sourceLocation)
            return nil
        } catch {
            #expect(error.message.contains("not valid UTF-8"), sourceLocation: sourceLocation)
            return error.line
        }
    }

    @Test func nulByte() {
        let bytes = Array("Fix it\nplease".utf8) + [0] + Array("\n".utf8)
        do {
            _ = try TaskFile.parse(bytes, defaultAgent: .builtin)
            Issue.record("NUL accepted")
        } catch {
            #expect(error.line == 2)
            #expect(error.message.contains("NUL") && error.message.contains("remove"))
        }
        #expect(throws: TaskFileError.self) { try TaskFile.fromText("a\0b", agent: nil, defaultAgent: .builtin) }
    }

    @Test func sizeBoundary() throws {
        let header = "---\nagent: builtin\n---\n"
        let exact = header + String(repeating: "x", count: TaskFile.maxBytes - header.utf8.count)
        #expect(exact.utf8.count == 65536)
        #expect(try Self.parse(exact).body.count == 65536 - header.utf8.count)
        do {
            _ = try Self.parse(exact + "x")
            Issue.record("65537 bytes accepted")
        } catch {
            #expect(error.line == nil)
            #expect(error.message.contains("65537 bytes, over the limit of 65536 bytes (64 KiB)"))
            #expect(error.message.contains("shorten"))
            #expect(error.description.hasPrefix(".patchd/task.md: "))
        }
        // Multi-byte text is counted in bytes.
        let emoji = String(repeating: "é", count: 32768)
        #expect(try Self.parse(emoji).body == emoji)
        #expect(throws: TaskFileError.self) { try Self.parse(emoji + "a") }
    }

    // MARK: Durations

    @Test(arguments: [
        ("90", 90), ("90s", 90), ("20m", 1200), ("2h", 7200), ("1h30m", 5400), ("1h30m15s", 5415), ("1h15s", 3615),
        ("30m0s", 1800), ("0h1m", 60), ("100000s", 100_000), ("8784h", 366 * 86400),
    ])
    func durations(_ text: String, _ seconds: Int) throws {
        #expect(TaskFile.parseDuration(text) == seconds)
        #expect(try Self.parse("---\ntimeout: \(text)\n---\nDo it").timeoutSeconds == seconds)
    }

    @Test(arguments: [
        "", "0", "0s", "0h0m", "h", "m30", "1h30", "30m1h", "1m1m", "1d", "1H", " 20m", "20m ", "1.5h", "-5m",
        "+5", "1_000", "8785h", "99999999999999999999", "20mins", "1s1", "1s1m",
    ])
    func badDurations(_ text: String) {
        #expect(TaskFile.parseDuration(text) == nil, "\(text)")
    }

    // MARK: Titles

    @Test(arguments: [
        ("# Fix the bug", "Fix the bug"),
        ("\n\n   ##   Spaced heading  \nmore", "Spaced heading"),
        ("Plain first line\n# Heading later", "Plain first line"),
        ("###\n#\nReal title", "Real title"),
        ("\t# tabbed\u{1b}[31m red", "tabbed[31m red"),
        (String(repeating: "a", count: 100), String(repeating: "a", count: 72)),
        (String(repeating: "a", count: 71) + " b", String(repeating: "a", count: 71)),
        ("# " + String(repeating: "é", count: 80), String(repeating: "é", count: 72)),
        ("", ""),
    ])
    func titles(_ body: String, _ title: String) {
        #expect(TaskSpec(body: body).title == title)
    }

    // MARK: Tasks as text

    @Test func fromTextLLMAgents() throws {
        for agent in [AgentKind.builtin, .claudeCode] {
            let spec = try TaskFile.fromText("\r\n  Fix the login bug\r\nquickly\r\n\r\n", agent: agent, defaultAgent: .command)
            #expect(spec == TaskSpec(agent: agent, body: "  Fix the login bug\nquickly"))
            #expect(spec.title == "Fix the login bug")
        }
        // The server's default; `---` is not front matter here.
        let spec = try TaskFile.fromText("---\nagent: command\n---", agent: nil, defaultAgent: .builtin)
        #expect(spec == TaskSpec(body: "---\nagent: command\n---"))
        #expect(
            throws: TaskFileError(
                file: "push option task", line: nil,
                message: "the task is empty; write what the agent should do")
        ) {
            try TaskFile.fromText(" \n\t", agent: .builtin, defaultAgent: .builtin)
        }
    }

    @Test func fromTextCommandAgent() throws {
        let spec = try TaskFile.fromText("ruff format . && ruff check --fix .", agent: .command, defaultAgent: .builtin)
        #expect(spec == TaskSpec(agent: .command, run: "ruff format . && ruff check --fix .", body: ""))
        let byDefault = try TaskFile.fromText("make fmt\r\nmake lint", agent: nil, defaultAgent: .command)
        #expect(byDefault == TaskSpec(agent: nil, run: "make fmt\nmake lint", body: ""))
        do {
            _ = try TaskFile.fromText("", agent: .command, defaultAgent: .builtin, file: "run start")
            Issue.record("empty script accepted")
        } catch {
            #expect(error.file == "run start" && error.line == nil)
            #expect(error.message.contains("give the commands"))
        }
    }

    @Test func fromTextSizeBoundary() throws {
        let exact = String(repeating: "y", count: TaskFile.maxBytes)
        #expect(try TaskFile.fromText(exact, agent: .builtin, defaultAgent: .builtin).body == exact)
        #expect(try TaskFile.fromText(exact, agent: .command, defaultAgent: .builtin).run == exact)
        do {
            _ = try TaskFile.fromText(exact + "y", agent: .claudeCode, defaultAgent: .builtin)
            Issue.record("65537 bytes accepted")
        } catch {
            #expect(error.line == nil && error.message.contains("65537 bytes, over the limit of 65536 bytes"))
        }
    }

    @Test func specIsCodable() throws {
        #expect(AgentKind.allCases.map(\.rawValue) == ["builtin", "claude-code", "codex", "command"])
        let spec = TaskSpec(
            agent: .claudeCode, model: "m", timeoutSeconds: 60, maxTurns: 3, maxCostUSD: 0.5,
            setup: "s", check: "c", body: "# B")
        let json = try JSONEncoder().encode(spec)
        #expect(String(decoding: json, as: UTF8.self).contains(#""agent":"claude-code""#))
        #expect(try JSONDecoder().decode(TaskSpec.self, from: json) == spec)
    }
}
