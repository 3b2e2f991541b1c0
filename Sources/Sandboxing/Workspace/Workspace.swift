// Sandboxing: a run's workspace: the pushed tip checked out, sharing the bare repo's objects (no copy).

import Foundation
import PatchdSystem

/// DATA/work/run-ID/{workspace,etc}. The checkout's `.git` borrows objects from the bare
/// repository through alternates (read-only inside the sandbox), so creating it costs a
/// checkout, not a copy of the object store or of its refs. A resumed run's workspace holds the
/// tree of its checkpoint (`startTree`) on top of the pushed commit. git is run here only BEFORE the agent: after
/// it, the workspace's `.git/config` is the agent's and could name programs.
package struct Workspace: Sendable {
    package let root: String
    package var path: String { root + "/workspace" }

    package static func create(
        runID: Int64, workRoot: String, bareRepository: String, commit: String, branch: String,
        gitExecutable: String, environment: [String: String], objectsPathInSandbox: String, startTree: String? = nil
    ) throws -> Workspace {
        let root = "\(workRoot)/run-\(runID)"
        try? FileManager.default.removeItem(atPath: root)  // a crashed earlier attempt
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let ws = Workspace(root: root)
        func git(_ args: [String], in dir: String? = nil) throws {
            let r = try runProcess(gitExecutable, args, environment: environment, workingDirectory: dir)
            guard r.status == 0 else {
                throw WorkspaceError(
                    "git \(args.first ?? "") failed: \(String(decoding: r.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
        // A fresh repository that borrows the bare one's objects: only the run's commit
        // matters (the branch may have moved or gone since the run was queued).
        try git(["init", "--quiet", "--initial-branch", branch, ws.path])
        let alternates = ws.path + "/.git/objects/info/alternates"
        try (bareRepository + "/objects\n").write(toFile: alternates, atomically: true, encoding: .utf8)
        try git(["update-ref", "refs/heads/\(branch)", commit], in: ws.path)
        try git(["reset", "--quiet", "--hard"], in: ws.path)
        if let startTree, startTree != commit {
            // A resumed run: the files of its checkpoint over the pushed commit, as staged changes
            // (the branch stays at the pushed commit; the index, which `WorkspaceBaseline` reads,
            // matches the files just written).
            try git(["read-tree", "--reset", "-u", startTree], in: ws.path)
        }
        // Inside the sandbox the repository's objects appear at another path.
        try (objectsPathInSandbox + "\n").write(toFile: alternates, atomically: true, encoding: .utf8)
        // No chown needed: bwrap maps patchd's own uid to the sandbox's uid 1000.
        return ws
    }

    package func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }

    package var mountsScratch: String { root }
}

package struct WorkspaceError: Error, CustomStringConvertible {
    package let description: String
    package init(_ d: String) { description = d }
}
