// PatchdCommands: `run logs ID [--follow]`: a run's log, for people (sanitized). Gate: read on the run's repository.

import ArgumentParser
import PatchdCore

struct RunLogs: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "a run's log",
        discussion: "With --follow, streams until the run ends: exit 0 if it succeeded, 1 otherwise.")
    static let gate = CommandGate.run(.read)

    @Argument(help: "The run's id.")
    var id: String
    @Flag(help: "Keep streaming until the run ends.")
    var follow = false

    var gateSubject: String? { id }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let runID = try invocation.runRecord.id
        guard follow else {
            for event in try invocation.context.runs.events(runID: runID) where !invocation.out(RunFollower.format(event) + "\n") { return 1 }
            return 0
        }
        return invocation.follow(runID)
    }
}
