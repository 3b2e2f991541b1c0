// IntegrationTests: run refs at scale: hidden from v0 fetches (fetch by commit id instead), fetched by name over v2, packed by patchd, never read by a push.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension TestServer {
    /// The ref names `git ls-remote` prints for `repo` under `protocol.version`.
    func lsRemote(_ repo: String, protocolVersion: Int, in cwd: String) throws -> [String] {
        let r = try expectOK(git(["-c", "protocol.version=\(protocolVersion)", "ls-remote", url(repo)], in: cwd), "ls-remote v\(protocolVersion)")
        return r.stdout.split(separator: "\n").compactMap { $0.split(separator: "\t").last.map(String.init) }
    }

    /// Loose ref files under `refs/patchd` in the server's copy of `repo`.
    func looseRunRefs(_ repo: String) -> Int {
        let dir = "\(repoRoot)/\(repo).git/refs/patchd"
        guard let walk = FileManager.default.enumerator(atPath: dir) else { return 0 }
        var count = 0
        while let entry = walk.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + entry, isDirectory: &isDir), !isDir.boolValue { count += 1 }
        }
        return count
    }

    /// Writes `count` loose run refs (`refs/patchd/runs/FIRST...`) at `commit` straight into the
    /// server's bare copy of `repo`, as a run writes them (one file each).
    func writeLooseRunRefs(_ repo: String, count: Int, from first: Int, at commit: String) throws {
        let input = (0..<count).map { "create refs/patchd/runs/\(first + $0) \(commit)\n" }.joined()
        try expectOK(run("/usr/bin/git", ["--git-dir", "\(repoRoot)/\(repo).git", "update-ref", "--stdin"], stdin: input), "update-ref")
    }
}

@Suite("run refs at scale", .serialized)
struct RefScaleTests {
    @Test("a v0/v1 fetch is not shown run refs but is shown agent/* and the notes ref; a v2 client sees them all")
    func v0AdvertisementHidesRunRefs() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "r", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let run = try server.pushTask(work, branch: "t1", script: "echo made > made.txt")
        #expect(run["status"] as? String == "succeeded", "\(run)")

