// PatchdCommands: the `run` group (alias `runs` = `run list`), and what its commands share.

import ArgumentParser
import PatchdCore

struct RunGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "runs and their results; start, stop, repeat (runs = run list)",
        subcommands: [RunList.self, RunShow.self, RunLogs.self, RunDiff.self, RunStart.self, RunCancel.self, RunRetry.self, RunResume.self])
}

extension CommandInvocation {
    /// Streams a run's events until it ends: exit 0 if it succeeded, 1 otherwise (or if the client left).
    func follow(_ id: Int64) -> Int32 {
        let output = self.output
        guard let final = RunFollower(runs: context.runs).follow(runID: id, write: { output.out($0 + "\n") }) else { return 1 }
        return final.status == .succeeded ? 0 : 1
    }
}
