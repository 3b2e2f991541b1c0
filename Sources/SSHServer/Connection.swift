// SSHServer: one client connection: key exchange, public-key auth, channels, and its event loop.

import CLibSSH
import Foundation
import Logging
import PatchdSystem
import SSHKeys

/// Owns one libssh session for its whole life, on one thread. libssh calls back into
/// it (through `userdata`) only from inside `ssh_event_dopoll` on that same thread.
final class Connection {
    let id: UInt64
    let client: ClientAddress
    unowned let server: SSHServer
    private let socketFD: Int32
    private let session: ssh_session
    private var event: ssh_event?
    private let serverCallbacks: UnsafeMutablePointer<ssh_server_callbacks_struct>

    /// The rules (auth, grace and idle timers, open sessions, stop); this class carries them out.
    private var policy: SSHConnectionPolicy
    var identity: SSHIdentity? { policy.identity }
    /// Whether this connection was moved off the server's unauthenticated count.
    private(set) var countedAuthenticated = false
    private var channels: [ChannelSession] = []
    /// fd -> events currently registered with the libssh event.
    private var registered: [Int32: Int16] = [:]
    /// What ran, for the audit line.
    var audit = AuditVerbs()
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0
    var lastExitStatus: Int32?

    init(id: UInt64, fd: Int32, client: ClientAddress, server: SSHServer) {
        self.id = id
        self.client = client
        self.server = server
        self.socketFD = fd
        self.session = ssh_new()
        policy = SSHConnectionPolicy(limits: .init(server.configuration), startedAt: .now)
        serverCallbacks = .allocate(capacity: 1)
        serverCallbacks.initialize(to: ssh_server_callbacks_struct())
    }

    deinit {
        for channel in channels { channel.abort(reason: "connection ended") }
        channels.removeAll()
        if let event {
            for fd in registered.keys { ssh_event_remove_fd(event, fd) }
            ssh_event_remove_session(event, session)
            ssh_event_free(event)
        }
        ssh_disconnect(session)
        ssh_free(session)
        serverCallbacks.deinitialize(count: 1)
        serverCallbacks.deallocate()
    }

    // MARK: - Life cycle

    func run() {
        guard server.accept(session: session, fd: socketFD) else {
            close(socketFD)
            server.logger.warning("SSH accept failed for \(client): \(lastError)")
            return
        }
        // The kex below blocks; this bounds it by the grace time.
        var timeout = Int(policy.limits.loginGrace.inSeconds.rounded(.up))
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        installServerCallbacks()
        ssh_set_auth_methods(session, Int32(SSH_AUTH_METHOD_PUBLICKEY))

        guard ssh_handle_key_exchange(session) == SSH_OK else {
            if policy.keyExchangeFailed(at: .now) == .loginGraceExpired {
                server.logger.notice("Timeout before authentication for \(client)")
            } else {
                server.logger.info("Key exchange failed for \(client): \(lastError)")
            }
            return
        }
        ssh_set_blocking(session, 0)
        event = ssh_event_new()
        guard let event, ssh_event_add_session(event, session) == SSH_OK else { return }
        eventLoop(event)
        finishConnection()
    }

    private func eventLoop(_ event: ssh_event) {
        while true {
            updateRegistrations(event)
            let rc = ssh_event_dopoll(event, 100)
            if rc == SSH_ERROR || ssh_is_connected(session) == 0 {
                policy.clientDisconnected()
                return
            }
            for channel in channels { channel.pump() }
            // Channels the client has closed and we have finished are freed.
            channels.removeAll { channel in
                guard channel.isDone else { return false }
                channel.releaseSessionSlot()
                return true
            }
            if server.isStopping { policy.stop() }
            let now = ContinuousClock.now
            let holds = policy.isStopping && channels.contains { $0.holdsConnection(now: now) }
            guard case .disconnect(let reason) = policy.tick(at: now, sessionsHoldConnection: holds) else { continue }
            switch reason {
            case .loginGraceExpired:
                server.logger.notice("Timeout before authentication for \(client)")
            case .tooManyAuthFailures:
                server.logger.notice("Disconnecting: too many authentication failures from \(client)")
            case .idleTimeout(let limit):
                server.logger.info("Idle timeout for \(client) after \(Int(limit.inSeconds))s")
            case .serverStopping, .clientDisconnected, .keyExchangeFailed:
                break
            }
            return
        }
    }

    /// A session channel the policy allowed has ended: its slot is free for the next one.
    func sessionEnded() { policy.sessionEnded() }

    /// A byte moved or a request arrived: restarts the idle timer.
    func noteActivity() { policy.activity(at: .now) }

    private func finishConnection() {
        let reason = policy.disconnectReason?.description ?? "disconnect"
        for channel in channels where !channel.isDone { channel.abort(reason: reason) }
        // Whatever libssh still buffers (exit status, EOF, close) reaches the client first.
        ssh_blocking_flush(session, 2000)
        if let identity {
            let duration = String(format: "%.3f", (ContinuousClock.now - policy.startedAt).inSeconds)
            let verbs = audit.text
            server.logger.info(
                "audit conn=\(id) from=\(client.host) port=\(client.port) user=\(identity.userName) key=\(identity.keyFingerprint) cmd=\(verbs) exit=\(lastExitStatus.map(String.init) ?? "-") bytes_in=\(bytesIn) bytes_out=\(bytesOut) duration=\(duration)s"
            )
        }
    }

