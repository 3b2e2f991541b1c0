// PatchdCommands: `repo delete NAME --yes`: removes a repository and its history. Gate: owner or admin.

import ArgumentParser
import GitStore
import PatchdCore

struct RepoDelete: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "removes the repository and its history")
    static let gate = CommandGate.repository(.owner, action: "delete it")

    @Argument(help: "The repository.")
    var name: String
    @Flag(help: "Confirms: the history is gone for good.")
    var yes = false

    var gateSubject: String? { name }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let name = try invocation.repo.name
        // Checked after the gate, so only someone who may delete learns what --yes is for.
        guard yes else { return invocation.usage("deleting '\(name)' removes its history for good; add --yes to confirm") }
        try ctx.repoStore.delete(name: name)
        ctx.repositories.delete(name)
        invocation.out("deleted \(name)\n")
        return 0
    }
}
