// UnitTests: the result tree is what `git add -A && git write-tree` records, and real `git fsck --strict` accepts it.

import Foundation
import PatchdSystem
import Testing

@testable import GitStore
@testable import Runs
@testable import Sandboxing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ResultFidelityTests {
    /// A pushed tree (written with real git), its bare repository and a run workspace made the way runs make it.
    struct Fixture {
        let dir: String
        let bare: String
        let base: String
        let workspace: Workspace
        static let env = [
            "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
        ]

        /// `files`: path -> content; a content starting with "->" makes a symlink to the rest.
        init(_ files: [(String, String)]) throws {
            dir = NSTemporaryDirectory() + "/patchd-fidelity-\(UUID().uuidString)"
            let src = dir + "/src"
            try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
            try Self.write(files, in: src)
            try Self.git(["init", "-q", "-b", "main"], in: src)
            try Self.git(["add", "-A"], in: src)
            try Self.git(["commit", "-qm", "base"], in: src)
            base = try Self.git(["rev-parse", "HEAD"], in: src)
            bare = dir + "/bare.git"
            try Self.git(["clone", "-q", "--bare", src, bare], in: dir)
            workspace = try Workspace.create(
                runID: 1, workRoot: dir + "/work", bareRepository: bare, commit: base, branch: "main",
                gitExecutable: "/usr/bin/git", environment: Self.env, objectsPathInSandbox: bare + "/objects")
        }

        static func write(_ files: [(String, String)], in root: String) throws {
            for (path, content) in files {
                let full = root + "/" + path
                try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try? FileManager.default.removeItem(atPath: full)
                if content.hasPrefix("u16:") {
                    try String(content.dropFirst(4)).data(using: .utf16)!.write(to: URL(fileURLWithPath: full))
                } else if content.hasPrefix("->") {
                    try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: String(content.dropFirst(2)))
                } else {
                    try Data(content.utf8).write(to: URL(fileURLWithPath: full))
                }
            }
        }

        @discardableResult
        static func git(_ args: [String], in cwd: String, stdin: [UInt8]? = nil) throws -> String {
            let r = try runProcess("/usr/bin/git", args, environment: env, workingDirectory: cwd, stdinBytes: stdin)
            guard r.status == 0 else { throw SnapshotError(description: "git \(args): \(String(decoding: r.stderr, as: UTF8.self))") }
            return String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func snapshot() throws -> (tree: String, changed: Bool, filesHashed: Int, notes: [String]) {
            try ResultWriter(bareRepository: bare).snapshot(workspace: workspace.path, baseCommit: base)
        }

        /// What git itself records in the workspace (the test wrote it: running git there is safe).
        func gitWriteTree() throws -> String {
            try Self.git(["add", "-A"], in: workspace.path)
            return try Self.git(["write-tree"], in: workspace.path)
        }

        func baseTree() throws -> String { try Self.git(["rev-parse", "\(base)^{tree}"], in: bare) }

        /// `git fsck --strict` of the bare repository after committing `tree` on the base.
        func fsckAfterCommitting(_ tree: String) throws -> (status: Int32, output: String) {
            let writer = try ResultWriter(bareRepository: bare)
            let commit = try writer.commit(tree: tree, parent: base, message: "result\n", identity: GitIdentity(name: "p", email: "p@p"))
            try writer.setReference("refs/heads/agent/main", to: commit, log: "test")
            let r = try runProcess("/usr/bin/git", ["fsck", "--strict", "--no-dangling"], environment: Self.env, workingDirectory: bare)
            return (r.status, String(decoding: r.stdout + r.stderr, as: UTF8.self))
        }

        func remove() { try? FileManager.default.removeItem(atPath: dir) }
    }

    @Test("`*.txt text eol=crlf` and a task that changes nothing: the pushed tree, not CRLF blobs")
    func crlfCheckoutIsNoChange() throws {
        let f = try Fixture([(".gitattributes", "*.txt text eol=crlf\n"), ("a.txt", "one\ntwo\n"), ("sub/b.txt", "three\n")])
        defer { f.remove() }
        #expect(try String(contentsOfFile: f.workspace.path + "/a.txt", encoding: .utf8) == "one\r\ntwo\r\n", "the checkout smudged")
        let snap = try f.snapshot()
        #expect(!snap.changed)
        #expect(snap.tree == (try f.baseTree()))
        #expect(snap.tree == (try f.gitWriteTree()))
    }

    @Test("clean filters as git add applies them: eol, text=auto, -text, binary, ident, nested and deleted .gitattributes")
    func attributesMatchGitAdd() throws {
        let f = try Fixture([
            (".gitattributes", "*.txt text eol=crlf\n*.auto text=auto\n*.raw -text\n*.id ident\n*.lf text eol=lf\n"),
            ("a.txt", "one\n"), ("keep.auto", "has\r\ncr\r\n"), ("x.raw", "raw\n"), ("v.id", "$Id$\n"),
            ("sub/.gitattributes", "*.txt -text\n"), ("sub/s.txt", "s\n"), ("gone/.gitattributes", "*.dat text\n"), ("gone/d.dat", "d\n"),
        ])
        defer { f.remove() }
        try Fixture.write(
            [
                ("a.txt", "one\r\ntwo\r\n"), ("new.txt", "n\r\n"), ("new.auto", "auto\r\n"), ("keep.auto", "has\r\ncr\r\nmore\r\n"),
                ("bin.auto", "bin\0\r\n"), ("x.raw", "raw\r\n"), ("v.id", "$Id: anything here $\nmore\n"), ("w.lf", "w\r\n"),
                ("sub/s.txt", "s\r\n"), ("gone/d.dat", "d\r\ne\r\n"),
            ], in: f.workspace.path)
        try FileManager.default.removeItem(atPath: f.workspace.path + "/gone/.gitattributes")
        let snap = try f.snapshot()
        #expect(snap.changed)
        let gitTree = try f.gitWriteTree()
        let diff = try Fixture.git(["diff-tree", "-r", gitTree, snap.tree], in: f.workspace.path)
        #expect(snap.tree == gitTree, "notes: \(snap.notes)\n\(diff)")
    }

    @Test("an external filter= driver and working-tree-encoding: unchanged bytes stay, changed ones keep the pushed blob, no program runs")
    func unsupportedConversions() throws {
        let marker = NSTemporaryDirectory() + "/patchd-filter-ran-\(UUID().uuidString)"
        let f = try Fixture([
            (".gitattributes", "*.lfs filter=lfs\n*.u16 working-tree-encoding=UTF-16\n*.u8 working-tree-encoding=UTF-8\n"),
            ("big.lfs", "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n"), ("other.lfs", "pointer\n"),
            ("t.u16", "u16:text\n"), ("u.u16", "u16:same\n"), ("plain.u8", "utf8\n"),
        ])
        defer { f.remove() }
        // The workspace's config names a program for the driver: libgit2 must not run it.
        try Fixture.git(["config", "filter.lfs.clean", "touch \(marker)"], in: f.workspace.path)
        try Fixture.git(["config", "filter.lfs.required", "true"], in: f.workspace.path)
        try Fixture.write(
            [
                ("other.lfs", "the real large content\n"), ("t.u16", "changed\n"), ("plain.u8", "utf8 changed\n"),
                ("new.lfs", "brand new\n"),
            ], in: f.workspace.path)
        let snap = try f.snapshot()
        #expect(!FileManager.default.fileExists(atPath: marker), "a filter program ran")
        let base = try f.baseTree()
        func blob(_ tree: String, _ path: String) throws -> String { try Fixture.git(["rev-parse", "\(tree):\(path)"], in: f.bare) }
        #expect(try blob(snap.tree, "big.lfs") == blob(base, "big.lfs"))
        #expect(try blob(snap.tree, "other.lfs") == blob(base, "other.lfs"))
        #expect(try blob(snap.tree, "t.u16") == blob(base, "t.u16"))
        #expect(try blob(snap.tree, "u.u16") == blob(base, "u.u16"))
        #expect(try Fixture.git(["cat-file", "-p", "\(snap.tree):plain.u8"], in: f.bare) == "utf8 changed")
        #expect((try? blob(snap.tree, "new.lfs")) == nil)
        #expect(snap.notes.contains { $0.contains("kept the pushed version of other.lfs") && $0.contains("filter=lfs") })
        #expect(snap.notes.contains { $0.contains("kept the pushed version of t.u16") && $0.contains("working-tree-encoding=UTF-16") })
        #expect(snap.notes.contains { $0.contains("left out of the result: new.lfs") })
        #expect(!snap.notes.contains { $0.contains("big.lfs") })
    }

    @Test("tracked symlinked .gitignore and .gitattributes (top and nested): kept as links, their targets never read as rules")
    func symlinkedRuleFiles() throws {
        let f = try Fixture([
            ("cfg/gitignore", "*\n"), ("cfg/attrs", "*.txt text eol=crlf\n"), (".gitignore", "->cfg/gitignore"),
            ("sub/.gitattributes", "->../cfg/attrs"), ("sub/.gitignore", "->/etc/passwd"), ("sub/a.txt", "a\n"),
        ])
        defer { f.remove() }
        try Fixture.write([("new.txt", "new\r\n"), ("sub/b.txt", "b\r\n")], in: f.workspace.path)
        let snap = try f.snapshot()
        #expect(try Fixture.git(["ls-tree", snap.tree, ".gitignore"], in: f.bare).hasPrefix("120000"))
        #expect(try Fixture.git(["ls-tree", snap.tree, "sub/.gitattributes"], in: f.bare).hasPrefix("120000"))
        // The link's "*" would ignore new.txt; its attributes would turn CRLF into LF.
        #expect(try Fixture.git(["cat-file", "-p", "\(snap.tree):new.txt"], in: f.bare) == "new")
        let b = try runProcess("/usr/bin/git", ["cat-file", "blob", "\(snap.tree):sub/b.txt"], environment: Fixture.env, workingDirectory: f.bare)
        #expect(b.stdout == Array("b\r\n".utf8))
        #expect(snap.notes.contains { $0.hasPrefix(".gitignore is a symbolic link") })
        #expect(snap.notes.contains { $0.hasPrefix("sub/.gitattributes is a symbolic link") })
        #expect(try f.fsckAfterCommitting(snap.tree).status == 0)
    }

    @Test("paths git's fsck refuses never reach the tree; `git fsck --strict` of the result is clean")
    func fsckRefusedPaths() throws {
        let f = try Fixture([("a.txt", "a\n"), (".gitmodules", "[submodule \"s\"]\n\tpath = s\n\turl = https://example.com/s.git\n")])
        defer { f.remove() }
        try Fixture.write(
            [
                ("x/.gitmodules", "->../.git/config"), ("y/.GITMODULES ", "->z"), ("y/gitmod~1", "->z"), ("y/GI7EBA~9", "->z"),
                (".GIT/config", "c\n"), ("git~1/config", "c\n"), (".git\u{200c}/config", "c\n"), (".git. /config", "c\n"),
                ("w/a\\.git/f", "f\n"), ("d/.gitmodules/f", "f\n"), ("d/.gitattributes/f", "f\n"),
                ("long/.gitattributes", "*.x " + String(repeating: "a", count: 3000) + "\n"),
                ("m1/.gitmodules", "[submodule \"m\"]\n\tpath = m\n\turl = -oProxyCommand=touch%20/tmp/x\n"),
                ("m2/.gitmodules", "[submodule \"../../x\"]\n\tpath = m\n\turl = ./m\n"),
                ("m3/.gitmodules", "[submodule \"m\"]\n\tpath = \"-m\"\n"),
                ("m4/.gitmodules", "[submodule \"m\"]\r\n\tupdate = !rm -rf /\r\n"),
                ("m5/.gitmodules", "[submodule \"m\"]\n\turl = https://%0Aevil@example.com/\n"),
                ("ok/.gitmodules", "[submodule \"m\"]\n\tpath = m\n\turl = ../m.git\n"), ("ok/.gitignore", "->x"), ("ok/.mailmap", "->x"),
                ("b.txt", "b\n"),
            ], in: f.workspace.path)
        // The tracked .gitmodules turned into a link: the pushed file stays.
        try FileManager.default.removeItem(atPath: f.workspace.path + "/.gitmodules")
        try FileManager.default.createSymbolicLink(atPath: f.workspace.path + "/.gitmodules", withDestinationPath: ".git/config")
        let snap = try f.snapshot()
        let listing = try Fixture.git(["ls-tree", "-r", "--name-only", "-z", snap.tree], in: f.bare)
        let paths = Set(listing.split(separator: "\0").map(String.init))
        #expect(paths == [".gitmodules", "a.txt", "b.txt", "ok/.gitmodules", "ok/.gitignore", "ok/.mailmap"], "notes: \(snap.notes)")
        #expect(try Fixture.git(["ls-tree", snap.tree, ".gitmodules"], in: f.bare).hasPrefix("100644"))
        #expect(snap.notes.contains { $0.contains("kept the pushed version of .gitmodules") && $0.contains("gitmodulesSymlink") })
        for (path, finding) in [
            ("x/.gitmodules", "gitmodulesSymlink"), (".GIT", "hasDotgit"), ("git~1", "hasDotgit"),
            ("long/.gitattributes", "gitattributesLineLength"), ("m1/.gitmodules", "gitmodulesUrl"),
            ("m2/.gitmodules", "gitmodulesName"), ("m3/.gitmodules", "gitmodulesPath"),
            ("m4/.gitmodules", "gitmodulesUpdate"), ("m5/.gitmodules", "gitmodulesUrl"), ("d/.gitmodules", "gitmodulesBlob"),
        ] {
            #expect(snap.notes.contains { $0.contains("left out of the result: \(path)") && $0.contains(finding) }, "\(path): \(snap.notes)")
        }
        let fsck = try f.fsckAfterCommitting(snap.tree)
        #expect(fsck.status == 0 && !fsck.output.contains("error"), "\(fsck.output)")
        // Only the info-level findings git itself lets pass: a linked .gitignore or .mailmap.
        let warnings = fsck.output.split(separator: "\n").filter { $0.contains("warning") }
        #expect(warnings.allSatisfy { $0.contains("gitignoreSymlink") || $0.contains("mailmapSymlink") }, "\(fsck.output)")
    }

    /// Names checked against real `git fsck --strict`: a tree with one entry, made with `git mktree`.
    @Test(
        "GitPathRules agrees with git fsck --strict on tricky names",
        arguments: [
            ".git", ".GIT", ".Git ", ".git.", ".git . .", ".git:x", "git~1", "GIT~1", "git~2", ".g\u{200c}it", ".git\u{feff}", "\u{200d}.git",
            ".gitx", "x.git", "a\\.git", "a\\git~1", ".gitmodules", ".GITMODULES", ".gitmodules ", "gitmod~1", "gi7eba~1", "gi7eba~12",
            "gitmod~5", "a\\.gitmodules", ".gitattributes", ".gitignore", ".mailmap", "gi250a~1", "normal", "..x", "...",
        ])
    func namesAgainstGitFsck(name: String) throws {
        let dir = NSTemporaryDirectory() + "/patchd-names-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Fixture.git(["init", "-q", "--bare", "r.git"], in: dir)
        let repo = dir + "/r.git"
        let blob = try Fixture.git(["hash-object", "-w", "--stdin"], in: repo, stdin: Array("x\n".utf8))
        for (mode, type, isLink) in [("100644", "blob", false), ("120000", "blob", true)] {
            let tree = try Fixture.git(["mktree"], in: repo, stdin: Array("\(mode) \(type) \(blob)\t\(name)\n".utf8))
            let commit = try Fixture.git(["commit-tree", "-m", "t", tree], in: repo)
            try Fixture.git(["update-ref", "refs/heads/main", commit], in: repo)
            let r = try runProcess("/usr/bin/git", ["fsck", "--strict", "--no-dangling"], environment: Fixture.env, workingDirectory: repo)
            let output = String(decoding: r.stdout + r.stderr, as: UTF8.self)
            // Info-level findings (a linked .gitignore, .gitattributes, .mailmap) print as warnings
            // but pass even --strict: links git itself does not read, kept as links.
            let infoOnly = ["gitignoreSymlink", "gitattributesSymlink", "mailmapSymlink"].contains { output.contains($0) }
            let gitRefuses = r.status != 0 || (output.contains("warning") && !infoOnly)
            let ours = GitPathRules.refusal(name: Array(name.utf8), isLink: isLink, isDirectory: false)
            #expect((ours != nil) == gitRefuses, "\(name) mode \(mode): git says \(output), patchd says \(ours ?? "fine")")
        }
    }

    @Test(
        "GitmodulesCheck agrees with git fsck --strict on .gitmodules contents",
        arguments: [
            "[submodule \"a\"]\n\turl = https://example.com/a\n", "[submodule \"a\"]\n\turl = -x\n", "[submodule \"a\"]\n\turl = \"-x\"\n",
            "[submodule \"a\"]\n\turl = \\\n-x\n", "[submodule \"a\"]\n\tpath = -p\n", "[submodule \"a\"]\n\tpath = \" -p\"\n",
            "[submodule \"..\"]\n\tpath = p\n", "[submodule \"a/../b\"]\n\tpath = p\n", "[submodule \"a\\\\..\"]\n\tpath = p\n",
            "[submodule \"a..b\"]\n\tpath = p\n", "[submodule \"a\"]\n\tupdate = !x\n", "[submodule \"a\"]\n\tupdate = rebase\n",
            "[submodule \"a\"]\n\turl = ../../:x\n", "[submodule \"a\"]\n\turl = ./%0a\n", "[submodule \"a\"]\n\turl = https://\n",
            "[submodule \"a\"]\n\turl = https::%0a@host/x\n", "[submodule \"a\"]\n\turl = http://u%0A@host/\n",
            "[submodule.a]\n\turl = -x\n", "[submodule \"a\"]\r\n\turl = -x\r\n", "\u{feff}[submodule \"a\"]\n\turl = -x\n",
            "[submodule \"a\"] url = -x\n", "[submodule \"a\"]\n\turl = ok\n[broken\n\turl = -x\n", "[submodule \"a\"]\n\turl = x ; -y\n",
            "[submodule \"a\"]\n\tURL = -x\n", "[submodule \"a\"]\n\turl\n",
        ])
    func gitmodulesAgainstGitFsck(content: String) throws {
        let dir = NSTemporaryDirectory() + "/patchd-gitmodules-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Fixture.git(["init", "-q", "--bare", "r.git"], in: dir)
        let repo = dir + "/r.git"
        let blob = try Fixture.git(["hash-object", "-w", "--stdin"], in: repo, stdin: Array(content.utf8))
        let tree = try Fixture.git(["mktree"], in: repo, stdin: Array("100644 blob \(blob)\t.gitmodules\n".utf8))
        let commit = try Fixture.git(["commit-tree", "-m", "t", tree], in: repo)
        try Fixture.git(["update-ref", "refs/heads/main", commit], in: repo)
        let r = try runProcess("/usr/bin/git", ["fsck", "--strict", "--no-dangling"], environment: Fixture.env, workingDirectory: repo)
        let output = String(decoding: r.stdout + r.stderr, as: UTF8.self)
        let ours = GitmodulesCheck.refusal(Array(content.utf8))
        #expect((ours != nil) == (r.status != 0), "\(content.debugDescription): git says \(output), patchd says \(ours ?? "fine")")
    }
}
