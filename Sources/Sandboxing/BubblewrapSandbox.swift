// Sandboxing: the bwrap sandbox: new user/pid/net/ipc/uts namespaces, uid 1000, read-only /usr, only /workspace writable.

import Foundation
import PatchdSystem

/// A run is one bwrap (about 5 ms to start) holding its namespaces, whose init starts each
/// command (`SandboxInit`). Inside: a fresh root with read-only /usr, a minimal /etc, a private
/// /tmp (tmpfs, charged to the run's memory cgroup), /proc and /dev, HOME=/home/agent (the
/// run's scratch `home`, writable), the workspace at /workspace, the repository objects
/// read-only at /patchd/objects, the daemon's sockets read-only at /patchd/bridge, no
/// network, no capabilities, a clean environment. The run's cgroup caps processes, memory and
/// CPU for all its commands together; rlimits (file size, core) bind every process.
package struct BubblewrapSandbox: Sandbox {
    package let name = "bwrap"
    package let workspacePath = "/workspace"
    let bwrap: String

    /// - Parameter bwrap: the bwrap program; nil finds it in PATH (`Executable.find`), else /usr/bin/bwrap.
    package init(bwrap: String? = nil) { self.bwrap = bwrap ?? (try? Executable.find("bwrap")) ?? "/usr/bin/bwrap" }

    package func objectsPath(_ mounts: SandboxMounts) -> String { "/patchd/objects" }
    package func path(of bind: SandboxBind) -> String { bind.inside }
    package var hasPrivateNetwork: Bool { true }
    package func supportsOverlays(scratch: String) -> Bool { SandboxOverlay.available(scratch: scratch) }

    /// Read-only bits of the host /etc that ordinary tools need (dynamic linker cache,
    /// Debian alternatives such as awk, TLS roots, time zone). Nothing with secrets.
    static let etcEntries = [
        "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates",
        "localtime", "mime.types", "os-release", "debian_version", "nsswitch.conf", "protocols",
        "services", "bash.bashrc", "profile", "inputrc", "python3",
    ]

    /// The binds every run sandbox has besides the workspace and objects: HOME, the control
    /// directory (read-only), the bridge directory (read-only: the daemon's sockets cannot be
    /// replaced from inside), then the agent's.
    static func runBinds(_ mounts: SandboxMounts) throws -> [SandboxBind] {
        let home = RunSandboxPaths.home(mounts), control = RunSandboxPaths.control(mounts), bridge = RunSandboxPaths.bridge(mounts)
        for dir in [home, control, bridge] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        _ = chmod(control, 0o700)
        return [
            SandboxBind(host: home, inside: RunSandboxPaths.homeInside, writable: true),
            SandboxBind(host: control, inside: RunSandboxPaths.controlInside, writable: false),
            SandboxBind(host: bridge, inside: RunSandboxPaths.bridgeInside, writable: false),
        ] + mounts.extra
    }

    func arguments(mounts: SandboxMounts, binds: [SandboxBind]) throws -> [String] {
        let etc = try Self.writeIdentityFiles(in: mounts.scratch)
        var args = [
            "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000", "--hostname", "patchd",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--dir", "/etc", "--dir", "/home",
            "--ro-bind", etc + "/passwd", "/etc/passwd", "--ro-bind", etc + "/group", "/etc/group",
            "--ro-bind", etc + "/hosts", "/etc/hosts",
        ]
        for entry in Self.etcEntries where FileManager.default.fileExists(atPath: "/etc/\(entry)") {
            args += ["--ro-bind", "/etc/\(entry)", "/etc/\(entry)"]
        }
        args += [
            "--ro-bind", mounts.repositoryObjects, "/patchd/objects",
            "--bind", mounts.workspace, "/workspace", "--chdir", "/workspace",
        ]
        for bind in binds {
            args += [bind.writable ? "--bind" : "--ro-bind", bind.host, bind.inside]
        }
        args += ["--setenv", "PATH", SandboxEnvironment.path]
        args += ["--"] + SandboxInit.command(controlInside: RunSandboxPaths.controlInside)
        return args
    }

    /// passwd/group naming uid 1000 "agent" (home /home/agent), so tools that look themselves up work.
    static func writeIdentityFiles(in scratch: String) throws -> String {
        let dir = scratch + "/etc"
        if !FileManager.default.fileExists(atPath: dir + "/passwd") {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try
                "root:x:0:0:root:/root:/bin/bash\nagent:x:1000:1000:patchd agent:/home/agent:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .write(toFile: dir + "/passwd", atomically: true, encoding: .utf8)
            try "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n".write(toFile: dir + "/group", atomically: true, encoding: .utf8)
            try "127.0.0.1 localhost patchd\n::1 localhost\n".write(toFile: dir + "/hosts", atomically: true, encoding: .utf8)
        }
        return dir
    }

    package func open(mounts: SandboxMounts, limits: SandboxLimits, cancel: CancellationFlag) throws -> RunSandbox {
        let binds = try Self.runBinds(mounts)
        var argv = [bwrap] + (try arguments(mounts: mounts, binds: binds))
        if !mounts.overlays.isEmpty { argv = try SandboxOverlay.wrap(argv, overlays: mounts.overlays) }
        let confined = LimitedProcess.confine(argv, limits: limits, cgroupName: "run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let cgroup = confined.cgroup
        let backend = InitBackend(
            argv: confined.argv, environment: [:], workingDirectory: nil,
            probe: { cgroup.map { g in CommandDeltaProbe(forks: { g.forkRefusals }, ooms: { g.oomKills }) } },
            cleanup: { cgroup?.killAll() })
        return try InitRunSandbox(
            backend: backend, mounts: mounts, declared: binds,
            baseEnvironment: SandboxEnvironment.base(home: RunSandboxPaths.homeInside).merging(mounts.environment) { _, run in run },
            cancel: cancel)
    }
}

/// `--sandbox none`: no isolation at all, only the limits and a clean environment. Chosen
/// explicitly; the server warns at start.
package struct UnsandboxedSandbox: Sandbox {
    package let name = "none"
    package var workspacePath: String { "." }
    package init() {}

    package func objectsPath(_ mounts: SandboxMounts) -> String { mounts.repositoryObjects }
    package func path(of bind: SandboxBind) -> String { bind.host }
    package var hasPrivateNetwork: Bool { false }

    package func open(mounts: SandboxMounts, limits: SandboxLimits, cancel: CancellationFlag) throws -> RunSandbox {
        try DirectRunSandbox(mounts: mounts, limits: limits, cancel: cancel)
    }
}

/// The environment every sandboxed command starts from: nothing of the daemon's.
package enum SandboxEnvironment {
    package static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    package static func base(home: String) -> [String: String] {
        [
            "PATH": path,
            "HOME": home, "USER": "agent", "LOGNAME": "agent", "LANG": "C.UTF-8", "TERM": "dumb",
            "CI": "true", "PATCHD": "1",
            "GIT_AUTHOR_NAME": "patchd agent", "GIT_AUTHOR_EMAIL": "agent@patchd.invalid",
            "GIT_COMMITTER_NAME": "patchd agent", "GIT_COMMITTER_EMAIL": "agent@patchd.invalid",
            "GIT_CONFIG_NOSYSTEM": "1",
        ]
    }
}
