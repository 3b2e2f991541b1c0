// UnitTests: which refs each git service is shown (run refs only to v2 fetches), and the conflict lookup that no longer lists every ref.

import Foundation
import GitStore
import PatchdCore
import PatchdSystem
import Testing

@Suite("run refs at scale: arguments and lookups")
struct RefScaleUnitTests {
    let store = RepositoryStore(root: "/nonexistent", gitExecutable: "/usr/bin/git", gitHome: "/nonexistent", maxPushBytes: 0)

    @Test("GIT_PROTOCOL asks for v2 only with an item version=2, as git reads it")
    func speaksV2() {
        for yes in ["version=2", "foo=bar:version=2", "version=2:foo"] { #expect(PatchdRefs.speaksV2(gitProtocol: yes), "\(yes)") }
        for no in [nil, "", "version=1", "version=0", "version=20", "xversion=2", "version=2x", "version = 2"] {
            #expect(!PatchdRefs.speaksV2(gitProtocol: no), "\(no ?? "nil")")
        }
    }

    @Test("upload-pack hides refs/patchd (and allows fetching its tips by id) for v0/v1, nothing for v2")
    func uploadPackArguments() throws {
        let name = try RepositoryName("r")
        for proto in [nil, "version=1", "version=0"] {
            let args = store.packProtocolArguments(.uploadPack, repository: name, gitProtocol: proto)
            let service = args.firstIndex(of: "upload-pack")!
            let config = Array(args[..<service])
            #expect(config.contains("uploadpack.hideRefs=refs/patchd"), "\(args)")
            #expect(config.contains("uploadpack.allowTipSHA1InWant=true"), "\(args)")
            // Results and the notes ref stay fetchable by name.
            #expect(!args.contains { $0.hasPrefix("uploadpack.hideRefs=refs/heads") || $0.hasPrefix("uploadpack.hideRefs=refs/notes") }, "\(args)")
            #expect(!args.contains { $0.contains("allowAnySHA1InWant") || $0.contains("allowReachableSHA1InWant") }, "\(args)")
        }
        let v2 = store.packProtocolArguments(.uploadPack, repository: name, gitProtocol: "version=2")
        #expect(!v2.contains { $0.hasPrefix("uploadpack.") }, "\(v2)")
        #expect(Array(v2.suffix(3)) == ["upload-pack", "--strict", "."])
    }

    @Test("receive-pack hides patchd's refs and reads only branches and tags as the quarantine's alternate refs")
    func receivePackArguments() throws {
        let name = try RepositoryName("r")
        let args = store.packProtocolArguments(.receivePack, repository: name, gitProtocol: "version=2")
        let config = Array(args[..<args.firstIndex(of: "receive-pack")!])
        for hidden in PatchdRefs.hidden { #expect(config.contains("receive.hideRefs=\(hidden)"), "\(args)") }
        #expect(config.contains("core.alternateRefsPrefixes=refs/heads/ refs/tags/"), "\(args)")
        #expect(Array(args.suffix(2)) == ["receive-pack", "."])
    }

    @Test("referencesBlocking finds the refs that block a name, loose or packed, and no others")
    func referencesBlocking() throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("patchd-refscale-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repo = try GitRepository.createBare(at: dir, initialBranch: "main")
        let env = [
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": dir, "PATH": "/usr/bin:/bin",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
        ]
        func git(_ args: [String], stdin: String? = nil) throws -> String {
            let r = try runProcess("/usr/bin/git", ["--git-dir", dir] + args, environment: env, stdinBytes: stdin.map { Array($0.utf8) })
            guard r.status == 0 else { throw GitTestFailure(args: args, stderr: String(decoding: r.stderr, as: UTF8.self)) }
            return String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let tree = try git(["mktree"], stdin: "")
        let commit = try git(["commit-tree", tree, "-m", "c"], stdin: nil)
        let refs = [
            "refs/heads/agent/old", "refs/heads/agent/feat/a", "refs/heads/agent/feat/b/c", "refs/heads/agent/feature",
            "refs/heads/agent/featx", "refs/patchd/runs/1", "refs/patchd/runs/2",
        ]
        _ = try git(["update-ref", "--stdin"], stdin: refs.map { "create \($0) \(commit)\n" }.joined())
        for packed in [false, true] {
            if packed { _ = try git(["pack-refs", "--all"]) }
            let reopened = try GitRepository(openBare: dir)
            #expect(
                try reopened.referencesBlocking("refs/heads/agent/feat") == ["refs/heads/agent/feat/a", "refs/heads/agent/feat/b/c"],
                "packed \(packed)")
            #expect(try reopened.referencesBlocking("refs/heads/agent/old/x") == ["refs/heads/agent/old"], "packed \(packed)")
            #expect(try reopened.referencesBlocking("refs/heads/agent/old") == [], "an existing ref blocks nothing")
            #expect(try reopened.referencesBlocking("refs/heads/agent/new") == [], "packed \(packed)")
        }
        _ = repo
    }
}

struct GitTestFailure: Error, CustomStringConvertible {
    let args: [String]
    let stderr: String
    var description: String { "git \(args.joined(separator: " ")) failed: \(stderr)" }
}
