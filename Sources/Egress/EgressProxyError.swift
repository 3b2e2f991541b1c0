// Egress: why a run's egress proxy could not start, with squid's own words when it was squid.

package import PatchdSystem

/// A proxy that did not start. `description` says what failed and how to fix it; `log` holds
/// squid's last lines (its cache.log, which it writes to stderr) when squid itself failed.
package enum EgressProxyError: Error, CustomStringConvertible, Sendable {
    /// No `squid` executable in PATH or the sbin directories.
    case squidNotFound(Executable.NotFound)
    /// Preparing the proxy's directory, files or user failed.
    case setup(String)
    /// squid exited, or did not listen within the timeout. `log`: its last lines.
    case startFailed(String, log: [String])

    package var description: String {
        switch self {
        case .squidNotFound(let error):
            return "egress proxy: \(error) (install Debian's squid: apt-get install squid)"
        case .setup(let message):
            return "egress proxy: \(message)"
        case .startFailed(let message, let log):
            let tail = log.suffix(12).map { "  " + $0 }.joined(separator: "\n")
            return "egress proxy: \(message)" + (tail.isEmpty ? "" : "; squid said:\n" + tail)
        }
    }

    /// squid's lines, for the run log.
    package var log: [String] {
        if case .startFailed(_, let log) = self { return log }
        return []
    }
}
