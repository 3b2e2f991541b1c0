// UnitTests: the result snapshot with a baseline re-reads only changed files, and never misses a change.

import Foundation
import PatchdSystem
import Testing

@testable import GitStore
@testable import Runs
@testable import Sandboxing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct WorkspaceBaselineTests {
    /// A bare repository with four files, and a run workspace made the way runs make it.
    struct Fixture {
        let dir: String
        let bare: String
        let base: String
        let workspace: Workspace

        init() throws {
            dir = NSTemporaryDirectory() + "/patchd-baseline-\(UUID().uuidString)"
            let src = dir + "/src"
            try FileManager.default.createDirectory(atPath: src + "/sub", withIntermediateDirectories: true)
            for (name, text) in [("a.txt", "alpha\n"), ("b.txt", "bravo\n"), ("sub/c.txt", "charlie\n"), ("run.sh", "#!/bin/sh\n")] {
                try text.write(toFile: "\(src)/\(name)", atomically: false, encoding: .utf8)
            }
            chmod(src + "/run.sh", 0o755)
            let env = [
                "PATH": "/usr/bin:/bin", "HOME": dir, "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
            ]
            func git(_ args: [String], in cwd: String) throws -> String {
                let r = try runProcess("/usr/bin/git", args, environment: env, workingDirectory: cwd)
                guard r.status == 0 else { throw SnapshotError(description: "git \(args): \(String(decoding: r.stderr, as: UTF8.self))") }
                return String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            _ = try git(["init", "-q", "-b", "main"], in: src)
            _ = try git(["add", "-A"], in: src)
            _ = try git(["commit", "-qm", "base"], in: src)
            base = try git(["rev-parse", "HEAD"], in: src)
            bare = dir + "/bare.git"
            _ = try git(["clone", "-q", "--bare", src, bare], in: dir)
            workspace = try Workspace.create(
                runID: 1, workRoot: dir + "/work", bareRepository: bare, commit: base, branch: "main",
                gitExecutable: "/usr/bin/git", environment: env, objectsPathInSandbox: bare + "/objects")
        }

        /// Moves the index's mtime a second ahead, as if it had been written in a later clock
        /// tick than the checked-out files (in this tiny checkout they may share one, and then
        /// the racy-git rule alone makes the snapshot hash them).
        func ageFiles() {
            var times = [timespec(tv_sec: time(nil) + 1, tv_nsec: 0), timespec(tv_sec: time(nil) + 1, tv_nsec: 0)]
            _ = utimensat(AT_FDCWD, workspace.path + "/.git/index", &times, 0)
        }

        func blob(_ tree: String, _ path: String) throws -> String {
            let r = try runProcess(
                "/usr/bin/git", ["cat-file", "-p", "\(tree):\(path)"], environment: ["PATH": "/usr/bin:/bin"],
                workingDirectory: bare)
            return String(decoding: r.stdout, as: UTF8.self)
        }

        func remove() { try? FileManager.default.removeItem(atPath: dir) }
    }

    @Test("unchanged files are not read again; a changed, an added and a re-moded file are")
    func onlyChangesAreHashed() throws {
        let f = try Fixture()
        defer { f.remove() }
        f.ageFiles()
        let baseline = try #require(WorkspaceBaseline.read(workspace: f.workspace.path))
        #expect(baseline.count == 4)
        try "bravo, changed\n".write(toFile: f.workspace.path + "/b.txt", atomically: false, encoding: .utf8)
        try "new\n".write(toFile: f.workspace.path + "/new.txt", atomically: false, encoding: .utf8)
        chmod(f.workspace.path + "/a.txt", 0o755)
        let snap = try ResultWriter(bareRepository: f.bare).snapshot(workspace: f.workspace.path, baseCommit: f.base, baseline: baseline)
        #expect(snap.changed)
        // b.txt (content), new.txt (untracked) and a.txt (chmod moved its ctime): 3 of 5.
        #expect(snap.filesHashed == 3, "hashed \(snap.filesHashed)")
        #expect(try f.blob(snap.tree, "b.txt") == "bravo, changed\n")
        #expect(try f.blob(snap.tree, "sub/c.txt") == "charlie\n")
        let unchanged = try ResultWriter(bareRepository: f.bare).snapshot(workspace: f.workspace.path, baseCommit: f.base)
        #expect(unchanged.tree == snap.tree, "with and without the baseline, the same tree")
    }

    @Test("a same-size rewrite with the old mtime put back is still seen (ctime moved)")
    func sameSizeRewriteWithRestoredMtime() throws {
        let f = try Fixture()
        defer { f.remove() }
        f.ageFiles()
        let baseline = try #require(WorkspaceBaseline.read(workspace: f.workspace.path))
        let path = f.workspace.path + "/a.txt"
        var st = stat()
        #expect(stat(path, &st) == 0)
        try "ALPHA\n".write(toFile: path, atomically: false, encoding: .utf8)  // same size
        var times = [st.st_atim, st.st_mtim]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        let snap = try ResultWriter(bareRepository: f.bare).snapshot(workspace: f.workspace.path, baseCommit: f.base, baseline: baseline)
        #expect(snap.changed)
        #expect(try f.blob(snap.tree, "a.txt") == "ALPHA\n")
    }

    @Test("files as new as the index (racy) are hashed, even when nothing else differs")
    func racyFilesAreHashed() throws {
        let f = try Fixture()
        defer { f.remove() }
        // The index a second older than its files: every entry is racy.
        var times = [timespec(tv_sec: time(nil) - 1, tv_nsec: 0), timespec(tv_sec: time(nil) - 1, tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, f.workspace.path + "/.git/index", &times, 0)
        let baseline = try #require(WorkspaceBaseline.read(workspace: f.workspace.path))
        let snap = try ResultWriter(bareRepository: f.bare).snapshot(workspace: f.workspace.path, baseCommit: f.base, baseline: baseline)
        #expect(!snap.changed)
        #expect(snap.filesHashed == 4)
    }
}
