// PatchdServer: `patchd doctor`: one line per check of what a deployment needs; failing checks make it exit 1.
import Foundation
import GitStore
import PatchdSystem
import Runs
import SSHServer

public struct Doctor {
    public struct Check: Sendable {
        public enum Status: String, Sendable { case ok, warn, fail }
        public let name: String
        public let status: Status
        public let detail: String
    }

    public let configuration: PatchdConfiguration

    public init(configuration: PatchdConfiguration) { self.configuration = configuration }

    public func run() -> [Check] {
        var checks: [Check] = []
        checks.append(Check(name: "libssh", status: .ok, detail: libsshVersion))
        checks.append(Check(name: "libgit2", status: .ok, detail: LibGit2.version))
        checks.append(executableCheck("git", arguments: ["--version"]))
        checks.append(executableCheck("ssh-keygen", arguments: ["-?"], anyStatus: true))
        checks.append(bwrapCheck())
        checks.append(dataDirCheck())
        if let cgroup = ProcessCgroup.root {
            checks.append(Check(name: "process limit", status: .ok, detail: "pids cgroup at \(cgroup)"))
        } else {
            checks.append(Check(name: "process limit", status: getuid() == 0 ? .warn : .ok,
                                detail: getuid() == 0 ? "no writable pids cgroup and running as root: RLIMIT_NPROC does not bind root, so a fork bomb is stopped only by the time limit; delegate a cgroup or run as a normal user"
                                                      : "RLIMIT_NPROC per sandbox (no writable pids cgroup)"))
        }
        let hasKey = !(ProcessInfo.processInfo.environment["ANTHROPIC_API_KEY"] ?? "").isEmpty
        checks.append(Check(name: "ANTHROPIC_API_KEY", status: hasKey ? .ok : .warn,
                            detail: hasKey ? "set" : "not set: the builtin and claude-code agents cannot run; the command agent can"))
        return checks
    }

    func executableCheck(_ name: String, arguments: [String], anyStatus: Bool = false) -> Check {
        guard let path = try? PatchdDaemon.findExecutable(name) else {
            return Check(name: name, status: .fail, detail: "not found in PATH; run 'make deps' or apt-get install it")
        }
        guard let result = try? runProcess(path, arguments, environment: ["PATH": "/usr/bin:/bin"]) else {
            return Check(name: name, status: .fail, detail: "\(path) does not run")
        }
        let text = String(decoding: result.stdout.isEmpty ? result.stderr : result.stdout, as: UTF8.self)
            .split(separator: "\n").first.map(String.init) ?? ""
        return Check(name: name, status: (result.status == 0 || anyStatus) ? .ok : .fail, detail: "\(path) \(text)")
    }

    /// Starts a real sandbox the way runs will: user namespace, uid 1000, no network.
    func bwrapCheck() -> Check {
        guard let path = try? PatchdDaemon.findExecutable("bwrap") else {
            return Check(name: "bwrap", status: configuration.sandbox == "bwrap" ? .fail : .warn,
                         detail: "not found; apt-get install bubblewrap, or run with --sandbox none (no isolation)")
        }
        let args = ["--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL",
                    "--die-with-parent", "--new-session", "--clearenv", "--ro-bind", "/usr", "/usr",
                    "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                    "--proc", "/proc", "--dev", "/dev", "/usr/bin/id", "-u"]
        guard let result = try? runProcess(path, args, environment: [:]) else {
            return Check(name: "bwrap", status: .fail, detail: "\(path) cannot be started")
        }
        let out = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if result.status == 0 && out == "1000" {
            return Check(name: "bwrap", status: .ok, detail: "\(path): sandbox starts (uid 1000, no network)")
        }
        let err = String(decoding: result.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Check(name: "bwrap", status: configuration.sandbox == "bwrap" ? .fail : .warn,
                     detail: "\(path) cannot create a sandbox here: \(err) (unprivileged user namespaces may be off: sysctl kernel.unprivileged_userns_clone=1)")
    }

    func dataDirCheck() -> Check {
        let dir = URL(fileURLWithPath: configuration.dataDir).standardizedFileURL.path
        let fm = FileManager.default
        if fm.fileExists(atPath: dir) {
            return fm.isWritableFile(atPath: dir)
                ? Check(name: "data dir", status: .ok, detail: "\(dir) writable")
                : Check(name: "data dir", status: .fail, detail: "\(dir) is not writable by this user")
        }
        let parent = (dir as NSString).deletingLastPathComponent
        return fm.isWritableFile(atPath: parent)
            ? Check(name: "data dir", status: .ok, detail: "\(dir) will be created")
            : Check(name: "data dir", status: .fail, detail: "\(dir) does not exist and \(parent) is not writable")
    }
}

public enum PatchdVersion {
    public static let current = "0.1.0"
}
