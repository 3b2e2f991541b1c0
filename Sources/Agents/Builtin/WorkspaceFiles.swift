// Agents: file access for the editor tool, confined to the workspace: no `..`, no symlink is ever followed.
import Foundation
import PatchdSystem
#if canImport(Glibc)
import Glibc
#endif

/// Resolves tool paths (`/workspace/x` or `x`) one component at a time with
/// `openat(O_NOFOLLOW)` from the workspace's own fd, so neither `..` nor a symlink the
/// agent planted can lead outside it. Edits happen on the daemon side of the sandbox,
/// but can only touch what the sandbox could.
public struct WorkspaceFiles: Sendable {
    public let root: String
    public let displayRoot: String

    public init(root: String, displayRoot: String = "/workspace") {
        self.root = root
        self.displayRoot = displayRoot
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// Components of a path inside the workspace; refuses anything that could leave it.
    func components(_ path: String) throws(Failure) -> [String] {
        var rel = path
        if rel.hasPrefix(displayRoot + "/") { rel = String(rel.dropFirst(displayRoot.count + 1)) }
        else if rel == displayRoot { rel = "" }
        else if rel.hasPrefix("/") { throw Failure("\(path) is outside \(displayRoot); every path must be inside the repository") }
        let parts = rel.split(separator: "/").map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw Failure("\(path): '..' is not allowed in paths") }
        if parts.first == ".git" { throw Failure("\(path): the .git directory is not editable") }
        return parts
    }

    /// Opens the directory holding the last component (creating missing ones if asked).
    private func openParent(_ parts: [String], create: Bool) throws(Failure) -> Int32 {
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Failure("cannot open the workspace") }
        for part in parts.dropLast() {
            var next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                _ = mkdirat(fd, part, 0o755)
                next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let code = errno
            close(fd)
            guard next >= 0 else {
                throw Failure(code == ELOOP || code == ENOTDIR ? "\(part) is a symlink or not a directory; symlinks are not followed"
                                                               : "\(part): \(String(cString: strerror(code)))")
            }
            fd = next
        }
        return fd
    }

    public func read(_ path: String, limit: Int = 4 << 20) throws(Failure) -> String {
        let parts = try components(path)
        guard let name = parts.last else { throw Failure("\(path) is a directory") }
        let dir = try openParent(parts, create: false)
        defer { close(dir) }
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw Failure(errno == ELOOP ? "\(path) is a symlink; not followed" : "\(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw Failure("\(path) is not a regular file") }
        guard Int(st.st_size) <= limit else { throw Failure("\(path) is \(st.st_size) bytes; too large to view") }
        guard let bytes = try? readAll(fd, limit: limit) else { throw Failure("cannot read \(path)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw Failure("\(path) is not UTF-8 text") }
        return text
    }

    public func write(_ path: String, _ text: String) throws(Failure) {
        let parts = try components(path)
        guard let name = parts.last else { throw Failure("\(path) is a directory") }
        let dir = try openParent(parts, create: true)
        defer { close(dir) }
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw Failure(errno == ELOOP ? "\(path) is a symlink; not followed" : "\(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        do { try writeAll(fd, text) } catch { throw Failure("cannot write \(path): \(error)") }
    }

    public func isDirectory(_ path: String) -> Bool {
        guard let parts = try? components(path) else { return false }
        guard let name = parts.last else { return true }
        guard let dir = try? openParent(parts, create: false) else { return false }
        defer { close(dir) }
        let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 { close(fd); return true }
        return false
    }

    public func exists(_ path: String) -> Bool {
        guard let parts = try? components(path), let name = parts.last,
              let dir = try? openParent(parts, create: false) else { return false }
        defer { close(dir) }
        var st = stat()
        return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// Names in a directory, two levels deep, hidden ones and .git left out.
    public func list(_ path: String) throws(Failure) -> [String] {
        let parts = try components(path)
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        for part in parts where fd >= 0 {
            let next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(fd)
            fd = next
        }
        guard fd >= 0 else { throw Failure("\(path) is not a directory") }
        var out: [String] = []
        func walk(_ dirFD: Int32, _ prefix: String, _ depth: Int) {
            guard let dir = fdopendir(dup(dirFD)) else { return }
            defer { closedir(dir) }
            var names: [String] = []
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name.hasPrefix(".") { continue }
                names.append(name)
            }
            for name in names.sorted() {
                let sub = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if sub >= 0 {
                    out.append(prefix + name + "/")
                    if depth < 2 { walk(sub, prefix + name + "/", depth + 1) }
                    close(sub)
                } else {
                    out.append(prefix + name)
                }
                if out.count > 1000 { return }
            }
        }
        walk(fd, "", 1)
        close(fd)
        return out
    }
}
