// PatchdCore: which agents a server can run and, for each it cannot, why and what to do; shared by the daemon, hooks and commands.

import Foundation

/// The daemon decides at start which agents it offers (keys, CLIs, sandbox); the push hooks and
/// `run start` refuse a task naming one it does not, with the reason and the fix, instead of
/// queueing a run that can only fail. The hooks run in another process, so this travels in the
/// hook environment as JSON (`environmentKey`).
package struct AgentAvailability: Sendable, Equatable, Codable {
    package struct Entry: Sendable, Equatable, Codable {
        package var kind: AgentKind
        package var offered: Bool
        /// Offered: how it is set up (model, endpoint, CLI path). Not offered: why, and the fix.
        package var detail: String
        package init(kind: AgentKind, offered: Bool, detail: String) {
            self.kind = kind; self.offered = offered; self.detail = detail
        }
    }

    package var entries: [Entry]
    package init(entries: [Entry]) { self.entries = entries }

    package static let environmentKey = "PATCHD_AGENTS"

    package func entry(_ kind: AgentKind) -> Entry? { entries.first { $0.kind == kind } }

    /// Why a task asking for `kind` cannot run here (with the fix), or nil when it can.
    package func refusal(for kind: AgentKind) -> String? {
        guard let entry = entry(kind) else {
            return "this server does not offer the \(kind.rawValue) agent; use one of: \(offered.map(\.rawValue).joined(separator: ", "))"
        }
        return entry.offered ? nil : "this server cannot run the \(kind.rawValue) agent: \(entry.detail)"
    }

    package var offered: [AgentKind] { entries.filter(\.offered).map(\.kind) }

    package var environmentValue: String {
        (try? String(decoding: JSONEncoder().encode(self), as: UTF8.self)) ?? "{\"entries\":[]}"
    }

    /// nil for an absent or unreadable value: then nothing is refused early (the run reports it).
    package init?(environmentValue: String?) {
        guard let environmentValue, let value = try? JSONDecoder().decode(Self.self, from: Data(environmentValue.utf8)) else { return nil }
        self = value
    }
}
