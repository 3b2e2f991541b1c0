// PatchdCommands: `help [COMMAND...]`: the command list, or one command's usage and options. Gate: anyone.

import ArgumentParser

struct Help: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "help", abstract: "this text; 'help COMMAND' for a command's usage and options")
    static let gate = CommandGate.anyone

    @Argument(help: "A command or group, e.g. 'repo' or 'run start'.")
    var topic: [String] = []

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        guard !topic.isEmpty else {
            invocation.out(CommandRouter.summary)
            return 0
        }
        guard let type = CommandRouter.command(at: topic) else {
            return invocation.usage("no help for '\(shown(topic.joined(separator: " ")))'")
        }
        return CommandRouter.printHelp(type, invocation.output)
    }
}
