// PatchdCommands: the `user` and `user key` groups: users and their keys, for admins.

import ArgumentParser

struct UserGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "users (admins)",
        subcommands: [UserList.self, UserCreate.self, UserDelete.self, UserKeyGroup.self])
}

struct UserKeyGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "another user's keys (admins)", subcommands: [UserKeyRemove.self])
}

/// The denial of every `user` command.
let onlyAdminsManageUsers = CommandGate.admin(denial: "only admins manage users")
