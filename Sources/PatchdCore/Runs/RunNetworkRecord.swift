// PatchdCore: what a run's egress was: its network mode, its allowlist and every connection the proxy saw (run show --json's "network").

import Foundation

/// A run's egress, stored with the run as JSON and shown by `run show` (`network` in `--json`).
package struct RunNetworkRecord: Codable, Sendable, Equatable {
    /// One connection the egress proxy handled (a CONNECT tunnel or a plain HTTP request).
    package struct Connection: Codable, Sendable, Equatable {
        /// When the proxy logged it (a tunnel: when it closed), ISO 8601.
        package var at: String
        /// The phase whose proxy handled it: setup, agent or check.
        package var phase: String
        package var method: String
        package var host: String
        package var port: Int
        /// Bytes from the sandbox to the host, and back.
        package var bytes_up: Int
        package var bytes_down: Int
        package var allowed: Bool
        /// Why it was refused (nil when allowed): "not on the allowlist", "private or local address (10.0.0.5)", ...
        package var reason: String?
        /// The proxy's HTTP status: 200 for a tunnel that was set up, 403 refused, 5xx the host
        /// could not be reached (nil in records written before it was kept).
        package var status: Int?

        package init(
            at: String, phase: String, method: String, host: String, port: Int, bytesUp: Int, bytesDown: Int, allowed: Bool,
            reason: String?, status: Int? = nil
        ) {
            self.at = at; self.phase = phase; self.method = method; self.host = host; self.port = port
            self.bytes_up = bytesUp; self.bytes_down = bytesDown; self.allowed = allowed; self.reason = reason
            self.status = status
        }

        enum CodingKeys: String, CodingKey { case at, phase, method, host, port, bytes_up, bytes_down, allowed, reason, status }

        /// Every key always present, null when unknown (scripts rely on the shape).
        package func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(at, forKey: .at)
            try c.encode(phase, forKey: .phase)
            try c.encode(method, forKey: .method)
            try c.encode(host, forKey: .host)
            try c.encode(port, forKey: .port)
            try c.encode(bytes_up, forKey: .bytes_up)
            try c.encode(bytes_down, forKey: .bytes_down)
            try c.encode(allowed, forKey: .allowed)
            try c.encode(reason, forKey: .reason)
            try c.encode(status, forKey: .status)
        }
    }

    /// none, setup or on (`NetworkMode`).
    package var mode: String
    /// The allowlist in force, as entries (`pypi.org`, `*.example.com`, `host:8443`).
    package var allowlist: [String]
    /// At most `maxConnections`, oldest first; `dropped` counts the rest.
    package var connections: [Connection]
    package var dropped: Int

    /// A run keeps at most this many connection records (a package install makes tens).
    package static let maxConnections = 2000

    package init(mode: String, allowlist: [String], connections: [Connection] = [], dropped: Int = 0) {
        self.mode = mode; self.allowlist = allowlist; self.connections = connections; self.dropped = dropped
    }

    /// Adds `connection`, or counts it as dropped past the cap.
    package mutating func append(_ connection: Connection) {
        if connections.count < Self.maxConnections { connections.append(connection) } else { dropped += 1 }
    }

    package var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
