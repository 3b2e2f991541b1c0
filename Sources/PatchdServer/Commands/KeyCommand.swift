// PatchdServer: `key list|add|remove`. Access gate: your own keys only (admins manage others' through `user`).
import Foundation
import SSHServer
import PatchdCore
import SSHKeys

enum KeyCommand {
    static let usage = """
        key list [--json]
               key add 'KEYLINE'
               key remove FINGERPRINT
        """

    struct KeyJSON: Encodable {
        let fingerprint: String
        let type: String
        let comment: String
        let created_at: String
    }

    static func run(_ words: [String], _ ctx: CommandContext, _ io: ProgramOutput) -> Int32 {
        guard words.count >= 2 else { return io.usage("missing subcommand", usage) }
        return io.guarded(usage: usage) {
            let rest = Array(words.dropFirst(2))
            switch words[1] {
            case "list":
                let args = try CommandArguments(rest, switches: ["--json"], positionals: 0...0)
                let keys = try ctx.users.keys(userID: ctx.identity.userID).map {
                    KeyJSON(fingerprint: $0.fingerprint, type: $0.type, comment: $0.comment, created_at: RunJSON.iso($0.createdAt))
                }
                if args.flags.contains("--json") { return io.json(keys) }
                io.out(TextTable.render(["FINGERPRINT", "TYPE", "COMMENT"], keys.map {
                    [$0.fingerprint + ($0.fingerprint == ctx.identity.keyFingerprint ? " *" : ""), $0.type, Terminal.sanitize($0.comment)]
                }))
                return 0
            case "add":
                // A key line has spaces: accept it quoted as one word or as several words.
                let args = try CommandArguments(rest, positionals: 1...3)
                let key: PublicKey
                do { key = try PublicKey(line: args.positionals.joined(separator: " ")) } catch { return io.fail("\(error)") }
                try ctx.users.addKey(userID: ctx.identity.userID, key: key)
                io.out("added \(key.fingerprint) (\(key.type))\n")
                return 0
            case "remove":
                let args = try CommandArguments(rest, positionals: 1...1)
                try ctx.users.removeKey(userID: ctx.identity.userID, fingerprint: args.positionals[0], allowLast: false)
                io.out("removed \(args.positionals[0])\n")
                return 0
            default:
                return io.unknownSubcommand(words[1], usage)
            }
        }
    }
}
