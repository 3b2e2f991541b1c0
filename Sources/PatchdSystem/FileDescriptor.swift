// PatchdSystem: an owned file descriptor (closed exactly once) and pipe helpers.

import CPatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// Owns one file descriptor: closes it on `close()` or at deinit, never twice.
/// Not Sendable: one thread owns it, as with every fd in the SSH pump.
package final class OwnedFD {
    package private(set) var raw: Int32

    package init(_ raw: Int32) { self.raw = raw }

    package var isOpen: Bool { raw >= 0 }

    /// Gives up ownership without closing (for fds handed to a child or to a C library).
    package func release() -> Int32 {
        let fd = raw
        raw = -1
        return fd
    }

    package func close() {
        if raw >= 0 { _ = Glibc.close(raw) }
        raw = -1
    }

    package func setNonBlocking() throws(SystemError) {
        let fd = raw
        let flags = try checked("fcntl") { fcntl(fd, F_GETFL) }
        try checked("fcntl") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    deinit { close() }
}

/// A pipe with both ends close-on-exec; the spawner dup2s the child's end into place.
package struct PipePair: ~Copyable {
    package let read: OwnedFD
    package let write: OwnedFD

    package init() throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        try checked("pipe2") { patchd_pipe2_cloexec(&fds) }
        read = OwnedFD(fds[0])
        write = OwnedFD(fds[1])
    }
}

/// Writes all of `bytes` to a blocking fd; EPIPE and friends surface as errors.
package func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
    var offset = 0
    while offset < bytes.count {
        let n = try checked("write") { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
        offset += n
    }
}

package func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
    var offset = 0
    while offset < bytes.count {
        let n = try checked("write") {
            bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
        }
        offset += n
    }
}

package func writeAll(_ fd: Int32, _ string: String) throws(SystemError) {
    try writeAll(fd, Array(string.utf8))
}

/// Reads a blocking fd to its end.
package func readAll(_ fd: Int32, limit: Int = .max) throws(SystemError) -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while out.count < limit {
        let n = try checked("read") { chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

/// A small file's contents as text, or nil if it cannot be opened or read. For the files
/// under /proc and /sys/fs/cgroup (whose size reads as 0) and other small files polled per
/// command: Foundation's `String(contentsOfFile:)` (Swift 6.3.1) leaks its 4 KiB read buffer
/// for a file that reports size 0 and turns out empty, as cgroup.procs is at the end of every
/// sandboxed command (found by LeakSanitizer, docs/SANITIZERS.md).
package func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { _ = Glibc.close(fd) }
    guard let bytes = try? readAll(fd) else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}
