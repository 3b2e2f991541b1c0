// UnitTests: the router's parsing, help and usage errors, aliases, and the run list / run start fixes, in-process.

import Foundation
import GitStore
import HTTPClient
import PatchdCore
import SSHKeys
import Testing

@testable import PatchdCommands

@Suite struct CommandsRouterTests {
    @Test("usage errors exit 2 with 'patchd: error:' and the command's usage; bad ids exit 1")
    func usageErrors() throws {
        let h = try CommandHarness()
        let admin = try h.user("ada", admin: true)
        var r = h.run(["run", "show"], as: admin)
        #expect(r.status == 2 && r.stderr.hasPrefix("patchd: error: ") && r.stderr.hasSuffix("\nusage: run show <id> [--json]\n"), "\(r.stderr)")
        r = h.run(["run", "show", "-1"], as: admin)
        #expect(r.status == 2 && r.stderr.contains("usage: run show"), "\(r.stderr)")
        r = h.run(["run", "show", "abc"], as: admin)
        #expect(r.status == 1 && r.stderr == "patchd: error: run id must be a positive number, not 'abc'\n")
        r = h.run(["run", "show", "99999999999999999999999"], as: admin)
        #expect(r.status == 1 && r.stderr.hasPrefix("patchd: error: run id must be a positive number"))
        r = h.run(["repo"], as: admin)
        #expect(
            r.status == 2 && r.stderr.hasPrefix("patchd: error: missing subcommand\nusage: repo list [--json]\n       repo create <name>\n"),
            "\(r.stderr)")
        r = h.run(["repo", "frobnicate"], as: admin)
        #expect(r.status == 2 && r.stderr.hasPrefix("patchd: error: unknown subcommand 'frobnicate'\nusage: repo list"))
        r = h.run(["repo", "list", "--all"], as: admin)
        #expect(
            r.status == 2 && r.stderr.hasPrefix("patchd: error: ") && r.stderr.contains("--all") && r.stderr.hasSuffix("usage: repo list [--json]\n"))
        r = h.run(["run", "list", "--status", "bogus"], as: admin)
        #expect(
            r.status == 2 && r.stderr.hasPrefix("patchd: error: --status must be queued, running, succeeded, failed or canceled\nusage: run list"))
        r = h.run(["nosuch", "x"], as: admin)
        #expect(r.status == 2 && r.stderr == "patchd: error: unknown command 'nosuch'\nRun 'help' for the list of commands.\n" && r.stdout.isEmpty)
        r = h.run(["help", "nosuch"], as: admin)
        #expect(r.status == 2 && r.stderr.hasPrefix("patchd: error: no help for 'nosuch'\nusage: help"))
        r = h.run(["run", "start", "r", "main", "fix", "it"], as: admin)
        #expect(r.status == 2 && r.stderr.contains("usage: run start <repo> <branch>"), "the task text needs --: \(r.stderr)")
        r = h.run(["run", "start", "r", "main", "--"], as: admin)
        #expect(r.status == 2 && r.stderr.hasPrefix("patchd: error: missing the task text after --\n"))
        r = h.run(["stats", "--json", "--prometheus"], as: admin)
        #expect(r.status == 2)
        // Nothing an unknown word carries reaches the terminal (C1 controls pass CommandWords).
        r = h.run(["repo", "list", "--x\u{9b}31m"], as: admin)
        #expect(r.status == 2 && !r.stderr.unicodeScalars.contains { (0x80...0x9f).contains($0.value) })
    }

    @Test("help and --help print 'usage: ...' on stdout with exit 0, for every command and group")
    func help() throws {
        let h = try CommandHarness()
        let bob = try h.user("bob")
        let summary = h.run(["help"], as: bob)
        #expect(summary.status == 0 && summary.stdout.hasPrefix("patchd: git over SSH"))
        for line in [
            "repo list|create|info|config|delete", "repo collab add|remove|list", "run list|show|logs|diff|start|cancel|retry|resume",
            "key list|add|remove", "user list|create|delete", "user key remove", "whoami [--json]", "stats [--json] [--prometheus]",
        ] {
            #expect(summary.stdout.contains("\n  " + line + " "), "the summary lacks '\(line)':\n\(summary.stdout)")
        }
        for (words, _) in CommandRouter.commandPaths() {
            for request in [["help"] + words, words + ["--help"], words + ["-h"]] {
                let r = h.run(request, as: bob)
                #expect(
                    r.status == 0 && r.stdout.hasPrefix("usage: " + words.joined(separator: " ")) && r.stderr.isEmpty,
                    "\(request): \(r.status) \(r.stdout) \(r.stderr)")
            }
        }
        for topic in [["repo"], ["run"], ["key"], ["user"], ["repo", "collab"], ["runs"]] {
            let r = h.run(["help"] + topic, as: bob)
            #expect(r.status == 0 && r.stdout.hasPrefix("usage: "), "\(topic): \(r.stdout)")
        }
        let start = h.run(["help", "run", "start"], as: bob).stdout
        #expect(start.contains("refs/heads/-name") && start.contains("--agent"), "\(start)")
        let group = h.run(["repo", "--help"], as: bob).stdout
        #expect(group.contains("SUBCOMMANDS:") && group.contains("collab"), "\(group)")
        // `--help` after `--` is task text, not a help request.
        try h.repo("proj", owner: bob)
        let queued = h.run(["run", "start", "proj", "main", "--agent", "command", "--", "echo", "--help"], as: bob)
        #expect(queued.status == 0 && queued.stdout.hasPrefix("run 1 queued"), "\(queued.stdout) \(queued.stderr)")
        #expect(try h.services.runs.run(id: 1)?.taskSpec?.run == "echo --help")
    }

    @Test("runs and a bare run are run list")
    func aliases() throws {
        let h = try CommandHarness()
        let bob = try h.user("bob")
        try h.repo("proj", owner: bob)
        try h.queueRun("proj")
        let list = h.run(["run", "list"], as: bob)
        #expect(list.status == 0 && list.stdout.contains("proj"))
        #expect(h.run(["runs"], as: bob).stdout == list.stdout)
        #expect(h.run(["run"], as: bob).stdout == list.stdout)
        #expect(h.run(["runs", "proj", "--status", "failed"], as: bob).stdout == "no runs\n")
        #expect(CommandRouter.auditVerb(["runs", "x"]) == "run" && CommandRouter.auditVerb(["nosuch"]) == "unknown")
        #expect(h.run(["run", "--json"], as: bob).status == 2, "as before: only a bare run means run list")
    }

    @Test("run list filters by access before the limit: older runs of your repositories still show")
    func runListFiltersBeforeLimit() throws {
        let h = try CommandHarness()
        let olive = try h.user("olive")
        let sam = try h.user("sam")
        try h.repo("mine", owner: sam)
        try h.repo("busy", owner: olive)
        let own = try h.queueRun("mine")
        for _ in 0..<210 { try h.queueRun("busy") }
        let r = h.run(["run", "list", "--json"], as: sam)
        let runs = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]
        #expect(runs?.count == 1 && runs?.first?["id"] as? Int64 == own.id, "\(r.stdout.prefix(300))")
        // The store, directly: the limit counts only the repositories asked for.
        #expect(try h.services.runs.list(repos: ["mine"], limit: 200).map(\.id) == [own.id])
        #expect(try h.services.runs.list(repos: [], limit: 200).isEmpty)
        #expect(try h.services.runs.list(repos: nil, limit: 200).count == 200)
        // An admin still sees the 200 newest of all.
        let admin = try h.user("ada", admin: true)
        let all = try JSONSerialization.jsonObject(with: Data(h.run(["run", "list", "--json"], as: admin).stdout.utf8)) as? [Any]
        #expect(all?.count == 200)
    }

    @Test("run start names a branch that starts with '-' as refs/heads/-name")
    func runStartDashBranch() throws {
        let h = try CommandHarness()
        let bob = try h.user("bob")
        try h.repo("app", owner: bob, branches: ["main", "-dash"])
        try h.git(["update-ref", "refs/heads/-dev", try h.head("app")], h.services.repositories.path(for: try RepositoryName("app")))
        let plain = h.run(["run", "start", "app", "-dev", "--agent", "command", "--", "true"], as: bob)
        #expect(plain.status == 2, "a leading '-' is an option: \(plain.stderr)")
        #expect(try h.services.runs.list().isEmpty)
        let r = h.run(["run", "start", "app", "refs/heads/-dash", "--agent", "command", "--", "true"], as: bob)
        #expect(r.status == 0 && r.stdout == "run 1 queued for -dash (agent command); result: agent/-dash\n", "\(r.stdout) \(r.stderr)")
        let run = try #require(try h.services.runs.run(id: 1))
        let dashHead = try h.head("app", "-dash")
        #expect(run.branch == "-dash" && run.base == dashHead)
        #expect(h.wakes.value == 1)
        let main = h.run(["run", "start", "app", "refs/heads/main", "--agent", "command", "--", "true"], as: bob)
        #expect(try main.status == 0 && h.services.runs.run(id: 2)?.branch == "main")
        let missing = h.run(["run", "start", "app", "refs/heads/", "--agent", "command", "--", "true"], as: bob)
        #expect(missing.status == 1 && missing.stderr.contains("no branch"))
    }

    @Test("key add and user create take the key line quoted or split, through the injected parser")
    func keyLines() throws {
        let h = try CommandHarness()
        let admin = try h.user("ada", admin: true)
        let line = try h.freshKeyLine("second")
        let split = line.split(separator: " ").map(String.init)
        let r = h.run(["key", "add"] + split, as: admin)
        #expect(r.status == 0 && r.stdout.hasPrefix("added SHA256:"), "\(r.stderr)")
        #expect(try h.services.users.keys(userID: admin.userID).count == 2)
        let other = try h.freshKeyLine("carol")
        let created = h.run(["user", "create", "carol", "--key"] + other.split(separator: " ").map(String.init) + ["--admin"], as: admin)
        #expect(created.status == 0 && created.stdout.hasPrefix("created carol (admin) with key SHA256:"), "\(created.stderr)")
        let bad = h.run(["key", "add", "ssh-ed25519", "AAAAnotbase64!!"], as: admin)
        #expect(bad.status == 1 && bad.stderr.contains("does not decode"))
        let noKey = h.run(["user", "create", "dave"], as: admin)
        #expect(noKey.status == 2 && noKey.stderr.hasPrefix("patchd: error: --key is required\nusage: user create"))
    }

    @Test("a command stops writing once the client is gone")
    func clientGone() throws {
        let h = try CommandHarness()
        let bob = try h.user("bob")
        try h.repo("proj", owner: bob)
        let run = try h.queueRun("proj")
        h.services.runs.addEvents(runID: run.id!, (0..<50).map { RunEvent(.output, "line \($0)") })
        let output = BufferedCommandOutput()
        output.close()
        #expect(h.router.run(["run", "logs", "1"], identity: bob, output: output) == 1)
    }
}
