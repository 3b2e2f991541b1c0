// UnitTests: the roles x commands access matrix over every registered SSH command, and escalation regressions.

import Foundation
import GitStore
import PatchdCore
import SSHKeys
import Testing

@testable import PatchdCommands

/// A repository `proj` owned by olive; walt may write, rita may read, sam is a stranger, ada is
/// an admin. Run 1 on proj is queued, run 2 succeeded, run 3 (builtin) failed.
struct AccessWorld {
    let harness: CommandHarness
    let ada, olive, walt, rita, sam: SSHIdentity

    init() throws {
        harness = try CommandHarness()
        ada = try harness.user("ada", admin: true)
        olive = try harness.user("olive")
        walt = try harness.user("walt")
        rita = try harness.user("rita")
        sam = try harness.user("sam")
        try harness.repo("proj", owner: olive, collaborators: [(walt, "write"), (rita, "read")])
        try harness.queueRun("proj")
        try harness.queueRun("proj", status: .succeeded)
        try harness.queueRun("proj", status: .failed, agent: .builtin)
    }

    /// Each role, and the role it has on proj.
    var roles: [(String, SSHIdentity, RepoRole)] {
        [("admin", ada, .admin), ("owner", olive, .owner), ("write", walt, .write), ("read", rita, .read), ("stranger", sam, .none)]
    }
}

@Suite struct CommandsAccessTests {
    /// The gate every command must declare. A new command fails `matrix` until it is listed here
    /// (with a sample below): adding a command means deciding who may run it.
    static let expectedGates: [String: CommandGate] = [
        "help": .anyone,
        "whoami": .anyone,
        "repo list": .anyone,
        "repo create": .anyone,
        "repo info": .repository(.read),
        "repo delete": .repository(.owner, action: "delete it"),
        "repo collab add": .repository(.owner, action: "manage collaborators"),
        "repo config": .repository(.owner, action: "change the repository's settings"),
        "repo collab remove": .repository(.owner, action: "manage collaborators"),
        "repo collab list": .repository(.read),
        "repo secret set": .repository(.owner, action: "manage its secrets"),
        "repo secret list": .repository(.owner, action: "manage its secrets"),
        "repo secret remove": .repository(.owner, action: "manage its secrets"),
        "env list": .repository(.read),
        "env clear": .repository(.owner, action: "clear its cached environments"),
        "run list": .repository(.read, optional: true),
        "run show": .run(.read),
        "run logs": .run(.read),
        "run diff": .run(.read),
        "run start": .repository(.write, action: "starting runs"),
        "run cancel": .run(.write, action: "canceling runs"),
        "run retry": .run(.write, action: "retrying runs"),
        "run resume": .run(.write, action: "resuming runs"),
        "key list": .anyone,
        "key add": .anyone,
        "key remove": .anyone,
        "user list": .admin(denial: "only admins manage users"),
        "user create": .admin(denial: "only admins manage users"),
        "user delete": .admin(denial: "only admins manage users"),
        "user key remove": .admin(denial: "only admins manage users"),
        "stats": .admin(denial: "only admins can see server statistics"),
    ]

    /// Words that run each command against the world's repository and runs; nil: no sample yet.
    static func sample(_ path: String, _ w: AccessWorld, keyLine: String) -> [String]? {
        switch path {
        case "help": return ["help"]
        case "whoami": return ["whoami"]
        case "repo list": return ["repo", "list"]
        case "repo create": return ["repo", "create", "fresh"]
        case "repo info": return ["repo", "info", "proj"]
        case "repo config": return ["repo", "config", "proj", "network", "on"]
        case "repo delete": return ["repo", "delete", "proj", "--yes"]
        case "repo collab add": return ["repo", "collab", "add", "proj", "sam", "write"]
        case "repo collab remove": return ["repo", "collab", "remove", "proj", "rita"]
        case "repo collab list": return ["repo", "collab", "list", "proj"]
        case "repo secret set": return ["repo", "secret", "set", "proj", "TOKEN"]
        case "repo secret list": return ["repo", "secret", "list", "proj"]
        case "repo secret remove": return ["repo", "secret", "remove", "proj", "TOKEN"]
        case "env list": return ["env", "list", "proj"]
        case "env clear": return ["env", "clear", "proj"]
        case "run list": return ["run", "list", "proj"]
        case "run show": return ["run", "show", "1"]
        case "run logs": return ["run", "logs", "1"]
        case "run diff": return ["run", "diff", "2"]
        case "run start": return ["run", "start", "proj", "main", "--agent", "command", "--", "true"]
        case "run cancel": return ["run", "cancel", "1"]
        case "run retry": return ["run", "retry", "2"]
        case "run resume": return ["run", "resume", "3", "--max-turns", "5", "--", "go", "on"]
        case "key list": return ["key", "list"]
        case "key add": return ["key", "add", keyLine]
        case "key remove": return ["key", "remove", "SHA256:not-a-key-of-yours"]
        case "user list": return ["user", "list"]
        case "user create": return ["user", "create", "newbie", "--key", keyLine]
        case "user delete": return ["user", "delete", "sam", "--yes"]
        case "user key remove": return ["user", "key", "remove", "rita", w.rita.keyFingerprint, "--yes"]
        case "stats": return ["stats"]
        default: return nil
        }
    }

