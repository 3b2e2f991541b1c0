// SSHServer: a connection's rules (auth attempts, login grace, idle, open sessions, stop) as a pure value.

import SSHKeys

/// What one connection may do next, decided from events alone. It holds no libssh handle,
/// no fd and no clock of its own: every event carries its time, so the rules are unit-tested
/// in microseconds (Tests/UnitTests/SSHConnectionPolicyTests.swift) and `Connection` only
/// feeds it what libssh reports and carries out the verdicts.
struct SSHConnectionPolicy: Sendable {
    typealias Instant = ContinuousClock.Instant

    struct Limits: Sendable, Equatable {
        /// From accept to a signed authentication (OpenSSH's LoginGraceTime).
        var loginGrace: Duration
        /// Failed attempts (probes of unknown keys included) before disconnect.
        var maxAuthAttempts: Int
        /// Session channels open at the same time. Not over the connection's life: OpenSSH
        /// connection sharing (ControlMaster) runs every command of a user on one connection.
        var maxOpenSessions: Int
        /// Without a byte moving or a request, once authenticated.
        var idleTimeout: Duration

        init(loginGrace: Duration, maxAuthAttempts: Int, maxOpenSessions: Int, idleTimeout: Duration) {
            self.loginGrace = loginGrace
            self.maxAuthAttempts = maxAuthAttempts
            self.maxOpenSessions = maxOpenSessions
            self.idleTimeout = idleTimeout
        }

        init(_ configuration: SSHServerConfiguration) {
            self.init(
                loginGrace: .seconds(configuration.authTimeout), maxAuthAttempts: configuration.maxAuthAttempts,
                maxOpenSessions: configuration.maxChannelsPerConnection, idleTimeout: .seconds(configuration.idleTimeout))
        }
    }

    /// libssh's `SSH_PUBLICKEY_STATE_*` for one pubkey request.
    enum Signature: Sendable, Equatable {
        /// An unsigned probe: "would this key do?" (`SSH_PUBLICKEY_STATE_NONE`).
        case probe
        /// libssh verified the signature (`SSH_PUBLICKEY_STATE_VALID`).
        case valid
        /// Anything else: a signature that did not verify.
        case invalid
    }

    /// Whose key it is, as the application answered.
    enum KeyLookup: Sendable, Equatable {
        case unreadable
        case unknown
        case known(SSHIdentity)
    }

    enum AuthVerdict: Sendable, Equatable {
        /// A signed request for a known key: the connection is now this identity.
        case accept(SSHIdentity)
        /// A probe for a known key: answer "would be accepted" and wait for the signed request.
        /// Sets no identity.
        case keyWouldDo
        case deny(AuthDenial)
    }

    enum AuthDenial: Sendable, Equatable {
        case alreadyAuthenticated
        case attemptsExhausted
        case loginGraceExpired
        case stopping
        case unreadableKey
        case unknownKey
        /// The key is known but its signature did not verify.
        case badSignature(SSHIdentity)
    }

    enum SessionVerdict: Sendable, Equatable {
        case allow
        case refuse(SessionRefusal)
    }

    enum SessionRefusal: Sendable, Equatable {
        case notAuthenticated
        case stopping
        case tooManyOpen(limit: Int)
    }

    enum DisconnectReason: Sendable, Equatable, CustomStringConvertible {
        case keyExchangeFailed
        case loginGraceExpired
        case tooManyAuthFailures
        case idleTimeout(Duration)
        case serverStopping
        case clientDisconnected

        /// Also the reason a channel's program is aborted with, in the log.
        var description: String {
            switch self {
            case .keyExchangeFailed: "key exchange failed"
            case .loginGraceExpired: "auth timeout"
            case .tooManyAuthFailures: "too many auth failures"
            case .idleTimeout: "idle timeout"
            case .serverStopping: "server stopping"
            case .clientDisconnected: "client disconnected"
            }
        }
    }

    enum Action: Sendable, Equatable {
        case keepGoing
        case disconnect(DisconnectReason)
    }

