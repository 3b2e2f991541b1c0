// GitStore: builds a run's result in the bare repository: snapshot tree, commit, refs, note.
import CLibGit2
import Foundation
import PatchdSystem
#if canImport(Glibc)
import Glibc
#endif

/// Who patchd's commits and notes are by.
public struct GitIdentity: Sendable {
    public let name: String
    public let email: String
    public init(name: String, email: String) { self.name = name; self.email = email }
}

/// Writes a run's result into a bare repository with libgit2 only: the workspace's `.git`
/// is not read after the agent (only the `WorkspaceBaseline` taken before it), and no git
/// program runs on the workspace.
public final class ResultWriter {
    private let repo: GitRepository

    public init(bareRepository path: String) throws(GitError) {
        repo = try GitRepository(openBare: path)
    }

    /// The tree of the workspace's files, and whether it differs from `baseCommit`'s tree.
    /// With a `baseline` (read before the agent ran), files it shows unchanged are not read again.
    public func snapshot(workspace: String, baseCommit: String, maxFileBytes: Int64 = .max, baseline: WorkspaceBaseline? = nil) throws
        -> (tree: String, changed: Bool, filesHashed: Int, skipped: [String]) {
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
            git_tree_walk(baseTree, GIT_TREEWALK_PRE, { root, entry, payload in
                let listing = Unmanaged<TreeListing>.fromOpaque(payload!).takeUnretainedValue()
                let name = Array(UnsafeBufferPointer(start: UnsafeRawPointer(git_tree_entry_name(entry)).assumingMemoryBound(to: UInt8.self),
                                                     count: strlen(git_tree_entry_name(entry))))
                let rootBytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(root!).assumingMemoryBound(to: UInt8.self), count: strlen(root!)))
                let path = rootBytes + name
                switch git_tree_entry_type(entry) {
                case GIT_OBJECT_BLOB: listing.files.insert(path)
                case GIT_OBJECT_COMMIT: listing.gitlinks[path] = git_tree_entry_id(entry).pointee
                default: break
                }
                return 0
            }, box)
        }

        // Ignore rules are read from the workspace's .gitignore files; for that libgit2
        // needs a work directory. This handle is ours alone, so changing it is harmless.
        try git("set workdir") { git_repository_set_workdir(repo.raw, workspace, 0) }
        var odb: OpaquePointer?
        try git("open object database") { git_repository_odb(&odb, repo.raw) }
        defer { git_odb_free(odb) }

        let rootFD = open(workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFD >= 0 else { throw SnapshotError(description: "cannot open workspace \(workspace)") }
        defer { close(rootFD) }
        let snapshotter = WorkspaceSnapshotter(repo: repo.raw, odb: odb!, tracked: collected.files, gitlinks: collected.gitlinks)
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
        return (Self.hex(&result), changed, snapshotter.filesHashed, snapshotter.skipped)
    }

    /// A commit of `tree` on `parent` (no reference is moved).
    public func commit(tree: String, parent: String, message: String, identity: GitIdentity) throws(GitError) -> String {
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
    public func setReference(_ name: String, to commit: String, log: String) throws(GitError) {
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
    public func addNote(to commit: String, text: String, notesRef: String, identity: GitIdentity) throws(GitError) {
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
    var files: Set<[UInt8]> = []
    var gitlinks: [[UInt8]: git_oid] = [:]
}
