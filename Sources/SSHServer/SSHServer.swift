// SSHServer: the libssh server: a listener thread, one thread per connection, graceful shutdown.

import CLibSSH
import Foundation
package import Logging
package import PatchdSystem
import Synchronization

/// Serves SSH on one address. Each accepted connection runs on its own OS thread
/// (libssh sessions are not thread-safe and block), so nothing here touches Swift's
/// cooperative pool.
package final class SSHServer: Sendable {
    package let configuration: SSHServerConfiguration
    package let hostKeys: HostKeys
    let delegate: SSHServerDelegate
    let logger: Logger
    private let bind: BindOwner
    private let state = Mutex(State())

    struct State {
        var listener: Listener?
        var acceptThread: OSThread?
        var stopping = false
        var connections = 0
        var unauthenticated = 0
        var nextConnectionID: UInt64 = 1
        var statistics = SSHStatistics()
    }

    package init(
        configuration: SSHServerConfiguration, hostKeys: HostKeys, delegate: SSHServerDelegate,
        logger: Logger
    ) throws(SSHError) {
        self.configuration = configuration
        self.hostKeys = hostKeys
        self.delegate = delegate
        self.logger = logger
        _ = ssh_init()
        bind = try BindOwner(hostKeys: hostKeys)
    }

    /// Binds and starts accepting. Returns the address actually bound (port 0 resolved).
    package func start() throws(SystemError) -> (host: String, port: Int) {
        let listener = try Listener(host: configuration.host, port: configuration.port)
        let thread = try OSThread(name: "ssh-accept") { [self] in acceptLoop(listener) }
        state.withLock {
            $0.listener = listener
            $0.acceptThread = thread
        }
        return (listener.boundHost, listener.boundPort)
    }

    package var isStopping: Bool { state.withLock { $0.stopping } }
    package var statistics: SSHStatistics {
        state.withLock { s in
            var stats = s.statistics
            stats.active = s.connections
            return stats
        }
    }

    func countAuthFailure() { state.withLock { $0.statistics.authFailures += 1 } }
    package var activeConnections: Int { state.withLock { $0.connections } }

    /// Stops accepting, lets running transfers finish (up to `grace` seconds), then returns.
    package func shutdown(grace: Double = 60) {
        let thread = state.withLock { s -> OSThread? in
            s.stopping = true
            return s.acceptThread
        }
        thread?.join()
        state.withLock { $0.listener = nil }
        let deadline = MonotonicClock.now + grace
        while activeConnections > 0 && MonotonicClock.now < deadline {
            usleep(20_000)
        }
    }

    private func acceptLoop(_ listener: Listener) {
        while !isStopping {
            guard let (fd, client) = listener.accept(timeoutMs: 200) else { continue }
            let admitted = state.withLock { s -> UInt64? in
                guard !s.stopping, s.unauthenticated < configuration.maxUnauthenticated else {
                    s.statistics.rejected += 1
                    return nil
                }
                s.statistics.accepted += 1
                s.unauthenticated += 1
                s.connections += 1
                defer { s.nextConnectionID += 1 }
                return s.nextConnectionID
            }
            guard let id = admitted else {
                logger.warning("Dropping connection from \(client): too many unauthenticated connections")
                close(fd)
                continue
            }
            do {
                try OSThread(name: "ssh-conn-\(id)") { [self] in
                    let connection = Connection(id: id, fd: fd, client: client, server: self)
                    connection.run()
                    state.withLock {
                        $0.connections -= 1
                        if !connection.countedAuthenticated { $0.unauthenticated -= 1 }
                    }
                }.detach()
            } catch {
                // Out of threads (an authenticated user opening many sessions can get here):
                // this connection is dropped; the daemon keeps serving the others.
                logger.warning("Dropping connection from \(client): \(error)")
                state.withLock {
                    $0.connections -= 1
                    $0.unauthenticated -= 1
                }
                close(fd)
            }
        }
    }

    /// A connection authenticated: it no longer counts against the unauthenticated cap.
    func connectionAuthenticated() {
        state.withLock { $0.unauthenticated -= 1 }
    }

    /// Hands the accepted socket to libssh. Serialized: the bind's keys are shared.
    func accept(session: ssh_session, fd: Int32) -> Bool {
        bind.accept(session: session, fd: fd)
    }
}

/// Owns the ssh_bind that carries the host keys and algorithm settings for every session.
/// Sendable because its one mutable use, `ssh_bind_accept_fd` (which loads and copies the
/// keys), is serialized by the lock; everything else is set before it is shared.
final class BindOwner: @unchecked Sendable {
    private let raw: ssh_bind
    private let lock = NSLock()

    init(hostKeys: HostKeys) throws(SSHError) {
        guard let bind = ssh_bind_new() else { throw SSHError("ssh_bind_new failed") }
        var noConfig = false
        // Never read /etc/ssh/libssh_server_config: behaviour comes from patchd alone.
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &noConfig)
        for key in [hostKeys.ed25519, hostKeys.rsa] {
            guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY, key.path) == SSH_OK else {
                let message = String(cString: ssh_get_error(UnsafeMutableRawPointer(bind)))
                ssh_bind_free(bind)
                throw SSHError("cannot load host key \(key.path)", message)
            }
        }
        // Public-key algorithms for user auth: no SHA-1 ssh-rsa signatures.
        let accepted = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256"
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES, accepted)
        var verbosity = Int32(SSH_LOG_NOLOG)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity)
        raw = bind
    }

    func accept(session: ssh_session, fd: Int32) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return ssh_bind_accept_fd(raw, session, fd) == SSH_OK
    }

    deinit { ssh_bind_free(raw) }
}

/// Counters for `stats`: connections accepted and refused at the cap, failed auth attempts.
package struct SSHStatistics: Sendable {
    package var accepted = 0
    package var rejected = 0
    package var authFailures = 0
    package var active = 0
    package init() {}
}
