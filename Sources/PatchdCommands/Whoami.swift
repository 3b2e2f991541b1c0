// PatchdCommands: `whoami [--json]`: who your key says you are. Gate: anyone.

import ArgumentParser
import SSHKeys

struct Whoami: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "who your key says you are")
    static let gate = CommandGate.anyone

    @Flag(help: "One JSON object: name, admin, key.")
    var json = false

    struct WhoamiJSON: Encodable {
        let name: String
        let admin: Bool
        let key: String
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        if json { return invocation.json(WhoamiJSON(name: ctx.identity.userName, admin: ctx.isAdmin, key: ctx.identity.keyFingerprint)) }
        invocation.out("\(ctx.identity.userName)\(ctx.isAdmin ? " (admin)" : "")\n")
        return 0
    }
}
