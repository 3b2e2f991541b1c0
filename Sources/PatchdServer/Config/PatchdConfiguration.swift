// PatchdServer: the daemon's settings: built-in defaults, then environment, then config file, then flags.

package import Agents
import Egress
import Foundation
package import Offsite
package import PatchdCore
package import Runs
import Sandboxing
import Yams

/// Everything `patchd serve` can be told. Precedence (lowest first): built-in
/// defaults, environment (PATCHD_*), the YAML config file, command-line flags.
package struct PatchdConfiguration: Sendable, Equatable {
    package var dataDir = "./patchd-data"
    package var listen = "127.0.0.1:2222"
    /// OpenSSH public key lines (already read from .pub files).
    package var adminKeys: [String] = []
    package var sandbox = "bwrap"
    /// `sandbox: container`: the engine ("podman", "docker" or a path; empty: podman if
    /// installed, else docker), the image every command runs in, and extra `run` flags.
    package var containerEngine = ""
    package var containerImage = "localhost/patchd-sandbox"
    package var containerOptions: [String] = []
    package var workers = ProcessInfo.processInfo.activeProcessorCount
    package var authTimeout: Double = 30
    package var idleTimeout: Double = 600
    package var maxUnauthenticated = 64
    package var maxSessionsPerConnection = 10
    package var maxPushBytes: Int64 = 2 << 30
    /// Agent for tasks that name none.
    package var defaultAgent = "builtin"
    /// Model for LLM tasks that name none.
    package var model = BuiltinAgentConfiguration().defaultModel
    /// The builtin agent's API for tasks that name no `provider:` (nil: anthropic when the server
    /// has ANTHROPIC_API_KEY, else openai).
    package var defaultProvider: ModelProvider?
    /// Model for `provider: openai` builtin tasks that name none.
    package var openAIModel = BuiltinAgentConfiguration().defaultOpenAIModel
    /// API base URLs; nil: ANTHROPIC_BASE_URL / OPENAI_BASE_URL from the environment, else the
    /// public APIs. The keys come from the environment only (ANTHROPIC_API_KEY, OPENAI_API_KEY).
    package var anthropicBaseURL: String?
    package var openAIBaseURL: String?
    /// Cap on a task's max_cost_usd (LLM runs), nil for none.
    package var maxCostUSD: Double?
    /// USD per million tokens by model, merged over the built-in table.
    package var prices: [String: ModelPrice] = [:]
    /// The Claude Code CLI for the claude-code agent (a name in PATH or an absolute path).
    package var claudePath = "claude"
    /// OpenAI's Codex CLI for the codex agent (a name in PATH or an absolute path).
    package var codexPath = "codex"
    /// Model for codex tasks that name none (nil: the CLI's own default).
    package var codexModel: String?
    /// Cap on an LLM run's turns (a task's max_turns is capped by it).
    package var maxTurns = BuiltinAgentConfiguration().maxTurns
    /// Cap on a run's wall-clock time (a task's timeout: is capped by it).
    package var maxRunSeconds = 60 * 60
    /// Best of N: the most attempts one task runs (a task's `attempts:` or `-o attempts=N` is capped by it).
    package var maxAttempts = 4
    /// Best of N: the first attempt that can win wins at once and the others are canceled (saves
    /// cost; the smallest-diff rule then does not apply).
    package var attemptsCancelRest = false
    /// Sandbox caps per command (see SandboxLimits); files larger than maxFileBytes are not
    /// written, and are never put in a result.
    package var maxProcesses = SandboxLimits().maxProcesses
    package var maxFileBytes = SandboxLimits().maxFileBytes
    package var maxMemoryBytes = SandboxLimits().maxMemoryBytes
    package var maxOutputBytes = SandboxLimits().maxOutputBytes
    /// CPU cap per command in cores (nil: none); needs a writable cpu cgroup, or the container sandbox.
    package var maxCPUs = SandboxLimits().maxCPUs
    /// Disk caps: the workspace's size (nil: none), and the free space its filesystem keeps (nil: 5%, at most 1 GiB).
    package var maxWorkspaceBytes = SandboxLimits().maxWorkspaceBytes
    package var minFreeBytes = SandboxLimits().minFreeBytes
    /// Continuous replication to an S3-compatible store (the `offsite:` mapping); nil: off.
    package var offsite: OffsiteConfiguration?
    /// Egress: `network` is the most any repository or task gets (none, setup, on; default
    /// setup), `allowed_domains` the server's allowlist (default `preset:registries`), and
    /// `egress_hosts_file` the hosts file the proxy reads before DNS (default /etc/hosts).
    package var egress = EgressSettings()
    /// The environment cache: `environment_cache` (true/false), `environment_cache_max_bytes`
    /// (all repositories) and `environment_cache_repo_max_bytes` (one repository).
    package var environmentCache = EnvironmentCacheSettings()

    package init() {}

    /// The YAML keys; they mirror the flags with `_` for `-`.
    static let fileKeys: Set<String> = [
        "data_dir", "listen", "admin_keys", "sandbox", "workers", "auth_timeout", "idle_timeout",
        "max_unauthenticated", "max_sessions_per_connection", "max_push_bytes", "default_agent", "max_run_seconds", "model", "max_turns",
        "claude_path", "max_cost_usd", "prices",
        "codex_path", "codex_model", "default_provider", "openai_model", "anthropic_base_url", "openai_base_url",
        "max_processes", "max_file_bytes", "max_memory_bytes", "max_output_bytes", "max_cpus", "max_workspace_bytes", "min_free_bytes",
        "container_engine", "container_image", "container_options", "offsite",
        "network", "allowed_domains", "egress_hosts_file", "max_attempts", "attempts_cancel_rest",
        "environment_cache", "environment_cache_max_bytes", "environment_cache_repo_max_bytes",
    ]

    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
        init(_ d: String) { description = d }
    }

    /// Applies PATCHD_DATA_DIR, PATCHD_LISTEN, PATCHD_ADMIN_KEYS (newline-separated).
    package mutating func apply(environment env: [String: String]) throws(Invalid) {
        if let v = env["PATCHD_DATA_DIR"], !v.isEmpty { dataDir = v }
        if let v = env["PATCHD_LISTEN"], !v.isEmpty { listen = v }
        if let v = env["PATCHD_ADMIN_KEYS"] {
            adminKeys += try v.split(whereSeparator: \.isNewline).map(String.init)
                .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                .map { (k) throws(Invalid) in try Self.readKey(k) }
        }
    }

    /// Applies a YAML config file. Unknown keys and wrong types are errors naming the key.
    package mutating func apply(configFile path: String) throws(Invalid) {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw Invalid("cannot read config file \(path): \(error.localizedDescription)")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw Invalid("config file \(path): \(error)")
        }
        guard let node else { return }
        guard let map = node.mapping else { throw Invalid("config file \(path): expected a mapping of keys to values") }
        for (keyNode, value) in map {
            guard let key = keyNode.string, Self.fileKeys.contains(key) else {
                let line = keyNode.mark.map { ":\($0.line)" } ?? ""
                throw Invalid(
                    "config file \(path)\(line): unknown key '\(keyNode.string ?? "?")'; known keys: \(Self.fileKeys.sorted().joined(separator: ", "))"
                )
            }
            let at = "config file \(path)\(value.mark.map { ":\($0.line)" } ?? ""): '\(key)'"
            func string() throws(Invalid) -> String {
                guard let s = value.string else { throw Invalid("\(at) must be a string") }
                return s
            }
            func number() throws(Invalid) -> Double {
                guard let s = value.string, let d = Double(s), d >= 0 else { throw Invalid("\(at) must be a non-negative number") }
                return d
            }
            switch key {
            case "data_dir": dataDir = try string()
            case "listen": listen = try string()
            case "sandbox": sandbox = try string()
            case "workers": workers = Int(try number())
            case "auth_timeout": authTimeout = try number()
            case "idle_timeout": idleTimeout = try number()
            case "max_unauthenticated": maxUnauthenticated = Int(try number())
            case "max_sessions_per_connection": maxSessionsPerConnection = Int(try number())
            case "max_push_bytes": maxPushBytes = Int64(try number())
            case "default_agent": defaultAgent = try string()
            case "model": model = try string()
            case "claude_path": claudePath = try string()
            case "codex_path": codexPath = try string()
            case "codex_model": codexModel = try string()
            case "default_provider":
                guard let provider = ModelProvider(rawValue: try string()) else {
                    throw Invalid("\(at) must be one of \(ModelProvider.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                defaultProvider = provider
            case "openai_model": openAIModel = try string()
            case "anthropic_base_url": anthropicBaseURL = try Self.baseURL(try string(), at: at)
            case "openai_base_url": openAIBaseURL = try Self.baseURL(try string(), at: at)
            case "network":
                guard let mode = NetworkMode(rawValue: try string()) else {
                    throw Invalid("\(at) must be one of " + NetworkMode.allCases.map(\.rawValue).joined(separator: ", "))
                }
                egress.cap = mode
            case "allowed_domains":
                guard let seq = value.sequence else {
                    throw Invalid("\(at) must be a list of hosts, e.g. [\"preset:registries\", \"*.example.com\"]")
                }
                let entries = try seq.map { (item) throws(Invalid) in
                    guard let s = item.string else { throw Invalid("\(at) must be a list of strings") }
                    return s
                }
                do {
                    _ = try EgressPolicy.parse(entries, source: "config file \(path) allowed_domains")
                } catch {
                    throw Invalid("\(error)")
                }
                egress.allowedDomains = entries
            case "egress_hosts_file": egress.hostsFile = try string()
            case "container_engine": containerEngine = try string()
            case "container_image": containerImage = try string()
            case "container_options":
                guard let seq = value.sequence else { throw Invalid("\(at) must be a list of strings, e.g. [\"--runtime\", \"runc\"]") }
                containerOptions = try seq.map { (item) throws(Invalid) in
                    guard let s = item.string else { throw Invalid("\(at) must be a list of strings") }
                    return s
                }
            case "max_cost_usd": maxCostUSD = try number()
            case "prices":
                // prices: {MODEL: {input: 3, output: 15, cache_read: 0.3, cache_write: 3.75}}
                guard let models = value.mapping else { throw Invalid("\(at) must map model names to {input, output, cache_read, cache_write}") }
                for (modelNode, priceNode) in models {
                    guard let model = modelNode.string, let fields = priceNode.mapping else {
                        throw Invalid("\(at): each model needs {input, output, cache_read, cache_write} in USD per million tokens")
                    }
                    var values: [String: Double] = [:]
                    for (k, v) in fields {
                        guard let name = k.string, ["input", "output", "cache_read", "cache_write"].contains(name),
                            let text = v.string, let number = Double(text), number >= 0
                        else {
                            throw Invalid("\(at): \(model): keys are input, output, cache_read, cache_write with non-negative numbers")
                        }
                        values[name] = number
                    }
                    guard let input = values["input"], let output = values["output"] else {
                        throw Invalid("\(at): \(model) needs at least input and output prices")
                    }
                    prices[model] = ModelPrice(
                        input: input, output: output, cacheRead: values["cache_read"] ?? input * 0.1,
                        cacheWrite: values["cache_write"] ?? input * 1.25)
                }
            case "max_turns": maxTurns = Int(try number())
            case "max_run_seconds": maxRunSeconds = Int(try number())
            case "environment_cache":
                guard let flag = value.bool else { throw Invalid("\(at) must be true or false") }
                environmentCache.enabled = flag
            case "environment_cache_max_bytes": environmentCache.maxBytes = Int64(try number())
            case "environment_cache_repo_max_bytes": environmentCache.maxBytesPerRepository = Int64(try number())
            case "max_attempts": maxAttempts = Int(try number())
            case "attempts_cancel_rest":
                guard let s = value.string, ["true", "false"].contains(s) else { throw Invalid("\(at) must be true or false") }
                attemptsCancelRest = s == "true"
            case "max_processes": maxProcesses = Int(try number())
            case "max_file_bytes": maxFileBytes = Int64(try number())
            case "max_memory_bytes": maxMemoryBytes = Int64(try number())
            case "max_output_bytes": maxOutputBytes = Int(try number())
            case "max_workspace_bytes": maxWorkspaceBytes = Int64(try number())
            case "min_free_bytes": minFreeBytes = Int64(try number())
            case "max_cpus":
                let cpus = try number()
                guard cpus >= 0.01 else { throw Invalid("\(at) must be at least 0.01 (cores), or left out for no cap") }
                maxCPUs = cpus
            case "offsite":
                // offsite: {endpoint, bucket, prefix, region, addressing, credentials_file, age_recipients, ...}
                guard let fields = value.mapping else {
                    throw Invalid("\(at) must be a mapping (endpoint, bucket, age_recipients, ...); see docs/OPERATIONS.md")
                }
                var values: [String: String] = [:]
                for (k, v) in fields {
                    guard let name = k.string else { throw Invalid("\(at): keys must be strings") }
                    if let items = v.sequence {
                        values[name] = items.compactMap(\.string).joined(separator: " ")
                    } else if let text = v.string {
                        values[name] = text
                    } else {
                        throw Invalid("\(at): '\(name)' must be a string or a number")
                    }
                }
                do { offsite = try OffsiteConfiguration(fields: values, environment: ProcessInfo.processInfo.environment) } catch {
                    throw Invalid("config file \(path): \(error)")
                }
            case "admin_keys":
                let items: [String]
                if let seq = value.sequence { items = seq.compactMap(\.string) } else { items = [try string()] }
                adminKeys += try items.map { (k) throws(Invalid) in try Self.readKey(k) }
            default: break
            }
        }
    }

    /// An API base URL: http or https, no credentials in it (keys come from the environment).
    static func baseURL(_ text: String, at: String) throws(Invalid) -> String {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            url.host?.isEmpty == false
        else {
            throw Invalid("\(at) must be an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1")
        }
        guard url.user == nil, url.password == nil else {
            throw Invalid("\(at) must not carry credentials; put the key in the environment (ANTHROPIC_API_KEY, OPENAI_API_KEY)")
        }
        return text
    }

    /// A key argument is either an OpenSSH public key line or a path to a .pub file.
    package static func readKey(_ argument: String) throws(Invalid) -> String {
        let trimmed = argument.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("ssh-") || trimmed.hasPrefix("ecdsa-") { return trimmed }
        let path = (trimmed as NSString).expandingTildeInPath
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Invalid("admin key '\(trimmed.prefix(80))' is neither an OpenSSH public key line nor a readable .pub file")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Checks values that flags, environment and file could all have set.
    package func validate() throws(Invalid) {
        guard ["bwrap", "container", "none"].contains(sandbox) else {
            throw Invalid("sandbox must be 'bwrap', 'container' or 'none', not '\(sandbox)'")
        }
        guard workers >= 1 && workers <= 256 else { throw Invalid("workers must be between 1 and 256") }
        guard AgentKind(rawValue: defaultAgent) != nil else {
            throw Invalid("default_agent must be one of \(AgentKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(defaultAgent)'")
        }
        guard maxRunSeconds >= 1 else { throw Invalid("max_run_seconds must be at least 1") }
        guard (1...TaskFile.maxAttempts).contains(maxAttempts) else {
            throw Invalid("max_attempts must be between 1 and \(TaskFile.maxAttempts), not \(maxAttempts)")
        }
        _ = try listenAddress()
    }

    /// HOST:PORT, with [v6]:PORT accepted.
    package func listenAddress() throws(Invalid) -> (host: String, port: Int) {
        var text = Substring(listen)
        var host: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            text = text[text.index(after: close)...]
            guard text.hasPrefix(":") else { throw Invalid("listen address '\(listen)' must be HOST:PORT") }
            text = text.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw Invalid("listen address '\(listen)' must be HOST:PORT") }
            host = text[..<colon]
            text = text[text.index(after: colon)...]
        }
        guard let port = Int(text), (0...65535).contains(port) else {
            throw Invalid("listen address '\(listen)': port must be a number from 0 to 65535")
        }
        if host.isEmpty { host = "0.0.0.0" }
        return (String(host), port)
    }
}
