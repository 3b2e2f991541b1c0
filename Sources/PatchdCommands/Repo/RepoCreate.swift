// PatchdCommands: `repo create NAME`: an empty repository the caller owns. Gate: anyone.

import ArgumentParser
import GitStore
import PatchdCore
import SSHKeys

struct RepoCreate: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "an empty repository you own (a first push does the same)")
    static let gate = CommandGate.anyone

    @Argument(help: "The repository's name: letters, digits, '.', '_', '-', and one '/' for a group.")
    var name: String

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let repoName: RepositoryName
        do { repoName = try RepositoryName(fromClient: name) } catch { return invocation.fail(error.description) }
        guard try ctx.repoStore.insert(name: repoName, ownerID: ctx.identity.userID) != nil else {
            return invocation.fail("repository '\(repoName)' already exists")
        }
        do { try ctx.repositories.create(repoName) } catch {
            try? ctx.repoStore.delete(name: repoName)
            return invocation.fail("cannot create '\(repoName)': \(error)")
        }
        invocation.out("created \(repoName)\n  git remote add origin ssh://git@HOST:PORT/\(repoName)\n")
        return 0
    }
}
