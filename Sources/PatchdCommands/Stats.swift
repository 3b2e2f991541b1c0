// PatchdCommands: `stats [--json|--prometheus]`: server counters. Gate: admin only.

import ArgumentParser

struct Stats: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "server counters (admins)")
    static let gate = CommandGate.admin(denial: "only admins can see server statistics")

    @Flag(help: "One JSON object.")
    var json = false
    @Flag(help: "Prometheus text exposition format, for scraping over ssh.")
    var prometheus = false

    func validate() throws {
        if json && prometheus { throw ValidationError("--json and --prometheus exclude each other") }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let snapshot = try invocation.context.stats()
        if json { return invocation.json(snapshot) }
        invocation.out(prometheus ? snapshot.prometheus : snapshot.text)
        return 0
    }
}
