// PatchdCore: one line of a run's log, as agents, sandboxes and the executor report it.

import Foundation

/// One line of a run's log, as agents and sandboxes report them.
package struct RunEvent: Sendable {
    package enum Kind: String, Sendable, Codable {
        case info, output, tool, check, error
        /// The egress proxy: a refused connection (printed live by `-o wait`), a phase's summary.
        case network
    }
    package let kind: Kind
    package let text: String
    package init(_ kind: Kind, _ text: String) { self.kind = kind; self.text = text }
}

/// How a script is named in a log line or a title.
package enum ScriptSummary {
    /// The first non-empty line, and "(+N lines)" when there are more.
    package static func firstLine(_ script: String) -> String {
        // On unicode scalars: as Characters, "\r\n" is one and would not split a CRLF script.
        let lines = script.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: true)
        let first = lines.first.map { String(String.UnicodeScalarView($0)) }?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return lines.count > 1 ? first + " (+\(lines.count - 1) lines)" : first
    }
}
