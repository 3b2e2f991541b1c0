// PatchdCore: the shapes of what patchd tells users and child processes: the error line, git's environment.

/// How every error reaches a user: on stderr, `patchd: error: WHAT`, then how to fix it.
package enum ErrorLine {
    package static let prefix = "patchd: error: "
    /// `patchd: error: MESSAGE` and a newline.
    package static func format(_ message: String) -> String { prefix + message + "\n" }
}

/// The environment of every git process patchd starts: nothing from the daemon's own, patchd's
/// HOME (DATA/home, empty), no system or global config, a fixed PATH and locale.
package enum GitEnvironment {
    package static func make(home: String, extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "LANG": "C.UTF-8",
        ]
        env.merge(extra) { _, new in new }
        return env
    }
}
