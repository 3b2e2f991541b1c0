// PatchdCommands: `run diff ID [--stat]`: a run's change, for people. Gate: read on the run's repository.
import ArgumentParser
import PatchdCore

struct RunDiff: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "diff", abstract: "a run's change (base to result)")
    static let gate = CommandGate.run(.read)

    @Argument(help: "The run's id.")
    var id: String
    @Flag(help: "Only the changed files and line counts.")
    var stat = false

    var gateSubject: String? { id }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let run = try invocation.runRecord.record
        guard let result = run.result, let name = try? RepositoryName(run.repo) else {
            invocation.output.err("patchd: run \(run.id!) has no result commit (status \(run.status.rawValue)\(run.changed == false ? ", no changes" : ""))\n")
            return 0
        }
        // Diff text is the agent's output: escape sequences in it must not reach a terminal.
        invocation.out(Terminal.sanitize(invocation.context.repositories.diff(name, base: run.base, result: result, stat: stat)))
        return 0
    }
}
