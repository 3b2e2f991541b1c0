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

    /// Follows every attempt of a group, then prints how it was decided: exit 0 if one won.
    func followGroup(_ attempts: [RunRecord]) -> Int32 {
        let output = self.output
        let write: (String) -> Bool = { output.out($0 + "\n") }
        guard let final = RunFollower(runs: context.runs).followGroup(attempts, prefix: "", write: write) else { return 1 }
        for line in RunFollower.groupSummary(final) { _ = write(line) }
        return final.contains { $0.id != nil && $0.id == $0.attemptWinner } ? 0 : 1
    }
}
