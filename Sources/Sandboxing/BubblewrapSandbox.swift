// Sandboxing: the bwrap sandbox: new user/pid/net/ipc/uts namespaces, uid 1000, read-only /usr, only /workspace writable.

import Foundation
import PatchdSystem

/// Each command is one bwrap invocation (about 5 ms to start). Inside: a fresh root with
/// read-only /usr, a minimal /etc, private /tmp, /proc and /dev, the workspace at
/// /workspace (the only writable host path), the repository objects read-only at
/// /patchd/objects, no network, no capabilities, a clean environment.
package struct BubblewrapSandbox: Sandbox {
    package let name = "bwrap"
    package let workspacePath = "/workspace"
    let bwrap: String

    /// - Parameter bwrap: the bwrap program; nil finds it in PATH (`Executable.find`), else /usr/bin/bwrap.
    package init(bwrap: String? = nil) { self.bwrap = bwrap ?? (try? Executable.find("bwrap")) ?? "/usr/bin/bwrap" }

    package func objectsPath(_ mounts: SandboxMounts) -> String { "/patchd/objects" }
    package func path(of bind: SandboxBind) -> String { bind.inside }
    package var hasPrivateNetwork: Bool { true }

    /// Read-only bits of the host /etc that ordinary tools need (dynamic linker cache,
    /// Debian alternatives such as awk, TLS roots, time zone). Nothing with secrets.
    static let etcEntries = [
        "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates",
        "localtime", "mime.types", "os-release", "debian_version", "nsswitch.conf", "protocols",
        "services", "bash.bashrc", "profile", "inputrc", "python3",
    ]

    func arguments(script: String, environment: [String: String], mounts: SandboxMounts) throws -> [String] {
        let etc = try Self.writeIdentityFiles(in: mounts.scratch)
        var args = [
            "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000", "--hostname", "patchd",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--dir", "/etc",
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
        for bind in mounts.extra {
            args += [bind.writable ? "--bind" : "--ro-bind", bind.host, bind.inside]
        }
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) {
            args += ["--setenv", key, value]
        }
        args += ["--", "/bin/bash", "--noprofile", "--norc", "-c", script]
        return args
    }

    /// passwd/group naming uid 1000 "agent", so tools that look themselves up work.
    static func writeIdentityFiles(in scratch: String) throws -> String {
        let dir = scratch + "/etc"
        if !FileManager.default.fileExists(atPath: dir + "/passwd") {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try
                "root:x:0:0:root:/root:/bin/bash\nagent:x:1000:1000:patchd agent:/tmp:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .write(toFile: dir + "/passwd", atomically: true, encoding: .utf8)
            try "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n".write(toFile: dir + "/group", atomically: true, encoding: .utf8)
            try "127.0.0.1 localhost patchd\n::1 localhost\n".write(toFile: dir + "/hosts", atomically: true, encoding: .utf8)
        }
        return dir
    }

    package func execute(
        script: String, environment: [String: String], mounts: SandboxMounts, limits: SandboxLimits,
        cancel: CancellationFlag, onLine: (String) -> Void
    ) throws -> SandboxResult {
        let argv =
            [bwrap]
            + (try arguments(script: script, environment: SandboxEnvironment.base(home: "/tmp").merging(environment) { _, n in n }, mounts: mounts))
        return try LimitedProcess.run(
            argv: argv, environment: [:], workingDirectory: nil, limits: limits, cancel: cancel,
            confinement: .local(cgroupName: "sandbox-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"),
            workspace: mounts.workspace, onLine: onLine)
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

    package func execute(
        script: String, environment: [String: String], mounts: SandboxMounts, limits: SandboxLimits,
        cancel: CancellationFlag, onLine: (String) -> Void
    ) throws -> SandboxResult {
        let env = SandboxEnvironment.base(home: mounts.scratch).merging(environment) { _, n in n }
        return try LimitedProcess.run(
            argv: ["/bin/bash", "--noprofile", "--norc", "-c", script], environment: env,
            workingDirectory: mounts.workspace, limits: limits, cancel: cancel,
            confinement: .local(cgroupName: "none-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"),
            workspace: mounts.workspace, onLine: onLine)
    }
}

/// The environment every sandboxed command starts from: nothing of the daemon's.
package enum SandboxEnvironment {
    package static func base(home: String) -> [String: String] {
        [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": home, "USER": "agent", "LOGNAME": "agent", "LANG": "C.UTF-8", "TERM": "dumb",
            "CI": "true", "PATCHD": "1",
            "GIT_AUTHOR_NAME": "patchd agent", "GIT_AUTHOR_EMAIL": "agent@patchd.invalid",
            "GIT_COMMITTER_NAME": "patchd agent", "GIT_COMMITTER_EMAIL": "agent@patchd.invalid",
            "GIT_CONFIG_NOSYSTEM": "1",
        ]
    }
}
