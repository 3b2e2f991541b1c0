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
package struct WorkspaceFiles: Sendable {
    package let root: String
    package let displayRoot: String

    package init(root: String, displayRoot: String = "/workspace") {
        self.root = root
        self.displayRoot = displayRoot
    }

    package struct Failure: Error, CustomStringConvertible {
        package enum Kind: Sendable, Equatable { case notFound, exists, tooLarge(Int), other }
        package let description: String
        package let kind: Kind
        init(_ d: String, _ kind: Kind = .other) { description = d; self.kind = kind }
    }

    /// What the editor reads at most; bigger files are for bash (grep, sed -n).
    package static let maxReadBytes = 4 << 20

    /// Components of a path inside the workspace; refuses anything that could leave it.
    func components(_ path: String) throws(Failure) -> [String] {
        // C strings end at a NUL: openat would see "..\0x" as "..", past every check below.
        if path.utf8.contains(0) { throw Failure("the path contains a NUL character; paths cannot") }
        var rel = path
        if rel.hasPrefix(displayRoot + "/") {
            rel = String(rel.dropFirst(displayRoot.count + 1))
        } else if rel == displayRoot {
            rel = ""
        } else if rel.hasPrefix("/") {
            throw Failure("\(path) is outside \(displayRoot); every path must be inside the repository")
        }
        let parts = rel.split(separator: "/").map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw Failure("\(path): '..' is not allowed in paths") }
        if parts.first == ".git" { throw Failure("\(path): the .git directory is not editable") }
        return parts
    }

    /// The path as the agent sees it (`/workspace/src/a.swift`), for messages.
    package func displayPath(_ path: String) -> String {
        guard let parts = try? components(path) else { return VisibleText.render(Array(path.utf8)[...], keepNewlines: false) }
        return parts.isEmpty ? displayRoot : displayRoot + "/" + parts.joined(separator: "/")
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
                if code == ENOENT { throw Failure("no directory \(part) on the way to the path; it does not exist", .notFound) }
                throw Failure(
                    code == ELOOP || code == ENOTDIR
                        ? "\(part) is a symlink or not a directory; symlinks are not followed"
                        : "\(part): \(String(cString: strerror(code)))")
            }
            fd = next
        }
        return fd
    }

    /// The file's bytes, exactly. Refuses symlinks, non-regular files and files over `limit`.
    package func readBytes(_ path: String, limit: Int = maxReadBytes) throws(Failure) -> [UInt8] {
        let parts = try components(path)
        let shown = displayPath(path)
        guard let name = parts.last else { throw Failure("\(shown) is a directory") }
        let opened = Result { () throws(Failure) in try openParent(parts, create: false) }
        if case .failure(let failure) = opened, failure.kind == .notFound { throw Failure("\(shown) does not exist", .notFound) }
        let dir = try opened.get()
        defer { close(dir) }
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw Failure("\(shown) does not exist", .notFound) }
            throw Failure(code == ELOOP ? "\(shown) is a symlink; not followed" : "\(shown): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        if (st.st_mode & S_IFMT) == S_IFDIR { throw Failure("\(shown) is a directory") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw Failure("\(shown) is not a regular file") }
        guard Int(st.st_size) <= limit else { throw Failure("\(shown) is \(st.st_size) bytes", .tooLarge(Int(st.st_size))) }
        guard let bytes = try? readAll(fd, limit: limit + 1) else { throw Failure("cannot read \(shown)") }
        guard bytes.count <= limit else { throw Failure("\(shown) grew past \(limit) bytes while read", .tooLarge(bytes.count)) }
        return bytes
    }

    /// The file as UTF-8 text (refused when it is not).
    package func read(_ path: String, limit: Int = maxReadBytes) throws(Failure) -> String {
        let bytes = try readBytes(path, limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw Failure("\(displayPath(path)) is not UTF-8 text") }
        return text
    }

    package enum WriteMode: Sendable { case createNew, replaceExisting }

    /// Writes `bytes` as the file: `.createNew` refuses an existing path (O_EXCL, so also a
    /// symlink), creating missing directories; `.replaceExisting` truncates the file in place
    /// (its mode and links kept) and refuses a missing one.
    package func writeBytes(_ path: String, _ bytes: [UInt8], mode: WriteMode) throws(Failure) {
        let parts = try components(path)
        let shown = displayPath(path)
        guard let name = parts.last else { throw Failure("\(shown) is a directory") }
        let dir = try openParent(parts, create: mode == .createNew)
        defer { close(dir) }
        let flags = mode == .createNew ? O_CREAT | O_EXCL : O_TRUNC
        let fd = openat(dir, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | flags, 0o644)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw Failure("\(shown) already exists", .exists) }
            if code == ENOENT { throw Failure("\(shown) does not exist", .notFound) }
            throw Failure(code == ELOOP ? "\(shown) is a symlink; not followed" : "\(shown): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        do { try writeAll(fd, bytes) } catch { throw Failure("cannot write \(shown): \(error)") }
    }

    package func write(_ path: String, _ text: String) throws(Failure) {
        try writeBytes(path, Array(text.utf8), mode: exists(path) ? .replaceExisting : .createNew)
    }

    package func isDirectory(_ path: String) -> Bool {
        guard let parts = try? components(path) else { return false }
        guard let name = parts.last else { return true }
        guard let dir = try? openParent(parts, create: false) else { return false }
        defer { close(dir) }
        let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 { close(fd); return true }
        return false
    }

    package func exists(_ path: String) -> Bool {
        guard let parts = try? components(path), let name = parts.last,
            let dir = try? openParent(parts, create: false)
        else { return false }
        defer { close(dir) }
        var st = stat()
        return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// Paths in a directory, two levels deep like `find DIR -maxdepth 2`, hidden ones (and so
    /// .git) left out, directories marked with a final "/", names made visible (control
    /// characters, bytes that are not UTF-8); at most `maxEntries`, `truncated` says if more.
    package func list(_ path: String, maxEntries: Int = 1000) throws(Failure) -> (entries: [String], truncated: Bool) {
        let parts = try components(path)
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        for part in parts where fd >= 0 {
            let next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(fd)
            fd = next
        }
        guard fd >= 0 else { throw Failure("\(displayPath(path)) is not a directory") }
        defer { close(fd) }
        var out: [String] = []
        var truncated = false
        func walk(_ dirFD: Int32, _ prefix: String, _ depth: Int) {
            guard let dir = fdopendir(dup(dirFD)) else { return }
            var names: [[UInt8]] = []
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                if name.first == UInt8(ascii: ".") { continue }
                names.append(name)
            }
            closedir(dir)
            for name in names.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                if out.count >= maxEntries { truncated = true; return }
                let shown = prefix + VisibleText.render(name[...], keepNewlines: false)
                // The raw bytes, not the shown text, name the entry (a name need not be UTF-8).
                let sub = (name + [0]).withUnsafeBufferPointer {
                    $0.withMemoryRebound(to: CChar.self) { openat(dirFD, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                }
                if sub >= 0 {
                    out.append(shown + "/")
                    if depth < 2 { walk(sub, shown + "/", depth + 1) }
                    close(sub)
                } else {
                    out.append(shown)
                }
            }
        }
        walk(fd, "", 1)
        return (out, truncated)
    }
}
