// GitStore: the workspace as checked out, before the agent ran, so the result snapshot re-hashes only changed files.

import CLibGit2
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// The stat data and blob id of every file `git reset --hard` checked out, taken from the
/// workspace's index while the workspace is still trusted (before any sandboxed command).
/// The agent may rewrite `.git/index` later; this copy is what the snapshot compares with.
///
/// A file counts as unchanged only if inode, device, size, mtime and ctime (to the
/// nanosecond) all match and its ctime is older than the index itself. ctime cannot be set
/// from user space and every write, chmod or rename moves it; the age test is git's "racy
/// git" rule: a file written in the same clock tick as the index could change again without
/// its timestamps moving, so such files are hashed like any other.
package struct WorkspaceBaseline: Sendable {
    struct Entry: Sendable {
        var ctime: (sec: Int64, nsec: Int64)
        var mtime: (sec: Int64, nsec: Int64)
        var dev: UInt32
        var ino: UInt32
        var size: UInt32
        var oid: [UInt8]
    }
    let entries: [[UInt8]: Entry]
    let indexTime: (sec: Int64, nsec: Int64)

    package var count: Int { entries.count }

    /// Reads `workspace/.git/index`; nil if there is none or it cannot be read (the snapshot
    /// then hashes every file, as without a baseline).
    package static func read(workspace: String) -> WorkspaceBaseline? {
        LibGit2.initialize()
        let path = workspace + "/.git/index"
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        let statted = fstat(fd, &st) == 0
        close(fd)
        guard statted, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var index: OpaquePointer?
        guard git_index_open(&index, path) == 0 else { return nil }
        defer { git_index_free(index) }
        var entries: [[UInt8]: Entry] = [:]
        for i in 0..<git_index_entrycount(index) {
            guard let e = git_index_get_byindex(index, i)?.pointee, let cPath = e.path else { continue }
            // Stage 0 only (a fresh checkout has no conflicts); regular files only.
            guard (UInt32(e.flags) >> 12) & 0x3 == 0, e.mode & 0o170000 == 0o100000 else { continue }
            let name = Array(UnsafeBufferPointer(start: UnsafeRawPointer(cPath).assumingMemoryBound(to: UInt8.self), count: strlen(cPath)))
            var oid = e.id
            let bytes = withUnsafeBytes(of: &oid.id) { Array($0) }
            entries[name] = Entry(
                ctime: (Int64(e.ctime.seconds), Int64(e.ctime.nanoseconds)),
                mtime: (Int64(e.mtime.seconds), Int64(e.mtime.nanoseconds)),
                dev: e.dev, ino: e.ino, size: e.file_size, oid: bytes)
        }
        return WorkspaceBaseline(entries: entries, indexTime: (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec)))
    }

    /// The blob id of `path` if the file `st` describes is still what was checked out.
    func unchangedBlob(_ path: [UInt8], _ st: stat) -> git_oid? {
        guard let e = entries[path], st.st_size >= 0, st.st_size <= Int(UInt32.max) else { return nil }
        let ctime = (Int64(st.st_ctim.tv_sec), Int64(st.st_ctim.tv_nsec))
        let mtime = (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec))
        guard e.ctime == ctime, e.mtime == mtime, e.ino == UInt32(truncatingIfNeeded: st.st_ino),
            e.dev == UInt32(truncatingIfNeeded: st.st_dev), e.size == UInt32(st.st_size),
            e.ctime < indexTime, e.mtime < indexTime
        else { return nil }
        var oid = git_oid()
        withUnsafeMutableBytes(of: &oid.id) { raw in
            for (i, byte) in e.oid.prefix(raw.count).enumerated() { raw[i] = byte }
        }
        return oid
    }
}
