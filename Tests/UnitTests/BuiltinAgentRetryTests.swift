// UnitTests: the builtin agent's API retry wait wakes up when the run is canceled.

import Foundation
import PatchdSystem
import Synchronization
import Testing

@testable import Agents
@testable import Runs
@testable import Sandboxing

/// Answers every request with 529 (overloaded) and a long Retry-After.
struct OverloadedTransport: MessagesTransport {
    func send(body: [UInt8], onEvent: (String, String) throws -> Void) throws -> TransportResult {
        TransportResult(status: 529, headers: ["retry-after": "60"], body: #"{"error": {"message": "Overloaded"}}"#)
    }
}

@Suite struct BuiltinAgentRetryTests {
    @Test func cancelWakesTheRetryWaitPromptly() throws {
        let ws = try ToolWorkspace()
        var configuration = BuiltinAgentConfiguration()
        configuration.baseRetryDelay = 30
        let agent = BuiltinAgent(configuration: configuration) { OverloadedTransport() }
        let cancel = ws.context.cancel
        let canceledAt = Mutex<Double>(0)
        let thread = Thread {
            usleep(300_000)
            canceledAt.withLock { $0 = MonotonicClock.now }
            cancel.cancel()
        }
        thread.start()
        let started = MonotonicClock.now
        #expect(throws: FatalAPIError.self) { try agent.request([], transport: OverloadedTransport(), context: ws.context) }
        let woke = MonotonicClock.now - canceledAt.withLock { $0 }
        print("retry wait woke \(String(format: "%.0f", woke * 1000)) ms after the cancel")
        #expect(MonotonicClock.now - started < 2)
        #expect(woke < 0.1, "\(woke) s after the cancel")
    }

    @Test func waitSleepsTheWholeDelayWhenNotCanceled() {
        let started = MonotonicClock.now
        #expect(BuiltinAgent.wait(0.15, cancel: CancellationFlag()) == nil)
        #expect(MonotonicClock.now - started >= 0.15)
        let flag = CancellationFlag()
        flag.cancel(.shutdown)
        #expect(BuiltinAgent.wait(60, cancel: flag) == .shutdown)
    }
}
