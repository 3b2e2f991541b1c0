// PatchdCommands: `run diff ID [--stat]`: a run's change as the exact patch (for `git apply`), or its stat for people.
// Gate: read on the run's repository.

import ArgumentParser
import GitStore
import PatchdCore

struct RunDiff: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "a run's change (base to result), as a patch",
        discussion: """
            The exact bytes of 'git diff --binary BASE RESULT': CRLF, other encodings and binary \
            files included, so 'ssh HOST run diff ID | git apply --binary' reproduces the result. \
            It is the agent's output: page it through 'less' rather than printing it on a terminal. \
            --stat lists the changed files for people, with control characters removed. \
            (--binary is accepted and changes nothing: the patch is always binary-safe.)
            """)
    static let gate = CommandGate.run(.read)

    @Argument(help: "The run's id.")
    var id: String
    @Flag(help: "Only the changed files and line counts, for reading.")
    var stat = false
    @Flag(help: .hidden)
    var binary = false

    var gateSubject: String? { id }

    func validate() throws {
        if stat && binary { throw ValidationError("--stat and --binary exclude each other") }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let run = try invocation.runRecord.record
        let repositories = invocation.context.repositories
        guard let result = run.result, let name = try? RepositoryName(run.repo) else {
            invocation.output.err(
                "patchd: run \(run.id!) has no result commit (status \(run.status.rawValue)\(run.changed == false ? ", no changes" : ""))\n")
            return 0
        }
        if stat {
            // A stat is for people: names in it are the agent's, and escape sequences must not reach a terminal.
            invocation.out(Terminal.sanitize(repositories.diff(name, base: run.base, result: result, stat: true)))
            return 0
        }
        // A patch is bytes: any change to them (a stripped CR, a decoded Latin-1 byte) breaks `git apply`.
        invocation.output.out(bytes: try repositories.binaryDiff(name, base: run.base, result: result))
        return 0
    }
}
