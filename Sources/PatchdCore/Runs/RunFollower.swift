// PatchdCore: streams a run's events until it ends (push -o wait, run logs --follow), with heartbeats.

package import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

package struct RunFollower {
    let runs: RunStore
    /// Seconds of silence before a "still running" line.
    package var heartbeat: Double = 15
    package var pollInterval: useconds_t = 15_000

    package init(runs: RunStore) { self.runs = runs }

    /// Writes each event line through `write` (which returns false once the reader is
    /// gone) until the run has finished. Returns the final record, or nil if the reader left.
    package func follow(runID: Int64, prefix: String = "", write: (String) -> Bool) -> RunRecord? {
        var lastEvent: Int64 = 0
        var lastOutput = MonotonicClock.now
        let started = MonotonicClock.now
        while true {
            // Status and events in one read: the end is seen on the poll that sees the last events.
            let (events, current) = (try? runs.eventsAndRun(runID: runID, after: lastEvent, limit: 1000)) ?? ([], nil)
            for event in events {
                lastEvent = event.id ?? lastEvent
                if !write(prefix + Self.format(event)) { return nil }
                lastOutput = MonotonicClock.now
            }
            if events.count < 1000, let current, current.status.isFinished { return current }
            if MonotonicClock.now - lastOutput >= heartbeat {
                let status = current?.status.rawValue ?? "unknown"
                if !write(prefix + "run \(runID) \(status), \(Int(MonotonicClock.now - started))s so far") { return nil }
                lastOutput = MonotonicClock.now
            }
            if events.count < 1000 { usleep(pollInterval) }
        }
    }

    package static func format(_ event: RunEventRecord) -> String {
        let text = Terminal.sanitize(event.text)
        switch event.kind {
        case "output": return "  " + text
        case "error": return "error: " + text
        default: return text
        }
    }
}