        for version in [0, 1] {
            let refs = try server.lsRemote("r", protocolVersion: version, in: work)
            #expect(refs.contains("refs/heads/main") && refs.contains("refs/heads/t1"), "v\(version): \(refs)")
            #expect(refs.contains("refs/heads/agent/t1"), "v\(version): results stay fetchable by name: \(refs)")
            #expect(refs.contains("refs/notes/patchd"), "v\(version): \(refs)")
            #expect(!refs.contains { $0.hasPrefix("refs/patchd/") }, "v\(version) is shown run refs: \(refs)")
        }
        let v2 = try server.lsRemote("r", protocolVersion: 2, in: work)
        #expect(v2.contains("refs/patchd/runs/1") && v2.contains("refs/heads/agent/t1"), "v2: \(v2)")
        // The default client (git 2.26 and later speak v2 unless told otherwise) too.
        let plain = try expectOK(server.git(["ls-remote", server.url("r"), "refs/patchd/*"], in: work))
        #expect(plain.stdout.contains("refs/patchd/runs/1"), "\(plain.output)")
    }

    @Test("a run is fetched by name over v2 and by its commit id over v0; v0 gets no other unadvertised commit")
    func fetchRunRef() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "r", commits: 2)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        // Reachable from main but the tip of no ref.
        let older = try expectOK(server.git(["rev-parse", "main~1"], in: work)).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let run = try server.pushTask(work, branch: "t1", script: "echo made > made.txt")
        let result = try #require(run["result"] as? String, "\(run)")

        // v2 (git's default): by name, as the README and `run show` say.
        let v2 = server.tmp.path + "/v2"
        try expectOK(server.git(["clone", "-q", server.url("r"), v2], in: server.tmp.path))
        try expectOK(server.git(["fetch", "origin", "refs/patchd/runs/1"], in: v2), "v2 fetch by name")
        #expect(try server.git(["rev-parse", "FETCH_HEAD"], in: v2).stdout.hasPrefix(result))

        // v0: the name is not advertised, so git cannot find it...
        let v0 = server.tmp.path + "/v0"
        try expectOK(server.git(["-c", "protocol.version=0", "clone", "-q", server.url("r"), v0], in: server.tmp.path))
        let byName = try server.git(["-c", "protocol.version=0", "fetch", "origin", "refs/patchd/runs/1"], in: v0)
        #expect(byName.status != 0 && byName.stderr.contains("couldn't find remote ref refs/patchd/runs/1"), "\(byName.output)")
        // ...the commit id from `run show` (a tip of a hidden ref) is the way in, stored under the same name.
        let fetched = try server.git(["-c", "protocol.version=0", "fetch", "origin", "\(result):refs/patchd/runs/1"], in: v0)
        #expect(fetched.status == 0, "v0 fetch by commit id: \(fetched.output)")
        #expect(try server.git(["rev-parse", "refs/patchd/runs/1"], in: v0).stdout.hasPrefix(result))

        // Only tips of hidden refs: a v0 client asking for an arbitrary commit is still refused.
        let empty = server.tmp.path + "/empty"
        try expectOK(server.git(["init", "-q", empty], in: server.tmp.path))
        let other = try server.git(["-c", "protocol.version=0", "fetch", server.url("r"), older], in: empty)
        #expect(other.status != 0 && other.stderr.contains("not our ref"), "\(other.output)")
    }

    @Test("a push does not read the commits run refs name (its connectivity check lists branches and tags only)")
    func pushIgnoresRunRefCommits() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "r", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        // A run ref naming an object git cannot parse: any push that walks run refs fails on it
        // ("missing necessary objects"), as it walked all 100,000 of them before.
        let bare = "\(server.repoRoot)/r.git"
        let bogus = String(repeating: "1", count: 40)
        try FileManager.default.createDirectory(atPath: "\(bare)/objects/11", withIntermediateDirectories: true)
        try Data((0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37) }).write(to: URL(fileURLWithPath: "\(bare)/objects/11/" + bogus.dropFirst(2)))
        try FileManager.default.createDirectory(atPath: "\(bare)/refs/patchd/runs", withIntermediateDirectories: true)
        try (bogus + "\n").write(toFile: "\(bare)/refs/patchd/runs/999", atomically: true, encoding: .utf8)

        try server.write(work, "next.txt", "next\n")
        try server.commitAll(work, "next")
        let push = try server.git(["push", "origin", "main"], in: work)
        #expect(push.status == 0, "the push read a run ref's commit: \(push.output)")
    }

    @Test("patchd packs run refs once 256 are loose: at the next push and at start; fewer stay loose; none is lost")
    func packsLooseRunRefs() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("work", repo: "r", commits: 1)
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        let main = try expectOK(server.git(["rev-parse", "main"], in: work)).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        // Below the threshold: left loose (a push does not rewrite packed-refs each time).
        try server.writeLooseRunRefs("r", count: 10, from: 1000, at: main)
        try server.write(work, "a.txt", "a\n")
        try server.commitAll(work, "a")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        #expect(server.looseRunRefs("r") == 10)

        // At the threshold: the push's hook packs them all.
        try server.writeLooseRunRefs("r", count: 300, from: 2000, at: main)
        try server.write(work, "b.txt", "b\n")
        try server.commitAll(work, "b")
        try expectOK(server.git(["push", "-q", "origin", "main"], in: work))
        #expect(server.looseRunRefs("r") == 0)
        #expect(try server.serverRefs("r").keys.filter { $0.hasPrefix("refs/patchd/runs/") }.count == 310)

        // At start: loose refs left by runs since the last push (or an older patchd) are packed.
        server.stop()
        try server.writeLooseRunRefs("r", count: 300, from: 5000, at: main)
        #expect(server.looseRunRefs("r") == 300)
        try server.start()
        #expect(server.looseRunRefs("r") == 0)
        let refs = try server.serverRefs("r")
        #expect(refs.keys.filter { $0.hasPrefix("refs/patchd/runs/") }.count == 610)
        #expect(refs["refs/heads/main"] != nil)
    }
}
