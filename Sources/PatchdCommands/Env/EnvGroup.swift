// PatchdCommands: the `env` group: a repository's cached environments.

import ArgumentParser
import PatchdCore

struct EnvGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env", abstract: "a repository's cached environments (what setup produced)",
        subcommands: [EnvList.self, EnvClear.self])
}

extension CommandInvocation {
    /// The environment store, or a typed error when this server has none.
    func environmentStore() throws -> EnvironmentStore {
        guard let store = context.services.environments else { throw CommandUnavailable("this server keeps no environment cache") }
        return store
    }
}

/// A command this server cannot serve (a store it was started without).
struct CommandUnavailable: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
