// PatchdCommands: `repo secret set|list|remove`: setup's secrets (value on stdin, names only shown). Gate: owner or admin.

import ArgumentParser
import PatchdCore

struct RepoSecretGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "secrets given to setup alone, as environment variables",
        subcommands: [RepoSecretSet.self, RepoSecretList.self, RepoSecretRemove.self])
}

extension CommandInvocation {
    func secretStore() throws -> SecretStore {
        guard let store = context.services.secrets else { throw CommandUnavailable("this server keeps no secrets") }
        return store
    }
}

struct RepoSecretSet: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "set a secret from stdin (ssh HOST repo secret set REPO NAME < file)",
        discussion: "The value is read from stdin, never from the command line; a trailing newline is dropped.")
    static let gate = CommandGate.repository(.owner, action: "manage its secrets")

    @Argument(help: "The repository.")
    var name: String
    @Argument(help: "The environment variable setup sees it as.")
    var secret: String

    var gateSubject: String? { name }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let repo = try invocation.repo
        if let why = SecretStore.refusal(name: secret) { return invocation.fail(why) }
        guard var value = invocation.output.readInput(maxBytes: SecretStore.maxValueBytes + 2) else {
            return invocation.fail(
                "give the value on stdin (at most \(SecretStore.maxValueBytes) bytes): ssh HOST repo secret set \(repo.name) \(secret) < FILE")
        }
        if value.last == 10 { value.removeLast() }
        if value.last == 13 { value.removeLast() }
        do { try invocation.secretStore().set(repoID: repo.record.id!, name: secret, value: value) } catch let error as SecretError {
            return invocation.fail(error.description)
        }
        invocation.out("secret \(secret) set on \(repo.name)\n")
        return 0
    }
}

struct RepoSecretList: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "the names of the repository's secrets (never their values)")
    static let gate = CommandGate.repository(.owner, action: "manage its secrets")

    @Argument(help: "The repository.")
    var name: String
    @Flag(help: "A JSON array of names.")
    var json = false

    var gateSubject: String? { name }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let repo = try invocation.repo
        let names = try invocation.secretStore().names(repoID: repo.record.id!)
        if json { return invocation.json(names) }
        invocation.out(names.isEmpty ? "\(repo.name) has no secrets\n" : names.joined(separator: "\n") + "\n")
        return 0
    }
}

struct RepoSecretRemove: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "remove a secret")
    static let gate = CommandGate.repository(.owner, action: "manage its secrets")

    @Argument(help: "The repository.")
    var name: String
    @Argument(help: "The secret's name.")
    var secret: String

    var gateSubject: String? { name }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let repo = try invocation.repo
        guard try invocation.secretStore().remove(repoID: repo.record.id!, name: secret) else {
            return invocation.fail("\(repo.name) has no secret '\(shown(secret, 64))'")
        }
        invocation.out("secret \(secret) removed from \(repo.name)\n")
        return 0
    }
}
