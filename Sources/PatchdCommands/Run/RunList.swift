// PatchdCommands: `run list [REPO] [--status S] [--json]` (alias `runs`): runs you can read, newest first.
// Gate: anyone; a REPO, if given, must be readable; the list holds only runs of readable repositories.

import ArgumentParser
import PatchdCore

struct RunList: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "runs on repositories you can read, newest first (at most 200)")
    static let gate = CommandGate.repository(.read, optional: true)

    @Argument(help: "Only this repository's runs.")
    var repo: String?
    @Option(help: "queued, running, succeeded, failed or canceled.")
    var status: String?
    @Flag(help: "A JSON array of runs.")
    var json = false

    var gateSubject: String? { repo }

    func validate() throws {
        if let status, RunStatus(rawValue: status) == nil {
            throw ValidationError("--status must be queued, running, succeeded, failed or canceled")
        }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        // The access filter is part of the query, so the 200 are the newest the caller may read.
        let runs = try ctx.runs.list(
            repo: invocation.repository?.name.value, status: status.flatMap(RunStatus.init(rawValue:)),
            repos: try ctx.readableRepositoryNames(), limit: 200)
        if json { return invocation.json(runs.map(RunJSON.init)) }
        if runs.isEmpty { invocation.out("no runs\n"); return 0 }
        invocation.out(
            TextTable.render(
                ["ID", "REPO", "BRANCH", "STATUS", "AGENT", "CREATED", "TITLE"],
                runs.map {
                    [
                        String($0.id!), $0.repo, Terminal.sanitize($0.branch), $0.status.rawValue, $0.agent,
                        RelativeTime.describe($0.createdAt), Self.attemptTag($0) + Terminal.sanitize(String($0.title.prefix(50))),
                    ]
                }))
        return 0
    }

    /// Best of N: `[GROUP NUMBER/OF] ` before the title, `*` after the number on the winner; "" for a single run.
    static func attemptTag(_ run: RunRecord) -> String {
        guard let group = run.attemptGroup, let number = run.attemptNumber else { return "" }
        return "[\(group) \(number)/\(run.attemptOf ?? number)\(run.attemptWinner == run.id ? "*" : "")] "
    }
}
