// GitStore: turns a workspace's files into a tree in the bare repository, never following a symlink.

import CLibGit2
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// Snapshots a directory into git trees: the tree `git add -A && git write-tree` would record
/// in the workspace, but safe against a hostile workspace. Every entry is opened relative to
/// its directory fd with O_NOFOLLOW; symlinks are stored as links (their target text) and
/// never read through; `.git` directories at any depth are skipped; no config or program of
/// the workspace is used.
///
/// - `.gitignore` rules apply to untracked paths only (tracked files stay tracked).
/// - Files go through the clean side of their attributes as `git add` does: libgit2's
///   built-in `text`/`eol`/`crlf` and `ident` filters, attributes read from the workspace's
///   `.gitattributes` (a mirror of the regular ones: `RuleFileMirror`), then from the pushed
///   tree. libgit2 runs no external filter; a path whose `filter=` driver or
///   `working-tree-encoding` patchd cannot apply keeps its pushed blob (or stays out) when
///   its bytes changed, and the snapshot says so.
/// - Names and contents `git fsck` refuses (`GitPathRules`, `GitmodulesCheck`) never reach a
///   tree: such a path keeps its pushed version, or is left out, with the reason in `notes`.
package struct SnapshotError: Error, CustomStringConvertible {
    package let description: String
}

/// One entry of the pushed tree.
struct BaseEntry {
    var oid: git_oid
    var mode: git_filemode_t
}

final class WorkspaceSnapshotter {
    let repo: OpaquePointer  // the bare repository, with its workdir pointed at the rule mirror
    let odb: OpaquePointer
    let rules: RuleFileMirror
    /// Every path of the pushed tree (blobs, links, trees and submodules).
    let base: [[UInt8]: BaseEntry]
    let trackedDirs: Set<[UInt8]>
    var filesHashed = 0
    /// The files as checked out (nil: hash every file).
    var baseline: WorkspaceBaseline?
    /// Files larger than this are left out of the result (and reported).
    var maxFileBytes: Int64 = .max
    /// What the run log should say: paths left out or kept as pushed, and why; rule files not read.
    var notes: [String] = []

    init(repo: OpaquePointer, odb: OpaquePointer, rules: RuleFileMirror, base: [[UInt8]: BaseEntry]) {
        self.repo = repo
        self.odb = odb
        self.rules = rules
        self.base = base
        var dirs: Set<[UInt8]> = []
        for (path, entry) in base where entry.mode != GIT_FILEMODE_TREE {
            var i = path.count - 1
            while i > 0 {
                if path[i] == UInt8(ascii: "/") { dirs.insert(Array(path[..<i])) }
                i -= 1
            }
        }
        trackedDirs = dirs
    }

    private func isTrackedFile(_ path: [UInt8]) -> Bool {
        guard let mode = base[path]?.mode else { return false }
        return mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE || mode == GIT_FILEMODE_LINK
    }

