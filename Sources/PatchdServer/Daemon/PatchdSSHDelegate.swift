// PatchdServer: the SSH server's delegate: key lookup, and exec -> git transport or command.

import Foundation
import PatchdCommands
import PatchdCore
import SSHKeys
import SSHServer

struct PatchdSSHDelegate: SSHServerDelegate {
    let users: UserStore
    let transport: GitTransport
    let commands: CommandRouter

    func identity(for key: PublicKey) -> SSHIdentity? { users.identity(for: key) }

    /// Of the client's env requests only GIT_PROTOCOL reaches git (soft-serve CVE-2024-41956),
    /// and only in its documented shape ("version=2", colon-separated key[=value]).
    func acceptEnvironment(name: String, value: String) -> Bool {
        name == "GIT_PROTOCOL" && value.utf8.count <= 256
            && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "=:._-".contains($0)) }
    }

    func startProgram(for request: ExecRequest) -> ChannelProgram {
        guard let command = request.command else {
            return ThreadProgram.message(verb: "greeting", stdout: CommandRouter.greeting(for: request.identity), status: 0)
        }
        let words: [String]
        do { words = try CommandWords.split(command) } catch {
            return ThreadProgram.message(verb: "invalid", stderr: ErrorLine.format("\(error)"), status: 2)
        }
        if let (service, arguments) = GitTransport.service(for: words) {
            return transport.start(service, arguments: arguments, request: request)
        }
        if GitTransport.isGitVerb(words[0]) {
            let verb = Terminal.sanitize(String(words[0].prefix(64)))
            let why =
                verb == "git-upload-archive" || (words.count > 1 && words[1] == "upload-archive")
                ? "git upload-archive is disabled on this server" : "'\(verb)' is not a git service this server offers"
            return ThreadProgram.message(verb: "refused", stderr: ErrorLine.format(why), status: 1)
        }
        // Each command runs on its own thread and writes through ProgramOutput.
        let commands = self.commands
        return ThreadProgramFactory.make(verb: CommandRouter.auditVerb(words), input: CommandRouter.readsInput(words)) { io in
            commands.run(words, identity: request.identity, output: io)
        }
    }
}

/// The SSH channel's output is where commands write.
extension ProgramOutput: CommandOutput {}

/// Builds a ThreadProgram, or a failed one if the OS refuses pipes.
enum ThreadProgramFactory {
    static func make(
        verb: String, repo: String? = nil, input: Bool = false, _ body: @escaping @Sendable (ProgramOutput) -> Int32
    ) -> ChannelProgram {
        (try? ThreadProgram(verb: verb, repo: repo, input: input, body: body))
            ?? ThreadProgram.message(verb: verb, stderr: "patchd: error: the server is out of resources\n", status: 1)
    }
}