    let limits: Limits
    let startedAt: Instant
    private(set) var lastActivity: Instant
    /// Set only by a signed request for a known key; never by a probe.
    private(set) var identity: SSHIdentity?
    private(set) var failedAuthAttempts = 0
    /// Session channels allowed and not yet ended.
    private(set) var openSessions = 0
    private(set) var isStopping = false
    /// Once set, every later tick repeats it and nothing more is allowed.
    private(set) var disconnectReason: DisconnectReason?

    init(limits: Limits, startedAt: Instant) {
        self.limits = limits
        self.startedAt = startedAt
        lastActivity = startedAt
    }

    // MARK: - Events

    /// A byte moved or a request arrived: the idle timer starts again.
    mutating func activity(at now: Instant) {
        if now > lastActivity { lastActivity = now }
    }

    /// The server is shutting down: no new identities or sessions; `tick` lets running ones end.
    mutating func stop() { isStopping = true }

    mutating func clientDisconnected() {
        if disconnectReason == nil { disconnectReason = .clientDisconnected }
    }

    /// The blocking key exchange failed after `startedAt`: a timeout if the grace time ran out.
    mutating func keyExchangeFailed(at now: Instant) -> DisconnectReason {
        // libssh's timeout is whole seconds (rounded up), so "about the grace time" counts.
        let reason: DisconnectReason =
            now - startedAt >= limits.loginGrace - .milliseconds(500)
            ? .loginGraceExpired : .keyExchangeFailed
        if disconnectReason == nil { disconnectReason = reason }
        return reason
    }

    /// One pubkey request. `lookup` (the application's key lookup) runs only when the request
    /// could still succeed, so a connection past its limits costs no lookups.
    mutating func authAttempt(signature: Signature, at now: Instant, lookup: () -> KeyLookup) -> AuthVerdict {
        activity(at: now)
        if identity != nil { return .deny(.alreadyAuthenticated) }
        if isStopping || disconnectReason != nil { return .deny(.stopping) }
        if failedAuthAttempts >= limits.maxAuthAttempts { return .deny(.attemptsExhausted) }
        if now - startedAt > limits.loginGrace { return .deny(.loginGraceExpired) }
        switch lookup() {
        case .unreadable:
            failedAuthAttempts += 1
            return .deny(.unreadableKey)
        case .unknown:
            failedAuthAttempts += 1
            return .deny(.unknownKey)
        case .known(let found):
            switch signature {
            case .probe:
                return .keyWouldDo
            case .valid:
                identity = found
                return .accept(found)
            case .invalid:
                failedAuthAttempts += 1
                return .deny(.badSignature(found))
            }
        }
    }

    /// The client asks for a session channel. An allowed one counts until `sessionEnded`.
    mutating func openSession(at now: Instant) -> SessionVerdict {
        activity(at: now)
        guard identity != nil else { return .refuse(.notAuthenticated) }
        guard !isStopping, disconnectReason == nil else { return .refuse(.stopping) }
        guard openSessions < limits.maxOpenSessions else { return .refuse(.tooManyOpen(limit: limits.maxOpenSessions)) }
        openSessions += 1
        return .allow
    }

    /// An allowed session ended (the client closed it, it broke, or it could not be created).
    /// Call once per allowed session.
    mutating func sessionEnded() {
        if openSessions > 0 { openSessions -= 1 }
    }

    /// Checked once per turn of the event loop. `sessionsHoldConnection`: a stopping server
    /// must stay for a channel whose program runs or whose client has not yet closed it.
    mutating func tick(at now: Instant, sessionsHoldConnection: Bool) -> Action {
        if let disconnectReason { return .disconnect(disconnectReason) }
        if identity == nil {
            if now - startedAt > limits.loginGrace {
                disconnectReason = .loginGraceExpired
            } else if failedAuthAttempts >= limits.maxAuthAttempts {
                disconnectReason = .tooManyAuthFailures
            }
        } else if now - lastActivity > limits.idleTimeout {
            disconnectReason = .idleTimeout(limits.idleTimeout)
        }
        if disconnectReason == nil, isStopping, identity == nil || !sessionsHoldConnection {
            disconnectReason = .serverStopping
        }
        return disconnectReason.map { .disconnect($0) } ?? .keepGoing
    }
}

extension Duration {
    /// For logs and libssh's whole-second options.
    var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
