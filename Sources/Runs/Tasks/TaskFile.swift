import Yams
// Runs: PLACEHOLDER for the task-file parser (replaced by the real parser on merge).
public enum AgentKind: String, Sendable, Codable, CaseIterable {
    case builtin, claudeCode = "claude-code", command
    public var usesModel: Bool { self != .command }
}

public struct TaskSpec: Sendable, Equatable, Codable {
    public var agent: AgentKind?
    public var model: String?
    public var timeoutSeconds: Int?
    public var maxTurns: Int?
    public var maxCostUSD: Double?
    public var setup: String?
    public var run: String?
    public var check: String?
    public var body: String
    public init(agent: AgentKind? = nil, body: String) { self.agent = agent; self.body = body }
    public var title: String {
        let line = body.split(separator: "\n").first { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? ""
        return String(line.drop { $0 == "#" || $0 == " " }.prefix(72))
    }
}

public struct TaskFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let message: String
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

public enum TaskFile {
    public static let path = ".patchd/task.md"
    public static let maxBytes = 64 * 1024
    public static func parse(_ bytes: [UInt8], file: String = path, defaultAgent: AgentKind) throws(TaskFileError) -> TaskSpec {
        guard bytes.count <= maxBytes else { throw TaskFileError(file: file, line: nil, message: "over 65536 bytes") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw TaskFileError(file: file, line: nil, message: "not UTF-8") }
        var spec = TaskSpec(body: text)
        if text.hasPrefix("---\n"), let end = text.range(of: "\n---\n", range: text.index(text.startIndex, offsetBy: 3)..<text.endIndex) {
            let yaml = String(text[text.index(text.startIndex, offsetBy: 4)..<end.lowerBound])
            spec.body = String(text[end.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let map = (try? Yams.load(yaml: yaml)) as? [String: Any] else { throw TaskFileError(file: file, line: 2, message: "bad YAML") }
            for (k, v) in map {
                switch k {
                case "agent": guard let a = AgentKind(rawValue: "\(v)") else { throw TaskFileError(file: file, line: 2, message: "bad agent") }; spec.agent = a
                case "run": spec.run = "\(v)"
                case "setup": spec.setup = "\(v)"
                case "check": spec.check = "\(v)"
                case "model": spec.model = "\(v)"
                case "timeout": let t = "\(v)"; spec.timeoutSeconds = t.hasSuffix("s") ? Int(t.dropLast()) : Int(t)
                default: throw TaskFileError(file: file, line: 2, message: "unknown key '\(k)'")
                }
            }
        }
        if (spec.agent ?? defaultAgent) != .command && spec.body.isEmpty { throw TaskFileError(file: file, line: nil, message: "empty body") }
        return spec
    }
    public static func fromText(_ text: String, agent: AgentKind?, defaultAgent: AgentKind, file: String = "push option task") throws(TaskFileError) -> TaskSpec {
        let kind = agent ?? defaultAgent
        if kind == .command { var s = TaskSpec(body: ""); s.run = text; s.agent = agent; return s }
        return TaskSpec(agent: agent, body: text)
    }
}