    var lastError: String {
        guard let message = ssh_get_error(UnsafeMutableRawPointer(session)) else { return "unknown error" }
        return String(cString: message)
    }

    // MARK: - fd registration with the libssh event

    private func updateRegistrations(_ event: ssh_event) {
        var wanted: [Int32: Int16] = [:]
        for channel in channels { channel.wantedFDs(into: &wanted) }
        for (fd, events) in registered where wanted[fd] != events {
            ssh_event_remove_fd(event, fd)
            registered[fd] = nil
        }
        for (fd, events) in wanted where registered[fd] == nil {
            // The callback only wakes the loop; the pump does the I/O afterwards.
            if ssh_event_add_fd(event, fd, events, { _, _, _ in 0 }, nil) == SSH_OK {
                registered[fd] = events
            }
        }
    }

    // MARK: - Callbacks from libssh

    private func installServerCallbacks() {
        let cb = serverCallbacks
        patchd_ssh_server_callbacks_init(cb)
        cb.pointee.userdata = Unmanaged.passUnretained(self).toOpaque()
        cb.pointee.auth_pubkey_function = { _, user, key, state, userdata in
            let connection = Unmanaged<Connection>.fromOpaque(userdata!).takeUnretainedValue()
            return connection.authenticate(user: user.map { String(cString: $0) } ?? "", key: key, signatureState: state)
        }
        cb.pointee.channel_open_request_session_function = { _, userdata in
            let connection = Unmanaged<Connection>.fromOpaque(userdata!).takeUnretainedValue()
            return connection.openSessionChannel()
        }
        ssh_set_server_callbacks(session, cb)
    }

    /// Unsigned probes only learn whether a key would do; the identity is set only
    /// when libssh has verified a signature (SSH_PUBLICKEY_STATE_VALID).
    private func authenticate(user: String, key: ssh_key?, signatureState: CChar) -> Int32 {
        if server.isStopping { policy.stop() }
        let signature: SSHConnectionPolicy.Signature =
            switch Int32(signatureState) {
            case Int32(SSH_PUBLICKEY_STATE_NONE.rawValue): .probe
            case Int32(SSH_PUBLICKEY_STATE_VALID.rawValue): .valid
            default: .invalid
            }
        var publicKey: PublicKey?
        let verdict = policy.authAttempt(signature: signature, at: .now) {
            guard let key, let parsed = try? PublicKey(libsshKey: key) else { return .unreadable }
            publicKey = parsed
            return server.delegate.identity(for: parsed).map { .known($0) } ?? .unknown
        }
        switch verdict {
        case .keyWouldDo:
            return Int32(SSH_AUTH_SUCCESS.rawValue)  // "this key would be accepted": the client now signs.
        case .accept(let found):
            if !countedAuthenticated {
                countedAuthenticated = true
                server.connectionAuthenticated()
            }
            if let publicKey {
                server.logger.info("Accepted publickey for \(found.userName) from \(client) ssh2: \(publicKey.type) \(publicKey.fingerprint)")
            }
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        case .deny(.unknownKey):
            server.countAuthFailure()
            if let publicKey {
                let safeUser = String(user.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f }.prefix(64).map(Character.init))
                server.logger.notice(
                    "Failed publickey for \(safeUser.isEmpty ? "-" : safeUser) from \(client) ssh2: \(publicKey.type) \(publicKey.fingerprint)")
            }
            return Int32(SSH_AUTH_DENIED.rawValue)
        case .deny(.badSignature(let found)):
            server.logger.notice("Failed publickey for \(found.userName) from \(client) ssh2: bad signature \(publicKey?.fingerprint ?? "-")")
            return Int32(SSH_AUTH_DENIED.rawValue)
        case .deny:
            return Int32(SSH_AUTH_DENIED.rawValue)
        }
    }

    private func openSessionChannel() -> ssh_channel? {
        if server.isStopping { policy.stop() }
        guard case .allow = policy.openSession(at: .now) else { return nil }
        guard let identity = policy.identity, let raw = ssh_channel_new(session) else {
            policy.sessionEnded()
            return nil
        }
        let channel = ChannelSession(channel: raw, connection: self, identity: identity)
        channels.append(channel)
        return raw
    }

    /// Builds the request the delegate sees for a channel's exec/shell.
    func makeRequest(identity: SSHIdentity, command: String?, environment: [String: String]) -> ExecRequest {
        ExecRequest(connectionID: id, identity: identity, command: command, environment: environment, client: client)
    }
}

/// The verbs an audit line lists. Bounded: one shared (ControlMaster) connection may run
/// thousands of commands, and a list of all of them grew the connection and its log line
/// without limit.
struct AuditVerbs {
    static let kept = 32
    private(set) var verbs: [String] = []
    private(set) var omitted = 0

    mutating func append(_ verb: String) {
        if verbs.count < Self.kept { verbs.append(verb) } else { omitted += 1 }
    }

    /// "-" when nothing ran; "a,b,...,+N" when more ran than are kept.
    var text: String {
        if verbs.isEmpty { return "-" }
        return (verbs + (omitted > 0 ? ["+\(omitted)"] : [])).joined(separator: ",")
    }
}
