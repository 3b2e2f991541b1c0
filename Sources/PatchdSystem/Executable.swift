// PatchdSystem: finding a program the daemon runs (git, bwrap, prlimit, claude, podman) the way a shell would.

#if canImport(Glibc)
import Glibc
#endif

/// The one executable lookup: every program patchd starts by name is found here.
package enum Executable {
    /// A program that was not found, or is not executable. `description` says how to fix it.
    package struct NotFound: Error, CustomStringConvertible, Sendable, Equatable {
        package let name: String
        /// The directories searched, in order (empty for an absolute path).
        package let searched: [String]
        package var description: String {
            searched.isEmpty
                ? "\(name) is not an executable file; check the path"
                : "'\(name)' not found in PATH (\(searched.joined(separator: ":"))); install it or give its absolute path"
        }
    }

    /// Where the daemon looks when PATH names nothing: the usual places on Debian.
    package static let defaultPath = "/usr/local/bin:/usr/bin:/bin"

    /// The absolute path of `name`, as `execvp` would pick it: a name containing `/` is used as it
    /// is (it must be executable); otherwise each directory of `path` is tried in order, then those
    /// of `defaultPath` not already tried. Empty entries and relative directories are skipped (a
    /// daemon's working directory is no place to find programs).
    /// - Parameter path: a PATH value; nil reads the process's own.
    /// - Throws: `NotFound` naming what was searched.
    package static func find(_ name: String, path: String? = nil) throws(NotFound) -> String {
        guard !name.isEmpty else { throw NotFound(name: name, searched: []) }
        if name.contains("/") {
            guard isExecutableFile(name) else { throw NotFound(name: name, searched: []) }
            return name
        }
        let value = path ?? getenv("PATH").map { String(cString: $0) } ?? ""
        var searched: [String] = []
        for entry in (value + ":" + defaultPath).split(separator: ":", omittingEmptySubsequences: true) {
            let directory = String(entry)
            guard directory.hasPrefix("/"), !searched.contains(directory) else { continue }
            searched.append(directory)
            let candidate = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            if isExecutableFile(candidate) { return candidate }
        }
        throw NotFound(name: name, searched: searched)
    }

    /// A regular file (after symlinks) that this process may execute.
    static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }
}
