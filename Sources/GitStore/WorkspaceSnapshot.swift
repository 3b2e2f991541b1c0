// GitStore: turns a workspace's files into a tree in the bare repository, never following a symlink.
import CLibGit2
import PatchdSystem
#if canImport(Glibc)
import Glibc
#endif

/// Snapshots a directory into git trees, the way `git add -A` would but safe against a
/// hostile workspace: every entry is opened relative to its directory fd with O_NOFOLLOW,
/// symlinks are stored as links (their target text) and never read through, `.git`
/// directories at any depth are skipped, and no filter or config of the workspace is used.
/// `.gitignore` rules apply to untracked paths only (tracked files stay tracked); a
/// `.gitignore` that is not a regular file is refused, so ignore parsing reads nothing
/// outside the workspace.
public struct SnapshotError: Error, CustomStringConvertible {
    public let description: String
}

final class WorkspaceSnapshotter {
    let repo: OpaquePointer       // the bare repository, with its workdir pointed at the workspace
    let odb: OpaquePointer
    let trackedFiles: Set<[UInt8]>
    let trackedDirs: Set<[UInt8]>
    /// Submodule entries of the base tree: kept as they were (patchd does not check them out).
    let gitlinks: [[UInt8]: git_oid]
    var filesHashed = 0
    /// The files as checked out (nil: hash every file).
    var baseline: WorkspaceBaseline?
    /// Files larger than this are left out of the result (and reported).
    var maxFileBytes: Int64 = .max
    var skipped: [String] = []

    init(repo: OpaquePointer, odb: OpaquePointer, tracked: Set<[UInt8]>, gitlinks: [[UInt8]: git_oid]) {
        self.repo = repo
        self.odb = odb
        self.gitlinks = gitlinks
        trackedFiles = tracked
        var dirs: Set<[UInt8]> = []
        for path in tracked {
            var i = path.count - 1
            while i > 0 {
                if path[i] == UInt8(ascii: "/") { dirs.insert(Array(path[..<i])) }
                i -= 1
            }
        }
        trackedDirs = dirs
    }

    /// Returns the tree id of `dirFD` (relative path `prefix`), or nil when it would be empty.
    func snapshot(dirFD: Int32, prefix: [UInt8]) throws -> git_oid? {
        try refuseSymlinkedIgnoreFile(dirFD: dirFD, prefix: prefix)
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
            var oid = git_oid()
            var mode: git_filemode_t
            switch type {
            case S_IFDIR where gitlinks[path] != nil:
                oid = gitlinks[path]!
                mode = GIT_FILEMODE_COMMIT
            case S_IFDIR:
                if !trackedDirs.contains(path) && isIgnored(path + [UInt8(ascii: "/")]) { continue }
                let fd = openat(dirFD, cString(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { continue }
                defer { close(fd) }
                guard let sub = try snapshot(dirFD: fd, prefix: path) else { continue }
                oid = sub
                mode = GIT_FILEMODE_TREE
            case S_IFREG:
                if !trackedFiles.contains(path) && isIgnored(path) { continue }
                if Int64(st.st_size) > maxFileBytes {
                    skipped.append("\(show(path)) (\(st.st_size) bytes)")
                    continue
                }
                if let unchanged = baseline?.unchangedBlob(path, st) {
                    oid = unchanged
                } else {
                    oid = try hashFile(dirFD: dirFD, name: name, path: path)
                }
                mode = (st.st_mode & 0o100) != 0 ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB
            case S_IFLNK:
                if !trackedFiles.contains(path) && isIgnored(path) { continue }
                var target = [UInt8](repeating: 0, count: 4096)
                let n = readlinkat(dirFD, cString(name), &target, target.count)
                guard n >= 0 else { continue }
                oid = try writeBlob(Array(target[0..<n]))
                mode = GIT_FILEMODE_LINK
            default:
                continue // fifos, sockets, devices: not content
            }
            try git("tree entry \(show(path))") { git_treebuilder_insert(nil, builder, cString(name), &oid, mode) }
            count += 1
        }
        guard count > 0 else { return nil }
        var tree = git_oid()
        try git("write tree \(show(prefix))") { git_treebuilder_write(&tree, builder) }
        return tree
    }

    private func refuseSymlinkedIgnoreFile(dirFD: Int32, prefix: [UInt8]) throws {
        var st = stat()
        if fstatat(dirFD, ".gitignore", &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
            throw SnapshotError(description: "\(show(prefix + Array("/.gitignore".utf8))) is not a regular file; patchd does not read ignore rules through links")
        }
    }

    private func isIgnored(_ path: [UInt8]) -> Bool {
        var ignored: Int32 = 0
        guard git_ignore_path_is_ignored(&ignored, repo, cString(path)) == 0 else { return false }
        return ignored != 0
    }

    private func hashFile(dirFD: Int32, name: [UInt8], path: [UInt8]) throws -> git_oid {
        let fd = openat(dirFD, cString(name), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SnapshotError(description: "cannot open \(show(path)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let data: [UInt8]
        do { data = try readAll(fd) } catch { throw SnapshotError(description: "cannot read \(show(path)): \(error)") }
        filesHashed += 1
        return try writeBlob(data)
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
