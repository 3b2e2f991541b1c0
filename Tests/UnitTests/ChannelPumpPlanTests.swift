// UnitTests: ChannelPumpPlan's decisions at the edges: shut windows, EOFs with bytes pending, early client closes.

import Testing

@testable import SSHServer

@Suite struct ChannelPumpPlanTests {
    typealias Plan = ChannelPumpPlan

    let t0 = ContinuousClock.now
    let scratch = 65_536

    func running(stdoutOpen: Bool = true, stderrOpen: Bool = true) -> Plan {
        var plan = Plan()
        plan.programStarted(stdoutOpen: stdoutOpen, stderrOpen: stderrOpen)
        return plan
    }

    // MARK: - What to poll

    @Test func nothingIsPolledBeforeTheProgramStartsOrAfterItFinished() {
        let idle = Plan()
        #expect(idle.interest(.init(window: 1000, stdinPending: 10, stdinOpen: true)) == .init())
        var done = running()
        done.finish(at: t0)
        #expect(done.interest(.init(window: 1000, stdinPending: 10, stdinOpen: true)) == .init())
    }

    @Test func outputIsPolledOnlyWithAnOpenWindowAndNothingPending() {
        let plan = running()
        #expect(plan.interest(.init(window: 1)) == .init(stdoutReadable: true, stderrReadable: true))
        // A shut window: a readable pipe would make every poll return at once.
        #expect(plan.interest(.init(window: 0)) == .init())
        // Bytes still pending on one stream: that stream's fd waits, the other is polled.
        #expect(plan.interest(.init(window: 100, stdoutPending: 5)) == .init(stdoutReadable: false, stderrReadable: true))
    }

    @Test func stdinIsPolledOnlyWhileOpenWithBytesForIt() {
        let plan = running()
        #expect(plan.interest(.init(window: 0, stdinPending: 3, stdinOpen: true)).stdinWritable)
        #expect(!plan.interest(.init(window: 0, stdinPending: 0, stdinOpen: true)).stdinWritable)
        #expect(!plan.interest(.init(window: 0, stdinPending: 3, stdinOpen: false)).stdinWritable)
    }

    @Test func aStreamAtEOFIsNotPolled() {
        var plan = running()
        plan.outputEnded(stderr: true)
        #expect(plan.interest(.init(window: 100)) == .init(stdoutReadable: true, stderrReadable: false))
        // A program whose stdout never opened (a failed start) only has stderr to read.
        #expect(running(stdoutOpen: false).interest(.init(window: 100)) == .init(stdoutReadable: false, stderrReadable: true))
    }

    // MARK: - Output

    @Test func pendingBytesGoFirstAndNeverBeyondTheWindow() {
        let plan = running()
        #expect(plan.outputStep(stderr: false, pending: 10_000, window: 4_096, scratch: scratch) == .send(4_096))
        #expect(plan.outputStep(stderr: false, pending: 100, window: 4_096, scratch: scratch) == .send(100))
        #expect(plan.outputStep(stderr: false, pending: 0, window: 4_096, scratch: scratch) == .read(4_096))
        #expect(plan.outputStep(stderr: false, pending: 0, window: 1 << 21, scratch: scratch) == .read(scratch))
    }

    @Test func windowZeroWithEOFPendingWaitsAndDoesNotComplete() {
        var plan = running()
        // The program is done (both EOFs) but 100 bytes are still to go and the window is shut.
        plan.outputEnded(stderr: false)
        plan.outputEnded(stderr: true)
        #expect(plan.outputStep(stderr: false, pending: 100, window: 0, scratch: scratch) == .wait)
        #expect(!plan.shouldComplete(stdoutPending: 100, stderrPending: 0))
        #expect(plan.interest(.init(window: 0, stdoutPending: 100)) == .init())
        // The WINDOW_ADJUST arrives: the bytes go, and then (not before) the exit status.
        #expect(plan.outputStep(stderr: false, pending: 100, window: 50, scratch: scratch) == .send(50))
        #expect(plan.outputStep(stderr: false, pending: 50, window: 2_000, scratch: scratch) == .send(50))
        #expect(plan.outputStep(stderr: false, pending: 0, window: 1_950, scratch: scratch) == .wait)
        #expect(plan.shouldComplete(stdoutPending: 0, stderrPending: 0))
    }

    @Test func completionNeedsBothStreamsAtEOFAndEmpty() {
        var plan = running()
        plan.outputEnded(stderr: false)
        #expect(!plan.shouldComplete(stdoutPending: 0, stderrPending: 0))
        plan.outputEnded(stderr: true)
        #expect(!plan.shouldComplete(stdoutPending: 0, stderrPending: 1))
        #expect(plan.shouldComplete(stdoutPending: 0, stderrPending: 0))
        plan.finish(at: t0)
        #expect(!plan.shouldComplete(stdoutPending: 0, stderrPending: 0), "the exit status goes out once")
    }

    // MARK: - Input

    @Test func clientBytesGoToStdinOrAreDiscardedWithoutOne() {
        let plan = running()
        #expect(plan.inputStep(after: .bytes(10), stdinOpen: true) == .deliver)
        #expect(plan.inputStep(after: .bytes(10), stdinOpen: false) == .discard)
        #expect(plan.inputStep(after: .nothing, stdinOpen: true) == .wait)
    }

    @Test func theClientsEOFClosesStdinOnce() {
        let plan = running()
        #expect(plan.inputStep(after: .endOfInput, stdinOpen: true) == .closeStdin)
        #expect(plan.inputStep(after: .endOfInput, stdinOpen: false) == .wait)
    }

    // MARK: - Close and stop

    @Test func clientCloseBeforeTheExitStatusAbortsTheProgram() {
        var plan = running()
        #expect(plan.fate(channelClosed: false) == .keep)
        plan.clientClosed()
        #expect(plan.fate(channelClosed: true) == .abortThenFree)
        // The driver aborts (finish), and the channel is then simply freed.
        plan.finish(at: t0)
        #expect(plan.fate(channelClosed: true) == .free)
        #expect(plan.interest(.init(window: 100)) == .init())
    }

    @Test func aChannelWeClosedStaysUntilTheClientClosesIt() {
        var plan = running()
        plan.outputEnded(stderr: false)
        plan.outputEnded(stderr: true)
        plan.finish(at: t0)
        // Our own ssh_channel_close makes libssh report "closed": not a reason to free it yet.
        #expect(plan.fate(channelClosed: true) == .keep)
        plan.clientClosed()
        #expect(plan.fate(channelClosed: true) == .free)
    }

    @Test func aBrokenChannelIsFreedAndItsProgramStopped() {
        let plan = running()
        #expect(plan.fate(channelClosed: true) == .abortThenFree)
        #expect(Plan().fate(channelClosed: true) == .free, "no program: nothing to stop")
    }

    @Test func aStoppingServerWaitsForARunningProgramAndBrieflyForTheClientsClose() {
        #expect(!Plan().holdsConnection(now: t0), "a channel with no program does not hold")
        var plan = running()
        #expect(plan.holdsConnection(now: t0 + .seconds(3600)))
        plan.finish(at: t0)
        #expect(plan.holdsConnection(now: t0 + .seconds(29)))
        #expect(!plan.holdsConnection(now: t0 + .seconds(30)))
    }
}
