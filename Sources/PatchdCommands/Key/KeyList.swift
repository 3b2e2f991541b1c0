// PatchdCommands: `key list [--json]`: your keys. Gate: anyone (own keys only).

import ArgumentParser
import PatchdCore
import SSHKeys

struct KeyList: SSHCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "your keys; * marks the one you are connected with")
    static let gate = CommandGate.anyone

    @Flag(help: "A JSON array.")
    var json = false

    struct KeyJSON: Encodable {
        let fingerprint: String
        let type: String
        let comment: String
        let created_at: String
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let keys = try ctx.users.keys(userID: ctx.identity.userID).map {
            KeyJSON(fingerprint: $0.fingerprint, type: $0.type, comment: $0.comment, created_at: RunJSON.iso($0.createdAt))
        }
        if json { return invocation.json(keys) }
        invocation.out(
            TextTable.render(
                ["FINGERPRINT", "TYPE", "COMMENT"],
                keys.map {
                    [$0.fingerprint + ($0.fingerprint == ctx.identity.keyFingerprint ? " *" : ""), $0.type, Terminal.sanitize($0.comment)]
                }))
        return 0
    }
}
