// UnitTests: SSHConnectionPolicy's rules with a made-up clock: timers, attempts, probes, stop, open sessions.

import Testing

@testable import SSHKeys
@testable import SSHServer

@Suite struct SSHConnectionPolicyTests {
    typealias Policy = SSHConnectionPolicy

    let t0 = ContinuousClock.now
    let alice = SSHIdentity(userID: 1, userName: "alice", keyFingerprint: "SHA256:alice")
    let limits = Policy.Limits(loginGrace: .seconds(30), maxAuthAttempts: 6, maxOpenSessions: 10, idleTimeout: .seconds(600))

    func policy() -> Policy { Policy(limits: limits, startedAt: t0) }

    /// A policy already signed in as alice at t0 + 1 s.
    func authenticated() -> Policy {
        var p = policy()
        #expect(p.authAttempt(signature: .valid, at: t0 + .seconds(1)) { .known(alice) } == .accept(alice))
        return p
    }

    // MARK: - Timers

    @Test func loginGraceExpiresOnlyAfterTheGraceTime() {
        var p = policy()
        #expect(p.tick(at: t0 + .seconds(30), sessionsHoldConnection: false) == .keepGoing)
        #expect(p.tick(at: t0 + .seconds(30) + .milliseconds(1), sessionsHoldConnection: false) == .disconnect(.loginGraceExpired))
        // Sticky: later ticks say the same, and nothing gets in afterwards.
        #expect(p.tick(at: t0 + .seconds(31), sessionsHoldConnection: false) == .disconnect(.loginGraceExpired))
        #expect(p.authAttempt(signature: .valid, at: t0 + .seconds(31)) { .known(alice) } == .deny(.stopping))
        #expect(p.identity == nil)
    }

    @Test func activityBeforeAuthDoesNotExtendTheGraceTime() {
        var p = policy()
        for second in 1...29 {
            #expect(p.authAttempt(signature: .probe, at: t0 + .seconds(second)) { .known(alice) } == .keyWouldDo)
        }
        #expect(p.tick(at: t0 + .seconds(31), sessionsHoldConnection: false) == .disconnect(.loginGraceExpired))
    }

    @Test func aSignedRequestAfterTheGraceTimeIsDeniedWithoutALookup() {
        var p = policy()
        var lookups = 0
        let verdict = p.authAttempt(signature: .valid, at: t0 + .seconds(31)) {
            lookups += 1; return .known(alice)
        }
        #expect(verdict == .deny(.loginGraceExpired))
        #expect(lookups == 0)
        #expect(p.identity == nil)
    }

    @Test func theGraceTimeNoLongerAppliesOnceAuthenticated() {
        var p = authenticated()
        #expect(p.tick(at: t0 + .seconds(300), sessionsHoldConnection: false) == .keepGoing)
    }

    @Test func idleExpiresAfterTheIdleTimeWithoutActivity() {
        var p = authenticated()
        #expect(p.tick(at: t0 + .seconds(601), sessionsHoldConnection: false) == .keepGoing)
        #expect(p.tick(at: t0 + .seconds(601) + .milliseconds(1), sessionsHoldConnection: false) == .disconnect(.idleTimeout(.seconds(600))))
    }

    @Test func activityRestartsTheIdleTimer() {
        var p = authenticated()
        p.activity(at: t0 + .seconds(500))
        #expect(p.tick(at: t0 + .seconds(1000), sessionsHoldConnection: false) == .keepGoing)
        #expect(p.openSession(at: t0 + .seconds(1050)) == .allow)
        #expect(p.tick(at: t0 + .seconds(1600), sessionsHoldConnection: false) == .keepGoing)
        #expect(p.tick(at: t0 + .seconds(1651), sessionsHoldConnection: false) == .disconnect(.idleTimeout(.seconds(600))))
    }

    @Test func anActivityStampFromThePastDoesNotRewindTheTimer() {
        var p = authenticated()
        p.activity(at: t0 + .seconds(500))
        p.activity(at: t0 + .seconds(100))
        #expect(p.lastActivity == t0 + .seconds(500))
    }

    @Test func keyExchangeFailureIsATimeoutOnlyNearTheGraceTime() {
        var early = policy()
        #expect(early.keyExchangeFailed(at: t0 + .seconds(2)) == .keyExchangeFailed)
        var late = policy()
        #expect(late.keyExchangeFailed(at: t0 + .milliseconds(29_600)) == .loginGraceExpired)
        #expect(late.tick(at: t0 + .seconds(29), sessionsHoldConnection: false) == .disconnect(.loginGraceExpired))
    }

    // MARK: - Attempts

