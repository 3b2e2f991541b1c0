// PatchdServer: what an SSH exec that is not git runs: the greeting, help, whoami and (later) the shortcuts.
import Foundation
import GitStore
import SSHServer

/// Routes command words to the shortcut that handles them. Each shortcut writes to
/// the channel through `ProgramOutput` on its own thread.
struct CommandRouter: Sendable {
    let users: UserStore
    let repoStore: RepoStore
    let runs: RunStore
    let repositories: RepositoryStore

    var runCommands: RunCommands { RunCommands(runs: runs, repoStore: repoStore, repositories: repositories) }

    static let helpText = """
        patchd: git over SSH, with coding agents.

        Git:
          git clone ssh://git@HOST:PORT/REPO      clone (or fetch) a repository
          git push ...                            push; the first push creates the repository

        Commands (ssh -p PORT git@HOST COMMAND):
          help                                    this text
          whoami                                  who your key says you are
          run show ID [--json]                    a run's record
          run logs ID [--follow]                  a run's log; --follow streams until it ends
          run diff ID [--stat]                    the change a run made

        Tasks: push a branch with .patchd/task.md, or push with -o task="TEXT".
        Push options: -o run (run even if the task is unchanged), -o wait (stream the run).

        """

    func greeting(for identity: SSHIdentity) -> ChannelProgram {
        ThreadProgram.message(verb: "greeting",
                              stdout: "Hi \(identity.userName)! patchd does not provide shell access.\n\n" + Self.helpText,
                              status: 0)
    }

    func start(words: [String], request: ExecRequest) -> ChannelProgram {
        switch words[0] {
        case "help":
            return ThreadProgram.message(verb: "help", stdout: Self.helpText, status: 0)
        case "whoami":
            let identity = request.identity
            let admin = (try? users.user(id: identity.userID))??.isAdmin == true
            return ThreadProgram.message(verb: "whoami",
                                         stdout: "\(identity.userName)\(admin ? " (admin)" : "")\n", status: 0)
        case "run", "runs":
            return runCommands.start(words, request: request)
        default:
            let shown = Terminal.sanitize(String(words[0].prefix(64)))
            return ThreadProgram.message(verb: "unknown",
                                         stderr: "patchd: error: unknown command '\(shown)'\nRun 'help' for the list of commands.\n",
                                         status: 2)
        }
    }
}

/// Removes terminal control sequences from strings users control before they are printed.
public enum Terminal {
    public static func sanitize(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { s in
            !(s.value < 0x20 && s != "\n" && s != "\t") && s.value != 0x7f && !(0x80...0x9f).contains(s.value)
        }))
    }
}
