// UnitTests: the limit loop's decisions, in microseconds, with a hand-driven clock.

import Testing

@testable import PatchdSystem
@testable import Sandboxing

@Suite("command limit watch")
struct CommandLimitWatchTests {
    func limits(wall: Double = 10, output: Int = 100) -> SandboxLimits {
        var l = SandboxLimits()
        l.wallClockSeconds = wall
        l.maxOutputBytes = output
        return l
    }

    @Test("the deadline stops the command just after it passes, not before")
    func deadline() {
        var watch = CommandLimitWatch(limits: limits(wall: 10), startedAt: 100)
        #expect(watch.check(CommandObservation(now: 110)) == .keepGoing)
        #expect(watch.check(CommandObservation(now: 110.001)) == .stop(.timeout))
    }

    @Test("output is counted across reads; the byte past the cap stops it")
    func outputCap() {
        var watch = CommandLimitWatch(limits: limits(output: 100), startedAt: 0)
        #expect(watch.output(60) == .keepGoing)
        #expect(watch.output(40) == .keepGoing)
        #expect(watch.output(1) == .stop(.output))
        #expect(watch.outputBytes == 101)
    }

    @Test("precedence: cancel beats timeout beats processes beats disk")
    func precedence() {
        var watch = CommandLimitWatch(limits: limits(wall: 1), startedAt: 0)
        #expect(watch.check(CommandObservation(now: 5, canceled: .canceled, processCapHit: true, diskExceeded: true)) == .stop(.canceled))
        #expect(watch.check(CommandObservation(now: 5, processCapHit: true, diskExceeded: true)) == .stop(.timeout))
        #expect(watch.check(CommandObservation(now: 0.5, processCapHit: true, diskExceeded: true)) == .stop(.processes))
        #expect(watch.check(CommandObservation(now: 0.5, diskExceeded: true)) == .stop(.disk))
        #expect(watch.check(CommandObservation(now: 0.5, canceled: .shutdown)) == .stop(.shutdown))
    }

    @Test("after the command exits, leftovers holding the pipe get a 2 s grace, then are stopped without a limit")
    func leftovers() {
        var watch = CommandLimitWatch(limits: limits(wall: 100), startedAt: 0)
        #expect(watch.check(CommandObservation(now: 1, exited: true)) == .keepGoing)
        #expect(watch.exitedAt == 1)
        #expect(watch.check(CommandObservation(now: 3, exited: true)) == .keepGoing)
        #expect(watch.check(CommandObservation(now: 3.01, exited: true)) == .stopLeftovers)
    }

    @Test("a deadline during the leftovers' grace still reports the timeout")
    func deadlineDuringGrace() {
        var watch = CommandLimitWatch(limits: limits(wall: 2), startedAt: 0)
        #expect(watch.check(CommandObservation(now: 1.5, exited: true)) == .keepGoing)
        #expect(watch.check(CommandObservation(now: 2.5, exited: true)) == .stop(.timeout))
    }

    @Test("a failure after exit is explained by the cap the kernel enforced, else by none")
    func limitAfterExit() {
        #expect(CommandLimitWatch.limitAfterExit(exitStatus: 0, processCapHit: true, memoryCapHit: true, outputTail: "") == nil)
        #expect(CommandLimitWatch.limitAfterExit(exitStatus: 1, processCapHit: true, memoryCapHit: true, outputTail: "") == .processes)
        #expect(CommandLimitWatch.limitAfterExit(exitStatus: 137, processCapHit: false, memoryCapHit: true, outputTail: "") == .memory)
        #expect(CommandLimitWatch.limitAfterExit(exitStatus: 153, processCapHit: false, memoryCapHit: false, outputTail: "") == .fileSize)
        #expect(
            CommandLimitWatch.limitAfterExit(
                exitStatus: 1, processCapHit: false, memoryCapHit: false,
                outputTail: "x: File size limit exceeded") == .fileSize)
        #expect(CommandLimitWatch.limitAfterExit(exitStatus: 2, processCapHit: false, memoryCapHit: false, outputTail: "boom") == nil)
    }

    @Test("long lines are cut at UTF-8 character boundaries")
    func utf8Cuts() {
        let euro = Array("€€€€".utf8)  // 3 bytes each
        #expect(UTF8Boundary.cut(euro, from: 0, maxBytes: 4) == 3)
        #expect(UTF8Boundary.cut(euro, from: 0, maxBytes: 6) == 6)
        #expect(UTF8Boundary.cut(euro, from: 3, maxBytes: 5) == 6)
        #expect(UTF8Boundary.cut(euro, from: 0, maxBytes: 100) == 12)
        let emoji = Array("a😀b".utf8)  // 1 + 4 + 1
        #expect(UTF8Boundary.cut(emoji, from: 0, maxBytes: 4) == 1)
        let junk: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        #expect(UTF8Boundary.cut(junk, from: 0, maxBytes: 4) == 4, "invalid input is cut where asked")
    }
}
