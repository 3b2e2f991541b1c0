// IntegrationTests: push, clone and fetch through patchd with stock git and ssh clients.

import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("git over patchd's SSH server", .serialized)
struct GitTransportTests {
    @Test("push creates the repo; clone and fetch return the same history")
    func pushCloneFetch() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "demo", commits: 5)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "push")
        #expect(FileManager.default.fileExists(atPath: server.repoRoot + "/demo.git/HEAD"))

        let clone = server.tmp.path + "/clone"
        try expectOK(server.git(["clone", "-q", server.url("demo.git"), clone], in: server.tmp.path), "clone")
        let a = try expectOK(server.git(["rev-parse", "HEAD"], in: work)).stdout
        let b = try expectOK(server.git(["rev-parse", "HEAD"], in: clone)).stdout
        #expect(a == b)
        #expect(try server.git(["rev-list", "--count", "HEAD"], in: clone).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "5")

        // A new commit, pushed and fetched (scp-like URL form too).
        try "more\n".write(toFile: work + "/more.txt", atomically: true, encoding: .utf8)
        try expectOK(server.git(["add", "."], in: work))
        try expectOK(server.git(["commit", "-q", "-m", "more"], in: work))
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "second push")
        try expectOK(server.git(["fetch", "-q", "origin"], in: clone), "fetch")
        let fetched = try server.git(["rev-parse", "origin/main"], in: clone).stdout
        let pushed = try server.git(["rev-parse", "HEAD"], in: work).stdout
        #expect(fetched == pushed)

        // HEAD of the new repo names main; the audit line names the verb and repo.
        let head = try String(contentsOfFile: server.repoRoot + "/demo.git/HEAD", encoding: .utf8)
        #expect(head == "ref: refs/heads/main\n")
        #expect(server.log.contains("cmd=git-upload-pack:demo"))
        #expect(server.log.contains("cmd=git-receive-pack:demo"))
    }

    @Test("HEAD of a new repo names the first branch pushed when main is not among them")
    func headFollowsFirstBranch() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "other", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main:trunk"], in: work))
        let head = try String(contentsOfFile: server.repoRoot + "/other.git/HEAD", encoding: .utf8)
        #expect(head == "ref: refs/heads/trunk\n")
        let clone = server.tmp.path + "/c"
        try expectOK(server.git(["clone", "-q", server.url("other"), clone], in: server.tmp.path))
        #expect(try server.git(["branch", "--show-current"], in: clone).stdout == "trunk\n")
    }

    @Test("a 100 MB pack goes up and comes back byte-exact")
    func largePack() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("big", repo: "big", commits: 1)
        // Incompressible content, so the pack really is ~100 MB.
        for i in 0..<4 {
            let fd = open("/dev/urandom", O_RDONLY)
            let bytes = try readAll(fd, limit: 25_000_000)
            close(fd)
            try Data(bytes.prefix(25_000_000)).write(to: URL(fileURLWithPath: "\(work)/blob\(i).bin"))
        }
        try expectOK(server.git(["add", "."], in: work))
        try expectOK(server.git(["commit", "-q", "-m", "big"], in: work))
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work, timeout: 600), "push 100 MB")
        let clone = server.tmp.path + "/bigclone"
        try expectOK(server.git(["clone", "-q", server.url("big"), clone], in: server.tmp.path, timeout: 600), "clone 100 MB")
        for i in 0..<4 {
            let a = try Data(contentsOf: URL(fileURLWithPath: "\(work)/blob\(i).bin"))
            let b = try Data(contentsOf: URL(fileURLWithPath: "\(clone)/blob\(i).bin"))
            #expect(a == b, "blob\(i).bin differs after the round trip")
        }
        try expectOK(run("/usr/bin/git", ["fsck", "--strict", "--no-progress"], cwd: clone), "fsck of the clone")
        let audit = server.log.split(separator: "\n").first { $0.contains("cmd=git-upload-pack:big") } ?? ""
        let bytesOut = audit.split(separator: " ").first { $0.hasPrefix("bytes_out=") }.flatMap { Int($0.dropFirst(10)) } ?? 0
        #expect(bytesOut > 100_000_000, "audit line should count the pack: \(audit)")
    }

    @Test("20 parallel clones all succeed and match")
    func parallelClones() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "par", commits: 20)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let expected = try server.git(["rev-parse", "HEAD"], in: work).stdout
        let results = LockedCollector(count: 20, initial: false)
        let env = server.gitEnv(server.admin), url = server.url("par"), base = server.tmp.path
        DispatchQueue.concurrentPerform(iterations: 20) { i in
            let dir = base + "/clone\(i)"
            let r = try? run("/usr/bin/git", ["clone", "-q", url, dir], cwd: base, env: env)
            let head = try? run("/usr/bin/git", ["rev-parse", "HEAD"], cwd: dir, env: env).stdout
            results.set(i, r?.status == 0 && head == expected)
        }
        #expect(results.all == Array(repeating: true, count: 20))
    }

    @Test("a push that stores nothing does not leave a new repository behind")
    func failedFirstPushRemovesRepo() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "broken", commits: 1)
        // A commit object fsck rejects (bad author line): receive.fsckObjects refuses the pack.
        let tree = try server.git(["rev-parse", "HEAD^{tree}"], in: work).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let raw = "tree \(tree)\nauthor no-email-here 0 +0000\ncommitter c <c@d> 0 +0000\n\nbad\n"
        let bad = try run("/usr/bin/git", ["hash-object", "-t", "commit", "-w", "--literally", "--stdin"], cwd: work, stdin: raw)
        let sha = bad.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try expectOK(server.git(["update-ref", "refs/heads/main", sha], in: work))
        let push = try server.git(["push", "origin", "main"], in: work)
        #expect(push.status != 0)
        #expect(!FileManager.default.fileExists(atPath: server.repoRoot + "/broken.git"))
        // The server still serves, and the name is free again for a good push.
        try expectOK(server.git(["update-ref", "refs/heads/main", "HEAD@{1}"], in: work))
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work), "good push after a refused one")
    }

    @Test("cloning a missing repository fails with a clear message and creates nothing")
    func missingRepo() throws {
        let server = try TestServer()
        let r = try server.git(["clone", server.url("nothing-here"), server.tmp.path + "/x"], in: server.tmp.path)
        #expect(r.status != 0)
        #expect(r.stderr.contains("repository 'nothing-here' not found"))
        #expect(!FileManager.default.fileExists(atPath: server.repoRoot + "/nothing-here.git"))
    }

    @Test("group/name repositories work; git's .git suffix and leading slash are accepted")
    func groupNames() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "team/app.git", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        #expect(FileManager.default.fileExists(atPath: server.repoRoot + "/team/app.git/HEAD"))
        let r = try server.ssh(nil, ["git-upload-pack", "'/team/app.git'"], stdin: "0000")
        #expect(r.status == 0)
        #expect(r.stdout.contains("refs/heads/main"))
    }
}
