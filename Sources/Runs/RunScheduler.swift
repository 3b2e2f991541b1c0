// Runs: the run scheduler: N workers, push order per branch, crash recovery, clean stop.

import Foundation
package import Logging
package import PatchdCore
import PatchdSystem
import Sandboxing
import Synchronization

/// Claims queued runs and executes each on its own thread (sandboxes block), at most
/// `workers` at a time. Runs of one repo+branch go one after another in push order
/// (`RunStore.claimNext`); others run in parallel.
package final class RunScheduler: Sendable {
    private let executor: RunExecutor
    private let runs: RunStore
    private let workers: Int
    private let wakeup: RunWakeup
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var stopping = false
        var running: [Int64: CancellationFlag] = [:]
        var threads: [Int64: OSThread] = [:]
        var loop: OSThread?
    }

    package init(executor: RunExecutor, runs: RunStore, workers: Int, wakeup: RunWakeup, logger: Logger) {
        self.executor = executor
        self.runs = runs
        self.workers = workers
        self.wakeup = wakeup
        self.logger = logger
    }

    package func start() throws {
        let recovered = try runs.recoverInterrupted()
        if !recovered.requeued.isEmpty { logger.notice("Re-queued runs interrupted by a crash: \(recovered.requeued)") }
        if !recovered.failed.isEmpty { logger.warning("Failed runs interrupted twice: \(recovered.failed)") }
        let thread = try OSThread(name: "run-scheduler") { [self] in loop() }
        state.withLock { $0.loop = thread }
    }

    /// Wakes the loop (from this process).
    package func poke() { RunWakeup.notify(dataDir: (wakeup.path as NSString).deletingLastPathComponent) }

    private func loop() {
        while !state.withLock({ $0.stopping }) {
            // Best of N: groups left undecided get their decision; attempts another one beat stop.
            for id in executor.sweepAttemptGroups() { _ = cancel(runID: id) }
            claimWhileFree()
            wakeup.wait(timeoutMs: 1000)
        }
    }

    private func claimWhileFree() {
        while true {
            let free = state.withLock { !$0.stopping && $0.running.count < workers }
            guard free else { return }
            let claimed: RunRecord?
            do { claimed = try runs.claimNext() } catch {
                logger.error("Cannot claim a run: \(error)")
                return
            }
            guard let run = claimed, let id = run.id else { return }
            let flag = CancellationFlag()
            state.withLock { $0.running[id] = flag }
            logger.info("Run \(id) started: \(run.repo) \(run.branch) (\(run.agent))")
            let thread: OSThread
            do {
                thread = try OSThread(name: "run-\(id)") { [self] in
                    executor.execute(run, cancel: flag)
                    state.withLock {
                        $0.running[id] = nil
                        $0.threads[id] = nil
                    }
                    logger.info("Run \(id) ended")
                    poke()
                }
            } catch {
                // Out of threads: the run goes back to the queue and is tried at the next tick.
                logger.error("Cannot start run \(id): \(error); it stays queued")
                state.withLock { $0.running[id] = nil }
                try? runs.requeueForShutdown(id: id)
                return
            }
            state.withLock { $0.threads[id] = thread }
            thread.detach()
        }
    }

    /// `run cancel`: stops the run's process tree; the run ends `canceled`.
    package func cancel(runID: Int64) -> Bool {
        state.withLock { $0.running[runID] }.map {
            $0.cancel(.canceled); return true
        } ?? false
    }

    /// Stops claiming, stops running sandboxes, and puts their runs back in the queue.
    package func stop(timeout: Double = 30) {
        let (loop, running) = state.withLock { s -> (OSThread?, [Int64: CancellationFlag]) in
            s.stopping = true
            return (s.loop, s.running)
        }
        poke()
        loop?.join()
        for flag in running.values { flag.cancel(.shutdown) }
        let deadline = MonotonicClock.now + timeout
        while state.withLock({ !$0.running.isEmpty }) && MonotonicClock.now < deadline { usleep(20_000) }
        for id in running.keys { try? runs.requeueForShutdown(id: id) }
    }
}
