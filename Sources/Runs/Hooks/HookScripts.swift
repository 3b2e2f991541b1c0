// Runs: the hook scripts patchd installs in every bare repository (the files in hooks/ are copies).

/// The scripts only hand over to `patchd hook NAME`; patchd rewrites them at every start.
/// `PATCHD_EXECUTABLE` is set by the server for the git processes it spawns, so a push
/// that does not come through patchd (a local `git push` into the data dir) is refused.
package enum HookScripts {
    package static let names = ["pre-receive", "post-receive"]

    package static func script(_ name: String) -> String {
        """
        #!/bin/sh
        # Installed by patchd in every repository and rewritten at each start: do not edit.
        # It hands the hook to the running patchd (see docs/ARCHITECTURE.md, "Hooks").
        if [ -z "$PATCHD_EXECUTABLE" ]; then
            echo "patchd: error: this repository is served by patchd; push through its SSH server" >&2
            exit 1
        fi
        exec "$PATCHD_EXECUTABLE" hook \(name)

        """
    }
}
