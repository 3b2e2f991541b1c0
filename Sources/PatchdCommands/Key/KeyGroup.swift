// PatchdCommands: the `key` group: the caller's own SSH keys (admins manage others' with `user key`).

import ArgumentParser

struct KeyGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "your SSH keys", subcommands: [KeyList.self, KeyAdd.self, KeyRemove.self])
}
