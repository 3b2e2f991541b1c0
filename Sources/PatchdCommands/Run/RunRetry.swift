// PatchdCommands: `run retry ID [--wait]`: runs a finished run's task again. Gate: write.

import ArgumentParser
import PatchdCore
import SSHKeys

struct RunRetry: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "run a finished run's task again")
    static let gate = CommandGate.run(.write, action: "retrying runs")

    @Argument(help: "The run's id.")
    var id: String
    @Flag(help: "Stream the new run's log until it ends: exit 0 if it succeeded, 1 otherwise.")
    var wait = false

    var gateSubject: String? { id }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let old = try invocation.runRecord.record
        guard old.status.isFinished, let spec = old.taskSpec, let agent = AgentKind(rawValue: old.agent) else {
            return invocation.fail("run \(old.id!) is \(old.status.rawValue); only finished runs can be retried")
        }
        let run = try ctx.runs.enqueue(
            .init(
                repo: old.repo, branch: old.branch, base: old.base, agent: agent, spec: spec,
                source: "retry", requestedBy: ctx.identity.userID))
        ctx.scheduler.wake()
        invocation.out("run \(run.id!) queued (retry of \(old.id!))\n")
        return wait ? invocation.follow(run.id!) : 0
    }
}
