// PatchdSystem: typed errors for failed system calls, carrying errno and its message.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which call, on what, and the C library's own message.
package struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    package let call: String
    package let errno: Int32
    package let context: String

    package init(_ call: String, errno: Int32, context: String = "") {
        self.call = call
        self.errno = errno
        self.context = context
    }

    package var message: String { String(cString: strerror(errno)) }

    package var description: String {
        context.isEmpty ? "\(call): \(message)" : "\(call) \(context): \(message)"
    }
}

/// Runs a system call that returns -1 on failure, retrying on EINTR, and throws the
/// typed error otherwise. The one place errno becomes a Swift error.
@discardableResult
package func checked<T: FixedWidthInteger>(
    _ name: String, _ context: @autoclosure () -> String = "",
    _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let rc = body()
        if rc != -1 { return rc }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(name, errno: code, context: context())
    }
}
