// HTTPClient: the open file behind an HTTPFileBody, read by libcurl's read and seek callbacks.

#if canImport(Glibc)
import Glibc
#endif

/// Lives for one transfer on the calling thread, reached from C through an unretained pointer.
/// `pread` at an explicit position, so a rewind (libcurl resending on a stale keep-alive
/// connection) is a change of `position`, nothing more.
final class UploadSource {
    let fd: Int32
    let body: HTTPFileBody
    private(set) var position: Int64 = 0
    /// errno of a failed read, reported after the transfer.
    private(set) var readError: Int32 = 0

    init(_ body: HTTPFileBody) throws(HTTPError) {
        guard body.offset >= 0, body.length >= 0 else {
            throw .invalidRequest("file body \(body.path): offset and length must not be negative")
        }
        let fd = open(body.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw .invalidRequest("cannot open request body \(body.path): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, Int64(st.st_size) >= body.offset + body.length else {
            close(fd)
            throw .invalidRequest("request body \(body.path) is shorter than offset \(body.offset) + length \(body.length)")
        }
        self.fd = fd
        self.body = body
    }

    deinit { close(fd) }

    /// Fills `buffer` with the next bytes; 0 at the end; nil on a read error (the transfer aborts).
    func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int? {
        let remaining = body.length - position
        guard remaining > 0 else { return 0 }
        let wanted = Int(min(Int64(capacity), remaining))
        while true {
            let n = pread(fd, buffer, wanted, off_t(body.offset + position))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { readError = errno; return nil }
            if n == 0 { readError = EIO; return nil }  // the file shrank under us
            position += Int64(n)
            return n
        }
    }

    /// SEEK_SET only (what libcurl asks for when it rewinds).
    func seek(to offset: Int64, origin: Int32) -> Bool {
        guard origin == SEEK_SET, offset >= 0, offset <= body.length else { return false }
        position = offset
        return true
    }
}
