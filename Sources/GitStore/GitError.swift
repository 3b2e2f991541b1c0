// GitStore: libgit2 errors, captured on the calling thread right after the failing call.

import CLibGit2

/// A failed libgit2 call with libgit2's own message.
package struct GitError: Error, CustomStringConvertible, Sendable {
    package let code: Int32
    package let operation: String
    package let message: String

    package var description: String { "\(operation): \(message)" }
}

/// Every libgit2 call goes through here: the error is thread-local in libgit2, so it
/// is read at once, on the same thread.
@discardableResult
func git(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(GitError) -> Int32 {
    let rc = call()
    guard rc < 0 else { return rc }
    let message = git_error_last().map { String(cString: $0.pointee.message) } ?? "error \(rc)"
    throw GitError(code: rc, operation: operation(), message: message)
}

/// libgit2 process-wide setup, done once: init, and no user or system config is ever read.
package enum LibGit2 {
    private static let initialized: Bool = {
        git_libgit2_init()
        // Never read the daemon user's ~/.gitconfig or /etc/gitconfig: only each repository's own.
        _ = patchd_git_isolate_config()
        return true
    }()

    package static func initialize() {
        _ = initialized
    }
}

extension LibGit2 {
    package static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        git_libgit2_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
