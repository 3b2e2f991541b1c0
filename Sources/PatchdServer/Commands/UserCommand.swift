// PatchdServer: `user list|create|delete` and `user key add|remove` for others. Access gate: admin only.
import Foundation
import SSHServer
import PatchdCore
import SSHKeys

enum UserCommand {
    static let usage = """
        user list [--json]
               user create NAME --key 'KEYLINE' [--admin]
               user delete NAME --yes
               user key remove NAME FINGERPRINT [--yes]
        """

    struct UserJSON: Encodable {
        let name: String
        let admin: Bool
        let keys: Int
        let created_at: String
    }

    static func run(_ words: [String], _ ctx: CommandContext, _ io: ProgramOutput) -> Int32 {
        guard ctx.isAdmin else { return io.fail("only admins manage users") }
        guard words.count >= 2 else { return io.usage("missing subcommand", usage) }
        return io.guarded(usage: usage) {
            let rest = Array(words.dropFirst(2))
            switch words[1] {
            case "list":
                let args = try CommandArguments(rest, switches: ["--json"], positionals: 0...0)
                let counts = try ctx.users.keyCounts()
                let users = try ctx.users.allUsers().map {
                    UserJSON(name: $0.name, admin: $0.isAdmin, keys: counts[$0.id!] ?? 0, created_at: RunJSON.iso($0.createdAt))
                }
                if args.flags.contains("--json") { return io.json(users) }
                io.out(TextTable.render(["NAME", "ADMIN", "KEYS", "CREATED"], users.map {
                    [$0.name, $0.admin ? "yes" : "no", String($0.keys), $0.created_at]
                }))
                return 0
            case "create":
                // The key line has spaces; the client's shell usually splits it: take the words after --key too.
                let args = try CommandArguments(rest, switches: ["--admin"], options: ["--key"], positionals: 1...3)
                guard let first = args.values["--key"] else { return io.usage("--key is required", "user create NAME --key 'KEYLINE' [--admin]") }
                let line = ([first] + args.positionals.dropFirst()).joined(separator: " ")
                let key: PublicKey
                do { key = try PublicKey(line: line) } catch { return io.fail("\(error)") }
                let user = try ctx.users.createUser(name: args.positionals[0], key: key, admin: args.flags.contains("--admin"))
                io.out("created \(user.name)\(user.isAdmin ? " (admin)" : "") with key \(key.fingerprint)\n")
                return 0
            case "delete":
                let args = try CommandArguments(rest, switches: ["--yes"], positionals: 1...1)
                guard args.flags.contains("--yes") else { return io.usage("deleting a user removes their keys; add --yes to confirm", "user delete NAME --yes") }
                guard args.positionals[0] != ctx.identity.userName else { return io.fail("you cannot delete yourself") }
                try ctx.users.deleteUser(name: args.positionals[0])
                io.out("deleted \(args.positionals[0])\n")
                return 0
            case "key":
                guard rest.first == "remove" else { return io.usage("unknown subcommand", usage) }
                let args = try CommandArguments(Array(rest.dropFirst()), switches: ["--yes"], positionals: 2...2)
                guard let user = try ctx.users.user(named: args.positionals[0]) else { return io.fail("no user '\(Terminal.sanitize(String(args.positionals[0].prefix(40))))'") }
                try ctx.users.removeKey(userID: user.id!, fingerprint: args.positionals[1], allowLast: args.flags.contains("--yes"))
                io.out("removed \(args.positionals[1]) from \(user.name)\n")
                return 0
            default:
                return io.unknownSubcommand(words[1], usage)
            }
        }
    }
}
