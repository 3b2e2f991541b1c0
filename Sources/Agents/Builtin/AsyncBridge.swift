// Agents: runs async work (the MCP SDK's actors) from the builtin agent's own thread and waits for it there, never on the cooperative pool.
import Foundation
import PatchdSystem
import Synchronization

/// The builtin agent's loop runs on a dedicated run thread (`RunScheduler`'s OSThread), not in a
/// Task. The MCP SDK is async: its work runs in a Task on the global executor, and the run thread
/// waits on a condition, waking every 20 ms to look at `abort` (the run canceled, the server gone)
/// and the deadline. Nothing here blocks a pool thread.
enum AsyncBridge {
    struct Stopped: Error, CustomStringConvertible { let description: String }

    static func wait<T: Sendable>(
        seconds: Double, abort: () -> String?,
        _ operation: @escaping @Sendable () async throws -> T
    ) throws -> T {
        let box = ResultBox<T>()
        let task = Task {
            do { box.set(.success(try await operation())) } catch { box.set(.failure(error)) }
        }
        let deadline = MonotonicClock.now + seconds
        while true {
            if let result = box.wait(0.02) { return try result.get() }
            if let why = abort() { task.cancel(); throw Stopped(description: why) }
            if MonotonicClock.now >= deadline {
                task.cancel()
                throw Stopped(description: "no answer within \(Int(seconds.rounded())) s")
            }
        }
    }
}

/// One result handed from a Task to a waiting thread.
private final class ResultBox<T: Sendable>: Sendable {
    private let condition = NSCondition()
    private let value = Mutex<Result<T, Error>?>(nil)

    func set(_ result: Result<T, Error>) {
        condition.lock()
        value.withLock { $0 = result }
        condition.signal()
        condition.unlock()
    }

    /// The result, waiting at most `seconds` for it.
    func wait(_ seconds: Double) -> Result<T, Error>? {
        condition.lock()
        defer { condition.unlock() }
        if let done = value.withLock({ $0 }) { return done }
        _ = condition.wait(until: Date(timeIntervalSinceNow: seconds))
        return value.withLock { $0 }
    }
}
