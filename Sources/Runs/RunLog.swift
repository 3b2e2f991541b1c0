// Runs: a run's event log, batched into few transactions and capped in size.

import Foundation
import PatchdCore
import PatchdSystem
import Synchronization

/// Events arrive per output line, possibly hundreds of thousands of them: one insert per
/// line would make logging the bottleneck. Lines are buffered and written in batches
/// (every 100 ms or 500 events), and past `maxOutputLines` output lines only a count is kept.
final class RunLog: Sendable {
    private let runs: RunStore
    private let runID: Int64
    private let maxOutputLines: Int
    private let state = Mutex(State())
    /// Secret values replaced by `***` in every event (setup's secrets; `mask`).
    private let masked = Mutex<[String]>([])

    private struct State {
        var pending: [RunEvent] = []
        var lastFlush = MonotonicClock.now
        var outputLines = 0
        var dropped = 0
    }

    init(runs: RunStore, runID: Int64, maxOutputLines: Int = 20_000) {
        self.runs = runs
        self.runID = runID
        self.maxOutputLines = maxOutputLines
    }

    /// The longest event text kept, in bytes; a longer one keeps its head and says how much went.
    /// (Agents may pass whole JSON lines of any length; the log is for people.)
    static let maxEventBytes = 16 * 1024

    /// From now on every event has each of `values` replaced by `***` (longest first, so a
    /// value that contains another is masked whole).
    func mask(_ values: [String]) {
        masked.withLock { $0 = Array(Set($0 + values.filter { !$0.isEmpty })).sorted { $0.utf8.count > $1.utf8.count } }
    }

    func append(_ original: RunEvent) {
        var event = original
        let values = masked.withLock { $0 }
        if !values.isEmpty {
            var text = event.text
            for value in values where text.contains(value) { text = text.replacingOccurrences(of: value, with: "***") }
            if text != event.text { event = RunEvent(event.kind, text) }
        }
        if event.text.utf8.count > Self.maxEventBytes {
            let bytes = Array(event.text.utf8)
            let cut = UTF8Boundary.cut(bytes, from: 0, maxBytes: Self.maxEventBytes)
            event = RunEvent(event.kind, String(decoding: bytes[..<cut], as: UTF8.self) + " … (\(bytes.count - cut) more bytes)")
        }
        let batch = state.withLock { s -> [RunEvent]? in
            if event.kind == .output {
                s.outputLines += 1
                if s.outputLines > maxOutputLines {
                    s.dropped += 1
                    return nil
                }
            }
            s.pending.append(event)
            // Non-output events (status, tool calls) are flushed at once so followers see them promptly.
            guard s.pending.count >= 500 || event.kind != .output || MonotonicClock.now - s.lastFlush > 0.1 else { return nil }
            return take(&s)
        }
        if let batch { runs.addEvents(runID: runID, batch) }
    }

    /// Writes what is buffered (and the count of lines not kept).
    func flush() {
        let batch = state.withLock { s -> [RunEvent] in
            if s.dropped > 0 {
                s.pending.append(RunEvent(.info, "(\(s.dropped) more output lines not kept in the log)"))
                s.dropped = 0
            }
            return take(&s)
        }
        if !batch.isEmpty { runs.addEvents(runID: runID, batch) }
    }

    private func take(_ s: inout State) -> [RunEvent] {
        defer {
            s.pending.removeAll(keepingCapacity: true)
            s.lastFlush = MonotonicClock.now
        }
        return s.pending
    }
}
