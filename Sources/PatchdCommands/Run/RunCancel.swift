// PatchdCommands: `run cancel ID`: stops a queued or running run (its whole process tree). Gate: write.

import ArgumentParser
import Foundation
import PatchdCore

struct RunCancel: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "stop a run (its whole process tree)")
    static let gate = CommandGate.run(.write, action: "canceling runs")

    @Argument(help: "The run's id.")
    var id: String

    var gateSubject: String? { id }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let run = try invocation.runRecord.record
        let id = run.id!
        if try ctx.runs.cancelQueued(id: id) {
            invocation.out("run \(id) canceled (it had not started)\n")
            return 0
        }
        guard ctx.scheduler.cancel(id) else {
            return invocation.fail("run \(id) is \(run.status.rawValue); only queued or running runs can be canceled")
        }
        // The sandbox's whole process tree is killed; wait for the run to record it.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, let current = try ctx.runs.run(id: id), !current.status.isFinished { usleep(50_000) }
        invocation.out("run \(id) canceled\n")
        return 0
    }
}