    @Test func theSixthFailureDisconnectsAndAValidKeyAfterItIsNotLookedUp() {
        var p = policy()
        for i in 1...6 {
            #expect(p.tick(at: t0 + .seconds(i), sessionsHoldConnection: false) == .keepGoing)
            #expect(p.authAttempt(signature: .probe, at: t0 + .seconds(i)) { .unknown } == .deny(.unknownKey))
        }
        #expect(p.failedAuthAttempts == 6)
        var lookups = 0
        #expect(
            p.authAttempt(signature: .valid, at: t0 + .seconds(7)) {
                lookups += 1; return .known(alice)
            } == .deny(.attemptsExhausted))
        #expect(lookups == 0 && p.identity == nil)
        #expect(p.tick(at: t0 + .seconds(7), sessionsHoldConnection: false) == .disconnect(.tooManyAuthFailures))
    }

    @Test func unreadableKeysAndBadSignaturesCountProbesOfKnownKeysDoNot() {
        var p = policy()
        #expect(p.authAttempt(signature: .probe, at: t0) { .unreadable } == .deny(.unreadableKey))
        #expect(p.authAttempt(signature: .invalid, at: t0) { .known(alice) } == .deny(.badSignature(alice)))
        for _ in 0..<20 { #expect(p.authAttempt(signature: .probe, at: t0) { .known(alice) } == .keyWouldDo) }
        #expect(p.failedAuthAttempts == 2)
    }

    // MARK: - Probe and signature

    @Test func aProbeNeverSetsTheIdentity() {
        var p = policy()
        #expect(p.authAttempt(signature: .probe, at: t0) { .known(alice) } == .keyWouldDo)
        #expect(p.identity == nil)
        // So no session either.
        #expect(p.openSession(at: t0) == .refuse(.notAuthenticated))
        #expect(p.tick(at: t0 + .seconds(31), sessionsHoldConnection: false) == .disconnect(.loginGraceExpired))
    }

    @Test func aSignedRequestAfterAProbeOfAnotherKeyIsThatKeysIdentity() {
        let admin = SSHIdentity(userID: 0, userName: "admin", keyFingerprint: "SHA256:admin")
        var p = policy()
        #expect(p.authAttempt(signature: .probe, at: t0) { .known(admin) } == .keyWouldDo)
        #expect(p.authAttempt(signature: .valid, at: t0 + .seconds(1)) { .known(alice) } == .accept(alice))
        #expect(p.identity == alice)
        // Authenticated once: later requests change nothing.
        #expect(p.authAttempt(signature: .valid, at: t0 + .seconds(2)) { .known(admin) } == .deny(.alreadyAuthenticated))
        #expect(p.identity == alice)
    }

    @Test func aBadSignatureForAKnownKeySetsNoIdentity() {
        var p = policy()
        #expect(p.authAttempt(signature: .probe, at: t0) { .known(alice) } == .keyWouldDo)
        #expect(p.authAttempt(signature: .invalid, at: t0) { .known(alice) } == .deny(.badSignature(alice)))
        #expect(p.identity == nil)
    }

    // MARK: - Stop

    @Test func stopDuringAuthDisconnectsAndDeniesAuth() {
        var p = policy()
        #expect(p.authAttempt(signature: .probe, at: t0) { .known(alice) } == .keyWouldDo)
        p.stop()
        #expect(p.authAttempt(signature: .valid, at: t0 + .seconds(1)) { .known(alice) } == .deny(.stopping))
        #expect(p.identity == nil)
        // Unauthenticated: it goes even if something claimed to hold the connection.
        #expect(p.tick(at: t0 + .seconds(1), sessionsHoldConnection: true) == .disconnect(.serverStopping))
    }

    @Test func stopWaitsForSessionsThatHoldTheConnectionAndRefusesNewOnes() {
        var p = authenticated()
        #expect(p.openSession(at: t0 + .seconds(2)) == .allow)
        p.stop()
        #expect(p.openSession(at: t0 + .seconds(3)) == .refuse(.stopping))
        #expect(p.tick(at: t0 + .seconds(3), sessionsHoldConnection: true) == .keepGoing)
        #expect(p.tick(at: t0 + .seconds(4), sessionsHoldConnection: false) == .disconnect(.serverStopping))
    }

    @Test func aClientDisconnectIsFinal() {
        var p = authenticated()
        p.clientDisconnected()
        #expect(p.tick(at: t0 + .seconds(2), sessionsHoldConnection: true) == .disconnect(.clientDisconnected))
        #expect(p.openSession(at: t0 + .seconds(2)) == .refuse(.stopping))
    }

    // MARK: - Sessions

    @Test func theSessionCapCountsSessionsOpenAtOnce() {
        var p = authenticated()
        for _ in 1...10 { #expect(p.openSession(at: t0 + .seconds(2)) == .allow) }
        #expect(p.openSession(at: t0 + .seconds(2)) == .refuse(.tooManyOpen(limit: 10)))
        #expect(p.openSessions == 10)
        p.sessionEnded()
        #expect(p.openSession(at: t0 + .seconds(3)) == .allow)
        #expect(p.openSession(at: t0 + .seconds(3)) == .refuse(.tooManyOpen(limit: 10)))
    }

    @Test func aThousandSequentialSessionsAreAllAllowed() {
        var p = authenticated()
        for i in 1...1000 {
            #expect(p.openSession(at: t0 + .seconds(2)) == .allow, "session \(i)")
            p.sessionEnded()
        }
        #expect(p.openSessions == 0)
    }

    @Test func anExtraEndNeverFreesMoreSlotsThanTheCap() {
        var p = authenticated()
        p.sessionEnded()
        p.sessionEnded()
        for _ in 1...10 { #expect(p.openSession(at: t0 + .seconds(2)) == .allow) }
        #expect(p.openSession(at: t0 + .seconds(2)) == .refuse(.tooManyOpen(limit: 10)))
    }

    @Test func limitsComeFromTheServerConfiguration() {
        var configuration = SSHServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.authTimeout = 1.5
        configuration.maxChannelsPerConnection = 3
        let limits = Policy.Limits(configuration)
        #expect(limits.loginGrace == .milliseconds(1500))
        #expect(limits.maxOpenSessions == 3)
        #expect(limits.idleTimeout == .seconds(600))
        #expect(limits.maxAuthAttempts == 6)
    }

    // MARK: - The audit list

    @Test func theAuditListIsBounded() {
        var verbs = AuditVerbs()
        #expect(verbs.text == "-")
        for _ in 0..<1000 { verbs.append("whoami") }
        #expect(verbs.verbs.count == AuditVerbs.kept)
        #expect(verbs.text.hasSuffix(",whoami,+968"))
    }
}
