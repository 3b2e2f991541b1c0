// GitStore: a libgit2 repository handle (one owner; freed at deinit) with the few operations patchd needs.

import CLibGit2

#if canImport(Glibc)
import Glibc
#endif

/// Owns one `git_repository*`. Not Sendable: open it where you use it.
package final class GitRepository {
    let raw: OpaquePointer

    package init(openBare path: String) throws(GitError) {
        LibGit2.initialize()
        var repo: OpaquePointer?
        try git("open \(path)") { git_repository_open_bare(&repo, path) }
        raw = repo!
    }

    /// Creates a bare repository whose HEAD names `initialBranch`.
    package static func createBare(at path: String, initialBranch: String) throws(GitError) -> GitRepository {
        LibGit2.initialize()
        var options = git_repository_init_options()
        try git("init options") { git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION)) }
        options.flags = UInt32(
            GIT_REPOSITORY_INIT_BARE.rawValue | GIT_REPOSITORY_INIT_MKPATH.rawValue
                | GIT_REPOSITORY_INIT_NO_REINIT.rawValue)
        var repo: OpaquePointer?
        let branch = strdup(initialBranch)
        defer { free(branch) }
        options.initial_head = UnsafePointer(branch)
        try git("init \(path)") { git_repository_init_ext(&repo, path, &options) }
        return GitRepository(raw: repo!)
    }

    private init(raw: OpaquePointer) { self.raw = raw }

    deinit { git_repository_free(raw) }

    /// Sets string config values in the repository's own config file.
    package func setConfig(_ values: [(String, String)]) throws(GitError) {
        var config: OpaquePointer?
        try git("open config") { git_repository_config(&config, raw) }
        defer { git_config_free(config) }
        for (key, value) in values {
            try git("set \(key)") { git_config_set_string(config, key, value) }
        }
    }

    /// Names of all references (refs/heads/..., refs/tags/...).
    package func referenceNames() throws(GitError) -> [String] {
        var array = git_strarray()
        try git("list references") { git_reference_list(&array, raw) }
        defer { git_strarray_dispose(&array) }
        return (0..<array.count).compactMap { array.strings[$0].map { String(cString: $0) } }
    }

    package func setHead(_ refName: String) throws(GitError) {
        try git("set HEAD to \(refName)") { git_repository_set_head(raw, refName) }
    }

    /// The commit a reference points at, as hex.
    package func resolve(_ refName: String) throws(GitError) -> String {
        var oid = git_oid()
        try git("resolve \(refName)") { git_reference_name_to_id(&oid, raw, refName) }
        return String(cString: git_oid_tostr_s(&oid))
    }

    /// Also reads objects from `directory`: a push's quarantine, which git shows pre-receive
    /// hooks in GIT_OBJECT_DIRECTORY (the pushed objects are there until the hook accepts them).
    package func addObjectDirectory(_ directory: String) throws(GitError) {
        var odb: OpaquePointer?
        try git("open object database") { git_repository_odb(&odb, raw) }
        defer { git_odb_free(odb) }
        try git("add object directory \(directory)") { git_odb_add_disk_alternate(odb, directory) }
    }

    /// The blob at `path` in `commit` (hex): its id and size, read from the object header only;
    /// nil when the commit has no such path or it is not a file.
    package func blob(at path: String, in commit: String) throws(GitError) -> (id: String, size: Int)? {
        var oid = git_oid()
        try git("parse \(commit)") { git_oid_fromstr(&oid, commit) }
        var commitObject: OpaquePointer?
        try git("look up commit \(commit)") { git_commit_lookup(&commitObject, raw, &oid) }
        defer { git_commit_free(commitObject) }
        var tree: OpaquePointer?
        try git("look up the tree of \(commit)") { git_commit_tree(&tree, commitObject) }
        defer { git_tree_free(tree) }
        var entry: OpaquePointer?
        let found = git_tree_entry_bypath(&entry, tree, path)
        if found == GIT_ENOTFOUND.rawValue { return nil }
        try git("look up \(path) in \(commit)") { found }
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return nil }
        var blobID = git_tree_entry_id(entry).pointee
        var odb: OpaquePointer?
        try git("open object database") { git_repository_odb(&odb, raw) }
        defer { git_odb_free(odb) }
        var size = 0
        var type = GIT_OBJECT_ANY
        try git("read the header of \(path)") { git_odb_read_header(&size, &type, odb, &blobID) }
        return (String(cString: git_oid_tostr_s(&blobID)), size)
    }

    /// The bytes of blob `id` (hex).
    package func blobContent(_ id: String) throws(GitError) -> [UInt8] {
        var oid = git_oid()
        try git("parse \(id)") { git_oid_fromstr(&oid, id) }
        var blob: OpaquePointer?
        try git("look up blob \(id)") { git_blob_lookup(&blob, raw, &oid) }
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let data = git_blob_rawcontent(blob) else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: size))
    }

    package var headTarget: String? {
        var ref: OpaquePointer?
        guard git_reference_lookup(&ref, raw, "HEAD") == 0 else { return nil }
        defer { git_reference_free(ref) }
        return git_reference_symbolic_target(ref).map { String(cString: $0) }
    }
}
