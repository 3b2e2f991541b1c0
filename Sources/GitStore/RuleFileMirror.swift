// GitStore: a private copy of the workspace's .gitignore/.gitattributes files, the only place libgit2 reads rules from.

import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// libgit2 reads ignore and attribute files by path under the repository's work directory,
/// following symlinks. Pointing it at the workspace would let a link named `.gitattributes`
/// make the daemon read any file it can (or block on a fifo). So the work directory libgit2
/// sees is this mirror: a fresh directory beside the workspace holding only the directory
/// structure and copies of `.gitignore` and `.gitattributes` that are regular files, each
/// opened relative to its directory with O_NOFOLLOW. A symlinked rule file is not read, as
/// git (2.32 and later) does not read one inside the work tree; the snapshot says so.
final class RuleFileMirror {
    let root: String
    private(set) var warnings: [String] = []
    /// git ignores attribute and ignore files of 100 MB or more (ATTR_MAX_FILE_SIZE, PATTERN_MAX_FILE_SIZE).
    static let maxRuleFileBytes = 100 * 1024 * 1024

    /// Creates the mirror next to `workspace` (same file system; removed with the run's directory).
    init(beside workspace: String) throws {
        let parent = (workspace as NSString).deletingLastPathComponent
        var template = Array((parent + "/.patchd-rules-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw SnapshotError(description: "cannot create the rule file mirror in \(parent): \(String(cString: strerror(errno)))")
        }
        root = String(cString: made)
    }

    /// Copies the rule files of the workspace directory `dirFD` (relative path `prefix`).
    func mirror(dirFD: Int32, prefix: [UInt8]) throws {
        // Raw bytes: a name that is not UTF-8 must land where libgit2 will look for it.
        let target = prefix.isEmpty ? Array(root.utf8) : Array(root.utf8) + [UInt8(ascii: "/")] + prefix
        if !prefix.isEmpty && mkdir(cString(target), 0o700) != 0 && errno != EEXIST {
            throw SnapshotError(description: "cannot mirror the directory \(show(prefix)): \(String(cString: strerror(errno)))")
        }
        for name in [".gitignore", ".gitattributes"] {
            let path = prefix.isEmpty ? Array(name.utf8) : prefix + [UInt8(ascii: "/")] + Array(name.utf8)
            var st = stat()
            guard fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFLNK:
                warnings.append("\(show(path)) is a symbolic link: its rules are not read (git does not read one either); the link itself is kept")
                continue
            default:
                warnings.append("\(show(path)) is not a regular file: its rules are not read")
                continue
            }
            guard Int(st.st_size) < Self.maxRuleFileBytes else {
                warnings.append("\(show(path)) is 100 MB or more: its rules are not read (git ignores it too)")
                continue
            }
            let fd = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw SnapshotError(description: "cannot open \(show(path)): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            // The file may have been swapped between the stat and the open.
            var opened = stat()
            guard fstat(fd, &opened) == 0, opened.st_mode & S_IFMT == S_IFREG, Int(opened.st_size) < Self.maxRuleFileBytes else { continue }
            let data: [UInt8]
            do { data = try readAll(fd) } catch { throw SnapshotError(description: "cannot read \(show(path)): \(error)") }
            try write(data, to: target + Array(("/" + name).utf8))
        }
    }

    private func write(_ data: [UInt8], to rawPath: [UInt8]) throws {
        let path = show(rawPath)
        let fd = open(cString(rawPath), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SnapshotError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var offset = 0
        while offset < data.count {
            let n = data[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SnapshotError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }
}
