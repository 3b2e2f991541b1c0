// GitStore: builds a run's result in the bare repository: snapshot tree, commit, refs, note.

import CLibGit2
import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// Who patchd's commits and notes are by.
package struct GitIdentity: Sendable {
    package let name: String
    package let email: String
    package init(name: String, email: String) { self.name = name; self.email = email }
}

/// Writes a run's result into a bare repository with libgit2 only: the workspace's `.git`
/// is not read after the agent (only the `WorkspaceBaseline` taken before it), and no git
/// program runs on the workspace.
package final class ResultWriter {
    let repo: GitRepository

    package init(bareRepository path: String) throws(GitError) {
        repo = try GitRepository(openBare: path)
    }

    /// The tree of the workspace's files, and whether it differs from `baseCommit`'s tree.
    /// With a `baseline` (read before the agent ran), files it shows unchanged are not read again.
    /// `notes` are sentences for the run log: paths left out or kept as pushed, and why.
    package func snapshot(
        workspace: String, baseCommit: String, maxFileBytes: Int64 = .max, baseline: WorkspaceBaseline? = nil
    ) throws
        -> (tree: String, changed: Bool, filesHashed: Int, notes: [String])
    {
        var baseOID = try Self.oid(baseCommit)
        var commit: OpaquePointer?
        try git("lookup base commit \(baseCommit)") { git_commit_lookup(&commit, repo.raw, &baseOID) }
        defer { git_commit_free(commit) }
        var baseTreeOID = git_commit_tree_id(commit).pointee
        var baseTree: OpaquePointer?
        try git("lookup base tree") { git_tree_lookup(&baseTree, repo.raw, &baseTreeOID) }
        defer { git_tree_free(baseTree) }

        let collected = TreeListing()
        let box = Unmanaged.passUnretained(collected).toOpaque()
        try git("walk base tree") {
            git_tree_walk(
                baseTree, GIT_TREEWALK_PRE,
                { root, entry, payload in
                    let listing = Unmanaged<TreeListing>.fromOpaque(payload!).takeUnretainedValue()
                    let name = Array(
                        UnsafeBufferPointer(
                            start: UnsafeRawPointer(git_tree_entry_name(entry)).assumingMemoryBound(to: UInt8.self),
                            count: strlen(git_tree_entry_name(entry))))
                    let rootBytes = Array(
                        UnsafeBufferPointer(start: UnsafeRawPointer(root!).assumingMemoryBound(to: UInt8.self), count: strlen(root!)))
                    listing.entries[rootBytes + name] = BaseEntry(oid: git_tree_entry_id(entry).pointee, mode: git_tree_entry_filemode(entry))
                    return 0
                }, box)
        }

        // The pushed tree as the index, as in the workspace before the agent: `git add` keeps
        // CRLF in a text=auto file whose indexed blob has a CR (libgit2's has_cr_in_index
        // reads this index). Without its `.gitattributes` entries: `git add -A` does not apply
        // the attributes of a `.gitattributes` the workspace deleted, and libgit2 would fall
        // back to the index for them.
        var index: OpaquePointer?
        try git("in-memory index") { git_index_new(&index) }
        defer { git_index_free(index) }
        try git("read the base tree into the index") { git_index_read_tree(index, baseTree) }
        let attributesName = Array(".gitattributes".utf8)
        for (path, entry) in collected.entries where entry.mode != GIT_FILEMODE_TREE && entry.mode != GIT_FILEMODE_COMMIT {
            guard path.count >= attributesName.count, Array(path.suffix(attributesName.count)) == attributesName,
                path.count == attributesName.count || path[path.count - attributesName.count - 1] == UInt8(ascii: "/")
            else { continue }
            try git("drop \(show(path)) from the index") { git_index_remove(index, cString(path), 0) }
        }
        try git("set the index") { git_repository_set_index(repo.raw, index) }
        // Ignore and attribute rules: libgit2 reads them under the work directory, so that is
        // a mirror of the workspace's regular rule files, never the workspace itself. This
        // handle is ours alone, so changing it is harmless.
        let rules = try RuleFileMirror(beside: workspace)
        defer { rules.remove() }
        try git("set workdir") { git_repository_set_workdir(repo.raw, rules.root, 0) }
        var odb: OpaquePointer?
        try git("open object database") { git_repository_odb(&odb, repo.raw) }
        defer { git_odb_free(odb) }

        let rootFD = open(workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFD >= 0 else { throw SnapshotError(description: "cannot open workspace \(workspace)") }
        defer { close(rootFD) }
        let snapshotter = WorkspaceSnapshotter(repo: repo.raw, odb: odb!, rules: rules, base: collected.entries)
        snapshotter.maxFileBytes = maxFileBytes
        snapshotter.baseline = baseline
        var tree = try snapshotter.snapshot(dirFD: rootFD, prefix: [])
        if tree == nil {
            var builder: OpaquePointer?
            try git("treebuilder") { git_treebuilder_new(&builder, repo.raw, nil) }
            defer { git_treebuilder_free(builder) }
            var empty = git_oid()
            try git("write empty tree") { git_treebuilder_write(&empty, builder) }
            tree = empty
        }
        var result = tree!
        let changed = git_oid_equal(&result, &baseTreeOID) == 0
        return (Self.hex(&result), changed, snapshotter.filesHashed, rules.warnings + snapshotter.notes)
    }

    /// A commit of `tree` on `parent` (no reference is moved).
    package func commit(tree: String, parent: String, message: String, identity: GitIdentity) throws(GitError) -> String {
        var treeOID = try Self.oid(tree)
        var parentOID = try Self.oid(parent)
        var treeObj: OpaquePointer?
        try git("lookup tree") { git_tree_lookup(&treeObj, repo.raw, &treeOID) }
        defer { git_tree_free(treeObj) }
        var parentObj: OpaquePointer?
        try git("lookup parent") { git_commit_lookup(&parentObj, repo.raw, &parentOID) }
        defer { git_commit_free(parentObj) }
        var sig: UnsafeMutablePointer<git_signature>?
        try git("signature") { git_signature_now(&sig, identity.name, identity.email) }
        defer { git_signature_free(sig) }
        var out = git_oid()
        var parents: [OpaquePointer?] = [parentObj]
        try git("create commit") {
            parents.withUnsafeMutableBufferPointer {
                git_commit_create(&out, repo.raw, nil, sig, sig, "UTF-8", message, treeObj, 1, $0.baseAddress)
            }
        }
        return Self.hex(&out)
    }

    /// Creates or moves a reference (patchd's own refs: agent/*, refs/patchd/*).
    package func setReference(_ name: String, to commit: String, log: String) throws(GitError) {
        var target = try Self.oid(commit)
        var ref: OpaquePointer?
        try git("update \(name)") { git_reference_create(&ref, repo.raw, name, &target, 1, log) }
        git_reference_free(ref)
    }

    /// Attaches `text` as the note of `commit` in `notesRef`.
    ///
    /// `git_note_create` reads the notes ref's tip and then moves it: two runs finishing
    /// together would each build on the same tip and one note would be lost (or the loser
    /// fails on the ref lock). Every notes update in this process goes through one lock,
    /// and a lock held by another process (a git maintenance command) is retried.
    package func addNote(to commit: String, text: String, notesRef: String, identity: GitIdentity) throws(GitError) {
        var target = try Self.oid(commit)
        var sig: UnsafeMutablePointer<git_signature>?
        try git("signature") { git_signature_now(&sig, identity.name, identity.email) }
        defer { git_signature_free(sig) }
        Self.notesLock.lock()
        defer { Self.notesLock.unlock() }
        var attempt = 0
        while true {
            var noteOID = git_oid()
            let rc = git_note_create(&noteOID, repo.raw, notesRef, sig, sig, &target, text, 1)
            if rc == GIT_ELOCKED.rawValue || rc == GIT_EMODIFIED.rawValue, attempt < 50 {
                attempt += 1
                usleep(20_000)
                continue
            }
            try git("write note") { rc }
            return
        }
    }

    private static let notesLock = NSLock()

    static func oid(_ hex: String) throws(GitError) -> git_oid {
        var oid = git_oid()
        try git("object id \(hex.prefix(40))") { git_oid_fromstr(&oid, hex) }
        return oid
    }

    static func hex(_ oid: inout git_oid) -> String { String(cString: git_oid_tostr_s(&oid)) }
}

/// Paths collected while walking the base tree.
private final class TreeListing {
    var entries: [[UInt8]: BaseEntry] = [:]
}
