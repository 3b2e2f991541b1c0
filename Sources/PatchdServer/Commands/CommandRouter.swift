// PatchdServer: routes an SSH exec that is not git to its shortcut: help, whoami, repo, run, key, user.
// Access gates live in each command's file; here only: every command needs an authenticated user.
import Foundation
import GitStore
import SSHServer
import PatchdCore
import SSHKeys

/// Each shortcut runs on its own thread (ThreadProgram) and writes through ProgramOutput.
struct CommandRouter: Sendable {
    let services: CommandServices

    static let summary = """
        patchd: git over SSH, with coding agents.

        Git:
          git clone ssh://git@HOST:PORT/REPO       clone or fetch; the first push to a new name creates it
          git push -o wait origin BRANCH           push a branch with .patchd/task.md and watch its run
          git push -o task="TEXT" origin BRANCH    run TEXT as the task (no file needed)
          git fetch origin agent/BRANCH            the result; refs/patchd/runs/ID for any run

        Commands (ssh -p PORT git@HOST COMMAND; 'help COMMAND' for details):
          help [COMMAND]                           this text
          whoami [--json]                          who your key says you are
          repo list|create|info|delete             repositories you can see
          repo collab add|remove|list              who else may read or push
          run list|show|logs|diff                  runs and their results (alias: runs)
          run start|cancel|retry                   start a run without pushing, stop one, run one again
          key list|add|remove                      your SSH keys
          user list|create|delete                  users (admins)
          stats [--json|--prometheus]              server counters (admins)

        Listings and show take --json. Errors: 'patchd: error: ...' on stderr, exit 1; usage errors exit 2.

        """

    static let details: [String: String] = [
        "help": "help [COMMAND]",
        "whoami": "whoami [--json]",
        "repo": RepoCommand.usage,
        "run": RunCommand.usage,
        "runs": "runs [REPO] [--status S] [--json]   (alias of run list)",
        "key": KeyCommand.usage,
        "user": UserCommand.usage,
        "stats": StatsCommand.usage,
    ]

    func context(_ identity: SSHIdentity) -> CommandContext {
        let admin = (try? services.users.user(id: identity.userID))??.isAdmin == true
        return CommandContext(identity: identity, isAdmin: admin, services: services)
    }

    func greeting(for identity: SSHIdentity) -> ChannelProgram {
        ThreadProgram.message(verb: "greeting",
                              stdout: "Hi \(identity.userName)! patchd does not provide shell access.\n\n" + Self.summary,
                              status: 0)
    }

    func start(words: [String], request: ExecRequest) -> ChannelProgram {
        let verb = words[0]
        guard Self.details[verb] != nil else {
            let shown = Terminal.sanitize(String(verb.prefix(64)))
            return ThreadProgram.message(verb: "unknown",
                                         stderr: "patchd: error: unknown command '\(shown)'\nRun 'help' for the list of commands.\n",
                                         status: 2)
        }
        let ctx = context(request.identity)
        return ThreadProgramFactory.make(verb: verb == "runs" ? "run" : verb) { io in
            switch verb {
            case "help": return Self.help(Array(words.dropFirst()), io)
            case "whoami": return Self.whoami(Array(words.dropFirst()), ctx, io)
            case "repo": return RepoCommand.run(words, ctx, io)
            case "run": return RunCommand.run(words, ctx, io)
            case "runs": return RunCommand.run(["run", "list"] + words.dropFirst(), ctx, io) // alias of `run list`
            case "key": return KeyCommand.run(words, ctx, io)
            case "stats": return StatsCommand.run(words, ctx, io)
            default: return UserCommand.run(words, ctx, io)
            }
        }
    }

    static func help(_ args: [String], _ io: ProgramOutput) -> Int32 {
        guard let topic = args.first else {
            io.out(summary)
            return 0
        }
        guard args.count == 1, let usage = details[topic] else {
            return io.usage("no help for '\(Terminal.sanitize(String(topic.prefix(40))))'", "help [COMMAND]")
        }
        io.out("usage: \(usage)\n")
        return 0
    }

    struct WhoamiJSON: Encodable {
        let name: String
        let admin: Bool
        let key: String
    }

    static func whoami(_ args: [String], _ ctx: CommandContext, _ io: ProgramOutput) -> Int32 {
        guard args.isEmpty || args == ["--json"] else { return io.usage("unexpected arguments", "whoami [--json]") }
        if args == ["--json"] {
            return io.json(WhoamiJSON(name: ctx.identity.userName, admin: ctx.isAdmin, key: ctx.identity.keyFingerprint))
        }
        io.out("\(ctx.identity.userName)\(ctx.isAdmin ? " (admin)" : "")\n")
        return 0
    }
}

/// Builds a ThreadProgram, or a failed one if the OS refuses pipes.
enum ThreadProgramFactory {
    static func make(verb: String, repo: String? = nil, _ body: @escaping @Sendable (ProgramOutput) -> Int32) -> ChannelProgram {
        (try? ThreadProgram(verb: verb, repo: repo, body: body))
            ?? ThreadProgram.message(verb: verb, stderr: "patchd: error: the server is out of resources\n", status: 1)
    }
}

