// PatchdCommands: `run diff ID [--stat|--binary]`: a run's change, for people, or as exact bytes for `git apply`.
// Gate: read on the run's repository.
import ArgumentParser
import PatchdCore

struct RunDiff: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "a run's change (base to result)",
        discussion: """
            Without flags, the diff for reading: control characters (escape sequences, CR) from the \
            agent's files are removed so they cannot drive your terminal. For a patch, use --binary: \
            the exact bytes of 'git diff --binary BASE RESULT', binary files included, to pipe into \
            'git apply' (do not print it on a terminal).
            """)
    static let gate = CommandGate.run(.read)

    @Argument(help: "The run's id.")
    var id: String
    @Flag(help: "Only the changed files and line counts.")
    var stat = false
    @Flag(help: "The exact bytes of 'git diff --binary', for 'git apply'.")
    var binary = false

    var gateSubject: String? { id }

    func validate() throws {
        if stat && binary { throw ValidationError("--stat and --binary exclude each other") }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let run = try invocation.runRecord.record
        let repositories = invocation.context.repositories
        guard let result = run.result, let name = try? RepositoryName(run.repo) else {
            invocation.output.err("patchd: run \(run.id!) has no result commit (status \(run.status.rawValue)\(run.changed == false ? ", no changes" : ""))\n")
            return 0
        }
        if binary {
            invocation.output.out(bytes: try repositories.binaryDiff(name, base: run.base, result: result))
            return 0
        }
        // Diff text is the agent's output: escape sequences in it must not reach a terminal.
        invocation.out(Terminal.sanitize(repositories.diff(name, base: run.base, result: result, stat: stat)))
        return 0
    }
}
