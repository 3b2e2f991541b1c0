// SSHServer: the listener's settings and limits.

package struct SSHServerConfiguration: Sendable {
    /// Address to listen on; "0.0.0.0", "::", "127.0.0.1", "localhost", ...
    package var host: String
    /// 0 picks a free port; `SSHServer.start()` returns the real one.
    package var port: Int
    /// Seconds from accept to a successful authentication (OpenSSH's LoginGraceTime).
    package var authTimeout: Double = 30
    /// Failed authentication attempts (probes of unknown keys included) before disconnect.
    package var maxAuthAttempts: Int = 6
    /// Connections not yet authenticated; beyond this new ones are closed at once.
    package var maxUnauthenticated: Int = 64
    /// Session channels one connection may have open at the same time (sequential ones are
    /// unlimited: OpenSSH connection sharing runs every command on one connection).
    package var maxChannelsPerConnection: Int = 10
    /// Seconds without a byte moving or a request before the connection is dropped.
    package var idleTimeout: Double = 600

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}