    /// Returns the tree id of `dirFD` (relative path `prefix`), or nil when it would be empty.
    func snapshot(dirFD: Int32, prefix: [UInt8]) throws -> git_oid? {
        try rules.mirror(dirFD: dirFD, prefix: prefix)
        guard let dir = fdopendir(dup(dirFD)) else { throw SnapshotError(description: "cannot read directory \(show(prefix))") }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name == [46] || name == [46, 46] || name == Array(".git".utf8) { continue }
            names.append(name)
        }
        var builder: OpaquePointer?
        try git("treebuilder") { git_treebuilder_new(&builder, repo, nil) }
        defer { git_treebuilder_free(builder) }
        var count = 0
        for name in names {
            let path = prefix.isEmpty ? name : prefix + [UInt8(ascii: "/")] + name
            var st = stat()
            guard fstatat(dirFD, cString(name), &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            /// Keeps the pushed entry of `path` (or leaves it out) instead of what the workspace has.
            func keepPushed(_ reason: String) throws {
                if var entry = base[path] {
                    notes.append("kept the pushed version of \(show(path)): \(reason)")
                    try git("tree entry \(show(path))") { git_treebuilder_insert(nil, builder, cString(name), &entry.oid, entry.mode) }
                    count += 1
                } else {
                    notes.append("left out of the result: \(show(path)): \(reason)")
                }
            }
            var oid = git_oid()
            var mode: git_filemode_t
            switch type {
            case S_IFDIR where base[path]?.mode == GIT_FILEMODE_COMMIT:
                oid = base[path]!.oid
                mode = GIT_FILEMODE_COMMIT
            case S_IFDIR:
                if !trackedDirs.contains(path) && isIgnored(path + [UInt8(ascii: "/")]) { continue }
                if let refusal = GitPathRules.refusal(name: name, isLink: false, isDirectory: true) {
                    try keepPushed("git refuses \(refusal)")
                    continue
                }
                let fd = openat(dirFD, cString(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { continue }
                defer { close(fd) }
                guard let sub = try snapshot(dirFD: fd, prefix: path) else { continue }
                oid = sub
                mode = GIT_FILEMODE_TREE
            case S_IFREG:
                if !isTrackedFile(path) && isIgnored(path) { continue }
                if let refusal = GitPathRules.refusal(name: name, isLink: false, isDirectory: false) {
                    try keepPushed("git refuses \(refusal)")
                    continue
                }
                if Int64(st.st_size) > maxFileBytes {
                    notes.append("left out of the result: \(show(path)) (\(st.st_size) bytes), over the file size limit")
                    continue
                }
                mode = (st.st_mode & 0o100) != 0 ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB
                if let unchanged = baseline?.unchangedBlob(path, st) {
                    oid = unchanged
                } else {
                    switch try cleanBlob(dirFD: dirFD, name: name, path: path) {
                    case .blob(let blob): oid = blob
                    case .refused(let reason):
                        try keepPushed(reason)
                        continue
                    }
                }
            case S_IFLNK:
                if !isTrackedFile(path) && isIgnored(path) { continue }
                if let refusal = GitPathRules.refusal(name: name, isLink: true, isDirectory: false) {
                    try keepPushed("git refuses \(refusal)")
                    continue
                }
                var target = [UInt8](repeating: 0, count: 4096)
                let n = readlinkat(dirFD, cString(name), &target, target.count)
                guard n >= 0 else { continue }
                oid = try writeBlob(Array(target[0..<n]))
                mode = GIT_FILEMODE_LINK
            default:
                continue  // fifos, sockets, devices: not content
            }
            try git("tree entry \(show(path))") { git_treebuilder_insert(nil, builder, cString(name), &oid, mode) }
            count += 1
        }
        guard count > 0 else { return nil }
        var tree = git_oid()
        try git("write tree \(show(prefix))") { git_treebuilder_write(&tree, builder) }
        return tree
    }

    private func isIgnored(_ path: [UInt8]) -> Bool {
        var ignored: Int32 = 0
        guard git_ignore_path_is_ignored(&ignored, repo, cString(path)) == 0 else { return false }
        return ignored != 0
    }

    enum CleanResult {
        case blob(git_oid)
        case refused(String)
    }

    /// The blob `git add` would store for the file: its bytes through the clean filters of its
    /// attributes; refused when patchd cannot apply one of them to changed bytes, or when git's
    /// fsck would refuse the blob at this name.
    private func cleanBlob(dirFD: Int32, name: [UInt8], path: [UInt8]) throws -> CleanResult {
        let fd = openat(dirFD, cString(name), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SnapshotError(description: "cannot open \(show(path)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let raw: [UInt8]
        do { raw = try readAll(fd) } catch { throw SnapshotError(description: "cannot read \(show(path)): \(error)") }
        filesHashed += 1
        let data: [UInt8]
        if let unsupported = try unsupportedConversion(path) {
            // Unchanged bytes are the pushed blob (patchd's checkout applied no such conversion either).
            var rawOID = try hashBlob(raw)
            if var pushed = base[path]?.oid, git_oid_equal(&rawOID, &pushed) != 0 { return .blob(pushed) }
            return .refused("its \(unsupported) cannot be applied by patchd, so its changed bytes are not committed")
        }
        data = try applyCleanFilters(path, raw)
        if GitPathRules.isDotGitattributes(name), let why = GitPathRules.gitattributesRefusal(data) {
            return .refused("git refuses \(why)")
        }
        if GitPathRules.isGitmodulesLike(name), let why = GitmodulesCheck.refusal(data) {
            return .refused("git refuses \(why)")
        }
        return .blob(try writeBlob(data))
    }

    /// The attribute `git add` would apply that libgit2 cannot: an external `filter=` driver
    /// (libgit2 runs none; the server's checkout did not run it either) or a
    /// `working-tree-encoding` other than UTF-8.
    private func unsupportedConversion(_ path: [UInt8]) throws -> String? {
        let flags = UInt32(GIT_ATTR_CHECK_FILE_THEN_INDEX) | UInt32(GIT_ATTR_CHECK_NO_SYSTEM)
        var value: UnsafePointer<CChar>?
        try git("attribute filter of \(show(path))") { git_attr_get(&value, repo, flags, cString(path), "filter") }
        if git_attr_value(value) == GIT_ATTR_VALUE_STRING, let value { return "filter=\(String(cString: value)) driver" }
        value = nil
        try git("attribute working-tree-encoding of \(show(path))") { git_attr_get(&value, repo, flags, cString(path), "working-tree-encoding") }
        if git_attr_value(value) == GIT_ATTR_VALUE_STRING, let value, strcasecmp(value, "UTF-8") != 0 {
            return "working-tree-encoding=\(String(cString: value))"
        }
        return nil
    }

    /// libgit2's clean filters for `path` (the built-in crlf and ident filters; no program runs).
    private func applyCleanFilters(_ path: [UInt8], _ data: [UInt8]) throws -> [UInt8] {
        var filters: OpaquePointer?
        // ALLOW_UNSAFE: git's default core.safecrlf=warn converts and only warns.
        let flags = GIT_FILTER_NO_SYSTEM_ATTRIBUTES.rawValue | GIT_FILTER_ALLOW_UNSAFE.rawValue
        try git("filters of \(show(path))") { git_filter_list_load(&filters, repo, nil, cString(path), GIT_FILTER_TO_ODB, flags) }
        guard let filters, !data.isEmpty else { return data }
        defer { git_filter_list_free(filters) }
        var out = git_buf()
        defer { git_buf_dispose(&out) }
        try git("clean filter of \(show(path))") {
            data.withUnsafeBytes { buf in
                git_filter_list_apply_to_buffer(&out, filters, buf.baseAddress!.assumingMemoryBound(to: CChar.self), buf.count)
            }
        }
        guard out.size > 0, let ptr = out.ptr else { return [] }
        return Array(UnsafeRawBufferPointer(start: ptr, count: out.size))
    }

    private func hashBlob(_ data: [UInt8]) throws -> git_oid {
        var oid = git_oid()
        try git("hash blob") { data.withUnsafeBytes { git_odb_hash(&oid, $0.baseAddress, $0.count, GIT_OBJECT_BLOB) } }
        return oid
    }

    /// Hashes first and writes only objects the repository lacks (most files are unchanged).
    private func writeBlob(_ data: [UInt8]) throws -> git_oid {
        var oid = git_oid()
        let rc: Int32 = data.withUnsafeBytes { buf in
            let hashed = git_odb_hash(&oid, buf.baseAddress, buf.count, GIT_OBJECT_BLOB)
            if hashed < 0 { return hashed }
            if git_odb_exists(odb, &oid) != 0 { return 0 }
            return git_odb_write(&oid, odb, buf.baseAddress, buf.count, GIT_OBJECT_BLOB)
        }
        try git("write blob") { rc }
        return oid
    }
}

/// A NUL-terminated copy of raw name bytes, for C calls.
func cString(_ bytes: [UInt8]) -> [CChar] {
    bytes.map { CChar(bitPattern: $0) } + [0]
}

func show(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