    /// Commands whose sample fails for a reason other than access even when allowed.
    static let allowedButFailing: Set<String> = ["key remove", "repo secret remove"]

    /// The exact stderr a denied caller gets, or nil if `role` passes `gate` on proj / its runs.
    static func denial(_ gate: CommandGate, role: RepoRole, isAdmin: Bool, words: [String]) -> String? {
        switch gate {
        case .anyone:
            return nil
        case .admin(let denial):
            return isAdmin ? nil : denial
        case .repository(let needed, let action, _):
            if !role.canRead { return "repository 'proj' not found" }
            return role >= needed ? nil : CommandGate.denial(needed, action: action, repo: "proj")
        case .run(let needed, let action):
            if !role.canRead { return "run \(words[2]) not found" }
            return role >= needed ? nil : CommandGate.denial(needed, action: action, repo: "proj")
        }
    }

    @Test("every registered command declares the expected gate, and each role is let in or refused accordingly")
    func matrix() throws {
        let keyLine = try CommandHarness().freshKeyLine("matrix")
        let paths = CommandRouter.commandPaths()
        #expect(paths.count == Self.expectedGates.count, "commands registered: \(paths.map { $0.0.joined(separator: " ") })")
        for (words, type) in paths {
            let path = words.joined(separator: " ")
            guard let command = type as? any SSHCommand.Type else {
                Issue.record("'\(path)' is registered but is not an SSHCommand: it has no gate")
                continue
            }
            guard let expected = Self.expectedGates[path] else {
                Issue.record("'\(path)' is a new command: add its gate to CommandsAccessTests.expectedGates and a sample")
                continue
            }
            #expect(command.gate == expected, "'\(path)' declares \(command.gate), expected \(expected)")
            for roleIndex in 0..<5 {
                // A fresh world per cell: an allowed `repo delete` must not hide the next role's answer.
                let world = try AccessWorld()
                let (roleName, identity, role) = world.roles[roleIndex]
                guard let sample = Self.sample(path, world, keyLine: keyLine) else {
                    Issue.record("'\(path)' has no sample in CommandsAccessTests.sample")
                    break
                }
                let result = world.harness.run(sample, as: identity)
                let what = "\(roleName): \(sample.joined(separator: " ")) -> \(result.status) \(result.stderr)"
                if let denial = Self.denial(command.gate, role: role, isAdmin: roleName == "admin", words: sample) {
                    #expect(result.status == 1 && result.stderr == "patchd: error: \(denial)\n", "should be refused: \(what)")
                    #expect(result.stdout.isEmpty, "a refused command printed: \(what)")
                } else if Self.allowedButFailing.contains(path) {
                    #expect(
                        !result.stderr.contains("not found") && !result.stderr.contains("only ") && !result.stderr.contains("needs write"),
                        "should be let in: \(what)")
                } else {
                    #expect(result.status == 0, "should be let in: \(what)")
                }
            }
        }
    }

    @Test("a read collaborator cannot start or cancel runs, delete the repository or grant access")
    func readCollaboratorEscalation() throws {
        let w = try AccessWorld()
        let h = w.harness
        let runsBefore = try h.services.runs.list().count
        var r = h.run(["run", "start", "proj", "main", "--agent", "command", "--", "true"], as: w.rita)
        #expect(r.status == 1 && r.stderr == "patchd: error: starting runs on 'proj' needs write access\n")
        #expect(try h.services.runs.list().count == runsBefore, "a run was queued")
        #expect(h.wakes.value == 0)

        r = h.run(["run", "cancel", "1"], as: w.rita)
        #expect(r.status == 1 && r.stderr == "patchd: error: canceling runs on 'proj' needs write access\n")
        #expect(try h.services.runs.run(id: 1)?.status == .queued)

        r = h.run(["run", "retry", "2"], as: w.rita)
        #expect(r.status == 1 && r.stderr.contains("needs write access"))

        r = h.run(["run", "resume", "3"], as: w.rita)
        #expect(r.status == 1 && r.stderr == "patchd: error: resuming runs on 'proj' needs write access\n")

        r = h.run(["repo", "delete", "proj", "--yes"], as: w.rita)
        #expect(r.status == 1 && r.stderr == "patchd: error: only the owner of 'proj' or an admin can delete it\n")
        #expect(try h.services.repoStore.repo(named: RepositoryName("proj")) != nil)
        #expect(FileManager.default.fileExists(atPath: h.services.repositories.path(for: try RepositoryName("proj"))))

        r = h.run(["repo", "collab", "add", "proj", "sam", "write"], as: w.rita)
        #expect(r.status == 1 && r.stderr.contains("only the owner of 'proj'"))
        // Not even to herself: a read collaborator cannot raise her own role.
        r = h.run(["repo", "collab", "add", "proj", "rita", "write"], as: w.rita)
        #expect(r.status == 1 && r.stderr.contains("only the owner of 'proj'"))
        let record = try h.services.repoStore.repo(named: RepositoryName("proj"))!
        #expect(try h.services.repoStore.role(userID: w.rita.userID, repo: record) == .read)
        #expect(try h.services.repoStore.role(userID: w.sam.userID, repo: record) == .none)

        // A write collaborator cannot grant either.
        r = h.run(["repo", "collab", "add", "proj", "sam", "read"], as: w.walt)
        #expect(r.status == 1 && r.stderr.contains("only the owner of 'proj'"))
        #expect(try h.services.repoStore.role(userID: w.sam.userID, repo: record) == .none)
    }

    @Test("a user who is not an admin cannot manage users or see server statistics")
    func nonAdminEscalation() throws {
        let w = try AccessWorld()
        let h = w.harness
        let keyLine = try h.freshKeyLine("mallory")
        for words in [
            ["user", "list"], ["user", "create", "mallory", "--key", keyLine, "--admin"], ["user", "delete", "ada", "--yes"],
            ["user", "key", "remove", "ada", w.ada.keyFingerprint, "--yes"],
        ] {
            for who in [w.olive, w.walt, w.sam] {
                let r = h.run(words, as: who)
                #expect(r.status == 1 && r.stderr == "patchd: error: only admins manage users\n", "\(who.userName): \(words) -> \(r.stderr)")
            }
        }
        #expect(try h.services.users.user(named: "mallory") == nil)
        #expect(try h.services.users.user(named: "ada") != nil)
        #expect(try h.services.users.keys(userID: w.ada.userID).count == 1)
        let stats = h.run(["stats", "--json"], as: w.olive)
        #expect(stats.status == 1 && stats.stderr == "patchd: error: only admins can see server statistics\n" && stats.stdout.isEmpty)
        // Keys are one's own: `key remove` cannot reach another user's key by fingerprint.
        let r = h.run(["key", "remove", w.ada.keyFingerprint], as: w.olive)
        #expect(r.status == 1)
        #expect(try h.services.users.keys(userID: w.ada.userID).count == 1)
    }

    @Test("a stranger gets the same answer for a hidden repository or run as for a missing one")
    func strangersSeeNothing() throws {
        let w = try AccessWorld()
        let h = w.harness
        for (hidden, missing) in [
            (["repo", "info", "proj"], ["repo", "info", "nope"]),
            (["repo", "collab", "list", "proj"], ["repo", "collab", "list", "nope"]),
            (["run", "list", "proj"], ["run", "list", "nope"]),
            (["run", "start", "proj", "main", "--", "x"], ["run", "start", "nope", "main", "--", "x"]),
        ] {
            let a = h.run(hidden, as: w.sam), b = h.run(missing, as: w.sam)
            #expect(a.status == 1 && b.status == 1)
            #expect(a.stderr.replacingOccurrences(of: "proj", with: "X") == b.stderr.replacingOccurrences(of: "nope", with: "X"))
        }
        let hiddenRun = h.run(["run", "show", "1"], as: w.sam), missingRun = h.run(["run", "show", "99"], as: w.sam)
        #expect(hiddenRun.stderr == "patchd: error: run 1 not found\n" && missingRun.stderr == "patchd: error: run 99 not found\n")
        let list = h.run(["run", "list", "--json"], as: w.sam)
        #expect(list.status == 0)
        #expect((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.isEmpty == true, "\(list.stdout)")
    }
}
