// Sandboxing: copy-on-write views of a cached environment: kernel overlayfs mounted in a private user and mount namespace just before bwrap starts.

import Foundation
import PatchdSystem
import Synchronization

/// One copy-on-write view: `lower` is read and never written (a cache entry other runs may use
/// at the same time), this run's writes land in `upper`, and the merged view is mounted at
/// `target` — only inside the namespace the sandbox starts in, so nothing is mounted on the host,
/// nothing leaks when the daemon dies, and the kernel unmounts it when the sandbox ends. A bind
/// in `SandboxMounts.extra` from `target` makes it visible to commands.
package struct SandboxOverlay: Sendable, Equatable {
    package let lower: String
    package let upper: String
    package let work: String
    package let target: String

    package init(lower: String, upper: String, work: String, target: String) {
        self.lower = lower
        self.upper = upper
        self.work = work
        self.target = target
    }

    /// The mount options; nil when a path has a character overlayfs cannot take in its option
    /// string (`,` `:` `\`), in which case the caller copies instead.
    var options: String? {
        for path in [lower, upper, work] where path.contains(where: { $0 == "," || $0 == ":" || $0 == "\\" }) { return nil }
        return "lowerdir=\(lower),upperdir=\(upper),workdir=\(work),userxattr"
    }

    /// The unshare program (util-linux), found once.
    static let unshare: String? = try? Executable.find("unshare")

    /// `argv` started inside a new user namespace (the daemon's uid as its root) and mount
    /// namespace where each overlay is mounted first. Unprivileged overlayfs in a user namespace
    /// has been allowed since Linux 5.11; bwrap then makes its own namespaces inside this one.
    static func wrap(_ argv: [String], overlays: [SandboxOverlay]) throws(SandboxSetupError) -> [String] {
        guard let unshare else { throw SandboxSetupError("overlay mounts need unshare (util-linux), which is not installed") }
        var args = [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private", "/bin/sh", "-c", mountScript, "patchd-overlay"]
        for overlay in overlays {
            guard let options = overlay.options else { throw SandboxSetupError("overlay paths cannot contain ',', ':' or '\\': \(overlay.lower)") }
            args += [options, overlay.target]
        }
        return args + ["--"] + argv
    }

    /// Mounts pairs of (options, target) until `--`, then execs the rest (so the program keeps this pid).
    static let mountScript = #"""
        while [ "$1" != "--" ]; do
          mount -t overlay overlay -o "$1" "$2" || { echo "patchd: cannot mount the cached environment at $2" >&2; exit 125; }
          shift 2
        done
        shift
        exec "$@"
        """#

    private static let probed = Mutex<Bool?>(nil)

    /// Whether overlay mounts work here (tried once, in `scratch`): unshare present, user
    /// namespaces allowed, overlayfs in the kernel and allowed inside a user namespace.
    package static func available(scratch: String) -> Bool {
        if let known = probed.withLock({ $0 }) { return known }
        let base = scratch + "/overlay-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        var works = false
        do {
            for dir in ["lower", "upper", "work", "merged"] {
                try FileManager.default.createDirectory(atPath: base + "/" + dir, withIntermediateDirectories: true)
            }
            try "x".write(toFile: base + "/lower/probe", atomically: false, encoding: .utf8)
            let overlay = SandboxOverlay(lower: base + "/lower", upper: base + "/upper", work: base + "/work", target: base + "/merged")
            let argv = try wrap(["/bin/sh", "-c", "cat \"$0\"/probe && echo y > \"$0\"/probe", base + "/merged"], overlays: [overlay])
            let r = try runProcess(argv[0], Array(argv.dropFirst()), environment: ["PATH": SandboxEnvironment.path])
            let lowerIntact = (try? String(contentsOfFile: base + "/lower/probe", encoding: .utf8)) == "x"
            works = r.status == 0 && String(decoding: r.stdout, as: UTF8.self) == "x" && lowerIntact
        } catch {
            works = false
        }
        probed.withLock { $0 = works }
        return works
    }
}

extension Sandbox {
    /// Whether `mounts.overlays` are honoured by `open`; false: the caller copies the cached files instead.
    package func supportsOverlays(scratch: String) -> Bool { false }
    /// The backend's name and the host's OS release (bwrap and none run the host's /usr).
    package var environmentIdentity: String {
        name + "\n" + ((try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? "")
    }
}
