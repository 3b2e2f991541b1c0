// PatchdCore: which phases of a run may reach the egress allowlist (none, setup, on), and how the task, repository and server settings combine.

/// Which phases of a run may open connections, through the egress proxy, to the allowlist.
/// Ordered: `none` < `setup` < `on`; the server's setting is the most any repository or task gets.
package enum NetworkMode: String, Sendable, Codable, CaseIterable, Comparable {
    /// No phase has a route out.
    case none
    /// Setup reaches the allowlist (to install dependencies); the agent and the check do not.
    case setup
    /// Setup, the agent and the check reach the allowlist.
    case on

    private var rank: Int {
        switch self {
        case .none: 0
        case .setup: 1
        case .on: 2
        }
    }

    package static func < (a: NetworkMode, b: NetworkMode) -> Bool { a.rank < b.rank }

    /// The mode a run gets: the task's wish, else the repository's default, else `setup`;
    /// never more than the server's cap.
    package static func effective(task: NetworkMode?, repository: NetworkMode?, serverCap: NetworkMode) -> NetworkMode {
        min(task ?? repository ?? .setup, serverCap)
    }

    /// Whether `phase` may connect under this mode.
    package func allows(_ phase: RunPhase) -> Bool {
        switch self {
        case .none: false
        case .setup: phase == .setup
        case .on: true
        }
    }
}

/// The phases of a run, in order.
package enum RunPhase: String, Sendable {
    case setup, agent, check
}
