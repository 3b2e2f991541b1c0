// Runs: what a follow-up's agent is told about the runs before it: their tasks, summaries and a compact transcript.

import Foundation
package import PatchdCore

/// The text a follow-up run's agent gets ahead of its task: for each earlier run in the chain
/// (oldest first, at most `maxRuns`), its task, its outcome and summary, and what it did (the
/// commands and tool calls from its log, not their output), within `maxBytes` in all.
package enum FollowUpContext {
    static let maxRuns = 5
    static let maxBytes = 12 * 1024
    static let maxStepsPerRun = 40

    /// The context for `run` (nil when it follows nothing, or the earlier runs are gone).
    package static func render(for run: RunRecord, runs: RunStore) -> String? {
        guard let chain = try? runs.followChain(of: run, limit: maxRuns), !chain.isEmpty else { return nil }
        var parts: [String] = []
        for id in chain.reversed() {
            guard let earlier = try? runs.run(id: id) else { continue }
            let events = (try? runs.events(runID: id, limit: 2000)) ?? []
            parts.append(describe(earlier, events: events))
        }
        guard !parts.isEmpty else { return nil }
        var text =
            "This task follows earlier work on this branch by patchd's agent"
            + " (the files you see already hold it). What was asked and done before:\n\n" + parts.joined(separator: "\n\n")
        if text.utf8.count > maxBytes {
            // Keep the end: the latest run matters most.
            text = "(earlier runs shortened)\n" + String(decoding: text.utf8.suffix(maxBytes), as: UTF8.self)
        }
        return text
    }

    static func describe(_ run: RunRecord, events: [RunEventRecord]) -> String {
        let task = run.taskSpec.map { $0.body.isEmpty ? ($0.run ?? "") : $0.body } ?? run.title
        var lines = ["Run \(run.id ?? 0) (\(run.status.rawValue)\(run.checkStatus.map { ", check \($0)" } ?? "")):", "Task: \(clip(task, 2000))"]
        if let summary = run.summary, !summary.isEmpty { lines.append("Summary: \(clip(summary, 2000))") }
        if let error = run.error { lines.append("It ended with: \(clip(error, 300))") }
        let steps = events.filter { $0.kind == RunEvent.Kind.tool.rawValue }.map { clip($0.text, 200) }
        if !steps.isEmpty {
            lines.append("What it did:")
            lines += steps.suffix(maxStepsPerRun).map { "  " + $0 }
            if steps.count > maxStepsPerRun {
                lines.insert("  (\(steps.count - maxStepsPerRun) earlier steps left out)", at: lines.count - maxStepsPerRun)
            }
        }
        return lines.joined(separator: "\n")
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }
}
