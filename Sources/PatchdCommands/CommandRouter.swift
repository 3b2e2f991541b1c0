// PatchdCommands: the command tree, and the router that parses an exec's words with ArgumentParser,
// enforces the command's gate, and runs it; help and usage errors are written through CommandOutput.

package import ArgumentParser
import Foundation
import PatchdCore
package import SSHKeys

/// The root of the SSH commands. Every subcommand is registered here (or in a group below),
/// so help, usage and the access matrix test all see the same tree.
package struct PatchdCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "patchd",
        subcommands: [Help.self, Whoami.self, RepoGroup.self, RunGroup.self, EnvGroup.self, KeyGroup.self, UserGroup.self, Stats.self])

    package init() {}
}

/// Runs one SSH command: words in, exit status out; nothing reaches the process's own
/// stdout or stderr, and nothing calls exit().
package struct CommandRouter: Sendable {
    package let services: CommandServices

    package init(services: CommandServices) { self.services = services }

    static let prelude = """
        patchd: git over SSH, with coding agents.

        Git:
          git clone ssh://git@HOST:PORT/REPO       clone or fetch; the first push to a new name creates it
          git push -o wait origin BRANCH           push a branch with .patchd/task.md and watch its run
          git push -o task="TEXT" origin BRANCH    run TEXT as the task (no file needed)
          git fetch origin agent/BRANCH            the result; refs/patchd/runs/ID for any run

        Commands (ssh -p PORT git@HOST COMMAND; 'help COMMAND' for details):

        """

    static let epilogue = """

        Listings and show take --json. Errors: 'patchd: error: ...' on stderr, exit 1; usage errors exit 2.

        """

    /// `help` without a topic, and the greeting: the git verbs and one line per command (group).
    package static var summary: String {
        var lines: [(String, String)] = []
        func add(_ type: ParsableCommand.Type, path: [String]) {
            let subs = type.configuration.subcommands
            let leaves = subs.filter { $0.configuration.subcommands.isEmpty }
            if subs.isEmpty {
                lines.append((usage(of: type), type.configuration.abstract))
                return
            }
            if !leaves.isEmpty {
                let names = leaves.map { $0._commandName }.joined(separator: "|")
                lines.append(((path + [names]).joined(separator: " "), type.configuration.abstract))
            }
            for group in subs where !group.configuration.subcommands.isEmpty {
                add(group, path: path + [group._commandName])
            }
        }
        for type in PatchdCommand.configuration.subcommands { add(type, path: [type._commandName]) }
        return prelude
            + lines.map { "  " + $0.0.padding(toLength: max(39, $0.0.count), withPad: " ", startingAt: 0) + "  " + $0.1 }
            .joined(separator: "\n") + "\n" + epilogue
    }

    package static func greeting(for identity: SSHIdentity) -> String {
        "Hi \(identity.userName)! patchd does not provide shell access.\n\n" + summary
    }

    /// Whether the command reads the client's stdin (`repo secret set`: the value never goes in argv).
    package static func readsInput(_ words: [String]) -> Bool {
        let words = words.filter { !$0.hasPrefix("-") }
        return words.count >= 3 && words[0] == "repo" && words[1] == "secret" && words[2] == "set"
    }

    /// The verb recorded in the audit log: the command's first word, or "unknown".
    package static func auditVerb(_ words: [String]) -> String {
        guard let first = words.first else { return "unknown" }
        if first == "runs" { return "run" }
        return PatchdCommand.configuration.subcommands.contains { $0._commandName == first } ? first : "unknown"
    }

    func context(_ identity: SSHIdentity) -> CommandContext {
        let admin = (try? services.users.user(id: identity.userID))??.isAdmin == true
        return CommandContext(identity: identity, isAdmin: admin, services: services)
    }

    /// Parses `words` (the exec string split by `CommandWords`), checks the gate, runs the command.
    package func run(_ words: [String], identity: SSHIdentity, output: any CommandOutput) -> Int32 {
        let words = Self.expandAliases(words)
        guard let first = words.first, let top = Self.child(of: PatchdCommand.self, named: first) else {
            output.err("patchd: error: unknown command '\(shown(words.first ?? "", 64))'\nRun 'help' for the list of commands.\n")
            return 2
        }
        // Walk the groups ourselves: a missing or unknown subcommand gets the group's usage.
        var node = top
        var index = 1
        while !node.configuration.subcommands.isEmpty {
            guard index < words.count else { return output.usage("missing subcommand", Self.usage(of: node)) }
            let word = words[index]
            if word == "-h" || word == "--help" { return Self.printHelp(node, output) }
            guard let next = Self.child(of: node, named: word) else {
                return output.usage("unknown subcommand '\(shown(word))'", Self.usage(of: node))
            }
            node = next
            index += 1
        }
        // Fail closed: a command that declares no gate never runs.
        guard node is any SSHCommand.Type else {
            return output.fail("internal error: '\(words.prefix(index).joined(separator: " "))' has no access gate")
        }

        let parsed: ParsableCommand
        do {
            parsed = try PatchdCommand.parseAsRoot(words)
        } catch {
            let code = PatchdCommand.exitCode(for: error)
            if code == .success { return Self.printHelp(node, output) }  // --help, and requests we answer with help
            let message = Terminal.sanitize(PatchdCommand.message(for: error))
            if code == .validationFailure { return output.usage(message, Self.usage(of: node)) }
            return output.fail(message)
        }
        // ArgumentParser answers `--help` with its own HelpCommand: show ours.
        guard let command = parsed as? any SSHCommand else { return Self.printHelp(node, output) }

        let ctx = context(identity)
        do {
            switch try type(of: command).gate.check(command.gateSubject, ctx) {
            case .denied(let message):
                return output.fail(message)
            case .allowed(let repository, let run):
                let invocation = CommandInvocation(
                    context: ctx, output: output, repository: repository, run: run,
                    usageText: Self.usage(of: node))
                return try command.run(invocation)
            }
        } catch let error as ValidationError {
            return output.usage(Terminal.sanitize(error.message), Self.usage(of: node))
        } catch {
            return output.fail("\(error)")
        }
    }

    /// `runs ...` is `run list ...`; a bare `run` is `run list`.
    static func expandAliases(_ words: [String]) -> [String] {
        if words.first == "runs" { return ["run", "list"] + words.dropFirst() }
        if words == ["run"] { return ["run", "list"] }
        return words
    }

    static func child(of type: ParsableCommand.Type, named name: String) -> ParsableCommand.Type? {
        type.configuration.subcommands.first { $0._commandName == name || $0.configuration.aliases.contains(name) }
    }

    /// The command (group) a list of topic words names, as `help TOPIC...` and the router walk it.
    static func command(at path: [String]) -> ParsableCommand.Type? {
        var node: ParsableCommand.Type = PatchdCommand.self
        for word in expandAliases(path) {
            guard let next = child(of: node, named: word) else { return nil }
            node = next
        }
        return node
    }

    /// Every runnable command with the words that name it (`["repo", "collab", "add"]`), in the order they are registered.
    static func commandPaths(_ type: ParsableCommand.Type = PatchdCommand.self, prefix: [String] = []) -> [([String], ParsableCommand.Type)] {
        let subs = type.configuration.subcommands
        return subs.isEmpty ? [(prefix, type)] : subs.flatMap { commandPaths($0, prefix: prefix + [$0._commandName]) }
    }

    /// Every runnable command under `type`, depth first, in the order they are registered.
    static func leaves(of type: ParsableCommand.Type = PatchdCommand.self) -> [ParsableCommand.Type] {
        let subs = type.configuration.subcommands
        return subs.isEmpty ? [type] : subs.flatMap { leaves(of: $0) }
    }

    /// A command's usage without the root's name (`repo create <name>`); a group's is one line per command under it.
    static func usage(of type: ParsableCommand.Type) -> String {
        if !type.configuration.subcommands.isEmpty {
            return leaves(of: type).map { usage(of: $0) }.joined(separator: "\n       ")
        }
        let text = PatchdCommand.usageString(for: type).trimmingCharacters(in: .whitespacesAndNewlines)
        let root = PatchdCommand._commandName + " "
        return text.hasPrefix(root) ? String(text.dropFirst(root.count)) : text
    }

    /// `usage: ...`, the command's description, then ArgumentParser's list of arguments and options.
    static func helpText(_ type: ParsableCommand.Type) -> String {
        var text = "usage: \(usage(of: type))\n"
        let config = type.configuration
        let about = [config.abstract, config.discussion].filter { !$0.isEmpty }.joined(separator: "\n\n")
        if !about.isEmpty { text += "\n" + about + "\n" }
        if config.subcommands.isEmpty {
            // ArgumentParser's screen is OVERVIEW, USAGE, then the sections we keep (ARGUMENTS, OPTIONS).
            let full = PatchdCommand.helpMessage(for: type, columns: 100)
            if let sections = full.range(of: "\n\nARGUMENTS:") ?? full.range(of: "\n\nOPTIONS:") {
                text += "\n" + full[full.index(sections.lowerBound, offsetBy: 2)...].trimmingCharacters(in: .newlines) + "\n"
            }
        } else {
            let rows = config.subcommands.map { ($0._commandName, $0.configuration.abstract) }
            let width = rows.map(\.0.count).max() ?? 0
            text +=
                "\nSUBCOMMANDS:\n"
                + rows.map { "  " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
                .joined(separator: "\n") + "\n"
        }
        return text
    }

    static func printHelp(_ type: ParsableCommand.Type, _ output: any CommandOutput) -> Int32 {
        output.out(helpText(type))
        return 0
    }
}
