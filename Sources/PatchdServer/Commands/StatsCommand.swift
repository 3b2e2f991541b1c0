// PatchdServer: `stats [--json|--prometheus]`. Access gate: admin only.
import Foundation
import SSHServer

enum StatsCommand {
    static let usage = "stats [--json|--prometheus]"

    static func run(_ words: [String], _ ctx: CommandContext, _ io: ProgramOutput) -> Int32 {
        guard ctx.isAdmin else { return io.fail("only admins can see server statistics") }
        return io.guarded(usage: usage) {
            let args = try CommandArguments(Array(words.dropFirst()), switches: ["--json", "--prometheus"], positionals: 0...0)
            let snapshot = try ctx.stats()
            if args.flags.contains("--json") { return io.json(snapshot) }
            io.out(args.flags.contains("--prometheus") ? snapshot.prometheus : snapshot.text)
            return 0
        }
    }
}
