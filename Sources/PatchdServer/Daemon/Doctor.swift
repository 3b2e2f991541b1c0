// PatchdServer: `patchd doctor`: one line per check of what a deployment needs; failing checks make it exit 1.

import Agents
import Egress
import Foundation
import GRDB
import GitStore
import Logging
import Offsite
import PatchdCore
import PatchdSystem
import Runs
import SSHServer
import Sandboxing

#if canImport(Glibc)
import Glibc
#endif

package struct Doctor {
    package struct Check: Sendable {
        package enum Status: String, Sendable { case ok, warn, fail }
        package let name: String
        package let status: Status
        package let detail: String
    }

    package let configuration: PatchdConfiguration

    package init(configuration: PatchdConfiguration) { self.configuration = configuration }

    package func run() -> [Check] {
        var checks: [Check] = []
        checks.append(Check(name: "libssh", status: .ok, detail: libsshVersion))
        checks.append(Check(name: "libgit2", status: .ok, detail: LibGit2.version))
        checks.append(executableCheck("git", arguments: ["--version"]))
        checks.append(
            (try? PatchdDaemon.findExecutable("ssh-keygen")).map { Check(name: "ssh-keygen", status: .ok, detail: $0) }
                ?? Check(name: "ssh-keygen", status: .warn, detail: "not found: `make run` uses it to create a key (apt-get install openssh-client)"))
        checks.append(bwrapCheck())
        if configuration.sandbox == "container" { checks.append(containerCheck()) }
        checks.append(dataDirCheck())
        if let cgroup = ProcessCgroup.root {
            checks.append(Check(name: "process limit", status: .ok, detail: "pids cgroup at \(cgroup)"))
        } else {
            checks.append(
                Check(
                    name: "process limit", status: getuid() == 0 ? .warn : .ok,
                    detail: getuid() == 0
                        ? "no writable pids cgroup and running as root: RLIMIT_NPROC does not bind root, so a fork bomb is stopped only by the time limit; delegate a cgroup or run as a normal user"
                        : "RLIMIT_NPROC only (no writable pids cgroup): it counts every process of this user, daemon threads and all runs together, so set max_processes with room for them"
                ))
        }
        if let memory = ProcessCgroup.memoryRoot {
            checks.append(
                Check(
                    name: "memory limit", status: .ok,
                    detail:
                        "memory cgroup at \(memory): max_memory_bytes caps each command's processes together, and an OOM kill is reported as limit memory"
                ))
        } else {
            checks.append(
                Check(
                    name: "memory limit", status: .ok,
                    detail:
                        "RLIMIT_AS per process (no writable memory cgroup): an allocation past max_memory_bytes fails, and is not reported as a limit"
                ))
        }
        if let cpus = configuration.maxCPUs {
            let capped = ProcessCgroup.cpuRoot != nil || configuration.sandbox == "container"
            checks.append(
                Check(
                    name: "cpu limit", status: capped ? .ok : .warn,
                    detail: capped
                        ? "max_cpus \(cpus): "
                            + (configuration.sandbox == "container" ? "the engine's --cpus" : "cpu cgroup at \(ProcessCgroup.cpuRoot ?? "")")
                        : "max_cpus \(cpus) is set but no writable cpu cgroup exists: commands are not capped (run as root with a writable /sys/fs/cgroup, or use --sandbox container)"
                ))
        }
        checks.append(executableCheck("prlimit", arguments: ["--version"]))
        checks.append(diskSpaceCheck())
        checks.append(hostKeyCheck())
        checks.append(databaseCheck())
        checks.append(listenCheck())
        checks.append(offsiteCheck())
        checks.append(egressCheck())
        checks.append(environmentCacheCheck())
        checks.append(
            (try? Executable.find("age")).map { Check(name: "age", status: .ok, detail: "\($0) (repository secrets are encrypted with it)") }
                ?? Check(
                    name: "age", status: .warn,
                    detail: "not found: `repo secret set` fails and runs get no secrets (apt-get install age)"))
        if (try? PatchdDaemon.findExecutable("socat")) == nil {
            checks.append(
                Check(
                    name: "socat", status: .warn,
                    detail: "not found: the claude-code and codex agents need it for their API bridge (apt-get install socat)"))
        } else {
            checks.append(Check(name: "socat", status: .ok, detail: "found (the CLI agents' API bridge, the runs' egress bridge)"))
        }
        for (name, path, setting) in [("claude", configuration.claudePath, "claude_path"), ("codex", configuration.codexPath, "codex_path")] {
            if let found = try? PatchdDaemon.findExecutable(path) {
                checks.append(Check(name: name, status: .ok, detail: found))
            } else {
                checks.append(
                    Check(
                        name: name, status: .warn,
                        detail: "'\(path)' not found: install it (scripts/install-agent-clis.sh, or see the README) or set \(setting)"))
            }
        }
        checks += agentChecks()
        return checks
    }

    /// One line per agent: offered (how) or not (why, and the fix), as the daemon would decide
    /// with this configuration and environment, and as the push hooks enforce.
    func agentChecks(environment: [String: String] = ProcessInfo.processInfo.environment) -> [Check] {
        var quiet = Logger(label: "patchd-doctor")
        quiet.logLevel = .critical
        let availability = PatchdDaemon.agents(configuration, environment: environment, logger: quiet).availability
        return availability.entries.map { entry in
            let name = "agent \(entry.kind.rawValue)" + (entry.kind.rawValue == configuration.defaultAgent ? " (default)" : "")
            return Check(
                name: name, status: entry.offered ? .ok : .warn,
                detail: (entry.offered ? "offered: " : "not offered: ") + entry.detail)
        }
    }

    var dataDirPath: String { URL(fileURLWithPath: configuration.dataDir).standardizedFileURL.path }

    /// `offsite:`: the store is reached, the credentials accepted, a probe object written, read
    /// back and removed; and the replication lag the daemon recorded in DATA/offsite.sqlite.
    func offsiteCheck() -> Check {
        guard let offsite = configuration.offsite else {
            return Check(name: "offsite", status: .ok, detail: "off (no offsite: in the config): nothing leaves this disk but `patchd backup` copies")
        }
        let lag =
            OffsiteProbe.lag(dataDir: dataDirPath).map { status in
                "; replication lag \(Int(status.lagSeconds)) s, \(status.pending) pending, \(status.failing) failing"
                    + (status.lastError.map { " (last error: \($0.prefix(200)))" } ?? "")
            } ?? "; nothing replicated from this data dir yet"
        do {
            let probe = try OffsiteProbe.writeReadDelete(offsite)
            let behind = (OffsiteProbe.lag(dataDir: dataDirPath)?.lagSeconds ?? 0) >= offsite.lagWarnSeconds
            return Check(name: "offsite", status: behind ? .warn : .ok, detail: probe + lag)
        } catch {
            return Check(name: "offsite", status: .fail, detail: "\(error)" + lag)
        }
    }

    func diskSpaceCheck() -> Check {
        var dir = dataDirPath
        while !FileManager.default.fileExists(atPath: dir) { dir = (dir as NSString).deletingLastPathComponent }
        guard let attrs = try? FileManager.default.attributesOfFileSystem(forPath: dir),
            let free = (attrs[.systemFreeSize] as? NSNumber)?.int64Value
        else {
            return Check(name: "disk", status: .warn, detail: "cannot read free space of \(dir)")
        }
        let gib = Double(free) / Double(1 << 30)
        return Check(
            name: "disk", status: gib < 1 ? .warn : .ok,
            detail: String(format: "%.1f GiB free for %@%@", gib, dir, gib < 1 ? " (pushes and runs fail when it fills)" : ""))
    }

    func hostKeyCheck() -> Check {
        let path = DataLayout(root: dataDirPath).hostKeys[0]
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path) else {
            return Check(name: "host keys", status: .ok, detail: "none yet: generated at the first start")
        }
        let mode = (attrs[.posixPermissions] as? Int ?? 0) & 0o777
        return mode & 0o077 == 0
            ? Check(name: "host keys", status: .ok, detail: "\(path) mode \(String(mode, radix: 8))")
            : Check(name: "host keys", status: .fail, detail: "\(path) is mode \(String(mode, radix: 8)); others can read the key: chmod 600 it")
    }

    func databaseCheck() -> Check {
        let path = DataLayout(root: dataDirPath).database
        guard FileManager.default.fileExists(atPath: path) else {
            return Check(name: "database", status: .ok, detail: "none yet: created at the first start")
        }
        do {
            let db = try PatchdDatabase(path: path)
            let result = try db.pool.read { try String.fetchOne($0, sql: "PRAGMA quick_check") } ?? "?"
            return Check(
                name: "database", status: result == "ok" ? .ok : .fail,
                detail: result == "ok" ? "\(path): integrity ok, migrations applied" : "\(path): \(result); restore from a backup")
        } catch {
            return Check(name: "database", status: .fail, detail: "\(path): \(error)")
        }
    }

    func listenCheck() -> Check {
        guard let address = try? configuration.listenAddress() else {
            return Check(name: "listen", status: .fail, detail: "invalid listen address '\(configuration.listen)'")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(address.port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(address.host == "localhost" ? "127.0.0.1" : address.host)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 || address.host.contains(":") {
            return Check(name: "listen", status: .ok, detail: "\(configuration.listen) can be bound")
        }
        return Check(
            name: "listen", status: .warn, detail: "\(configuration.listen): \(String(cString: strerror(errno))) (a running patchd holds it?)")
    }

    func executableCheck(_ name: String, arguments: [String]) -> Check {
        guard let path = try? PatchdDaemon.findExecutable(name) else {
            return Check(name: name, status: .fail, detail: "not found in PATH; run 'make deps' or apt-get install it")
        }
        guard let result = try? runProcess(path, arguments, environment: ["PATH": "/usr/bin:/bin"]) else {
            return Check(name: name, status: .fail, detail: "\(path) does not run")
        }
        let text =
            String(decoding: result.stdout.isEmpty ? result.stderr : result.stdout, as: UTF8.self)
            .split(separator: "\n").first.map(String.init) ?? ""
        return Check(name: name, status: result.status == 0 ? .ok : .fail, detail: "\(path) \(text)")
    }

    /// Starts a sandbox exactly as a run does (`BubblewrapSandbox.execute`: prlimit, the
    /// pids cgroup, every bwrap option), in a scratch directory, and checks who it runs as.
    func bwrapCheck() -> Check {
        let failStatus: Check.Status = configuration.sandbox == "bwrap" ? .fail : .warn
        guard let path = try? PatchdDaemon.findExecutable("bwrap") else {
            return Check(
                name: "bwrap", status: failStatus,
                detail: "not found; apt-get install bubblewrap, or run with --sandbox none (no isolation)")
        }
        do {
            let (result, lines) = try Self.probe(BubblewrapSandbox(bwrap: path), script: "id -u", seconds: 20)
            if result.succeeded && lines == ["1000"] {
                return Check(name: "bwrap", status: .ok, detail: "\(path): a run's sandbox starts (uid 1000, no network)")
            }
            return Check(
                name: "bwrap", status: failStatus,
                detail:
                    "\(path) cannot start a run's sandbox here: \(lines.joined(separator: " ")) (exit \(result.exitStatus); unprivileged user namespaces may be off: sysctl kernel.unprivileged_userns_clone=1)"
            )
        } catch {
            return Check(name: "bwrap", status: failStatus, detail: "\(path) cannot be started: \(error)")
        }
    }

    /// Starts a command in the configured image exactly as a run does (`ContainerSandbox.execute`)
    /// and checks who it runs as; a failure names the usual causes.
    func containerCheck() -> Check {
        let sandbox: ContainerSandbox
        do {
            sandbox = try ContainerSandbox(
                engine: ContainerEngine.find(configuration.containerEngine),
                image: configuration.containerImage, extraOptions: configuration.containerOptions,
                owner: "patchd-doctor")
        } catch {
            return Check(name: "container", status: .fail, detail: "\(error)")
        }
        do {
            let (result, lines) = try Self.probe(sandbox, script: "id -u && touch /workspace/.patchd-doctor", seconds: 60)
            let expected = geteuid() == 0 ? "1000" : String(geteuid())
            if result.succeeded && lines == [expected] {
                return Check(
                    name: "container", status: .ok,
                    detail: "\(sandbox.engine.executable) runs \(sandbox.image) as a run's sandbox (uid \(expected), no network)")
            }
            let text = lines.joined(separator: " ")
            return Check(
                name: "container", status: .fail,
                detail:
                    "\(sandbox.engine.executable) cannot start a run's sandbox from \(sandbox.image): \(text.prefix(400)) (exit \(result.exitStatus))\(Self.containerHint(text))"
            )
        } catch {
            // Since one sandbox serves a whole run, the engine's own refusal (a missing image, say)
            // comes back as the error of opening it.
            let text = "\(error)"
            return Check(
                name: "container", status: .fail, detail: "\(sandbox.engine.executable) cannot be started: \(text)\(Self.containerHint(text))")
        }
    }

    /// Starts the egress proxy as a run would (squid with the server's allowlist) and stops it.
    func egressCheck() -> Check {
        let egress = configuration.egress
        guard egress.cap != .none else { return Check(name: "egress", status: .ok, detail: "network: none: runs never connect") }
        let policy: EgressPolicy
        do {
            policy = try EgressPolicy.parse(egress.allowedDomains, source: "allowed_domains")
        } catch {
            return Check(name: "egress", status: .fail, detail: "\(error)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("patchd-doctor-egress-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let proxy = try EgressProxy(policy: policy, directory: directory, hostsFile: egress.hostsFile)
            let seconds = proxy.startupSeconds
            proxy.stop(grace: 0.2)
            return Check(
                name: "egress", status: .ok,
                detail:
                    "squid starts in \(Int(seconds * 1000)) ms; runs may connect up to network: \(egress.cap.rawValue), to \(policy.entries.count) hosts"
            )
        } catch {
            return Check(
                name: "egress", status: .fail,
                detail:
                    "\(error): runs whose network setting allows a phase to connect will run it offline (apt-get install squid, or set network: none)"
            )
        }
    }

    /// How a cached environment will be restored: overlays (copy-on-write, costs nothing per
    /// file) where a user namespace may mount them, else a copy.
    func environmentCacheCheck() -> Check {
        guard configuration.environmentCache.enabled else { return Check(name: "environment cache", status: .ok, detail: "off") }
        guard configuration.sandbox == "bwrap" else {
            return Check(
                name: "environment cache", status: .ok,
                detail: "sandbox \(configuration.sandbox): restored by copying (cp --reflink=auto; copy-on-write only on btrfs or xfs)")
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("patchd-doctor-overlay-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        if BubblewrapSandbox().supportsOverlays(scratch: scratch) {
            return Check(name: "environment cache", status: .ok, detail: "restored through overlayfs in the run's user namespace (no copy)")
        }
        return Check(
            name: "environment cache", status: .warn,
            detail:
                "overlayfs cannot be mounted in a user namespace here (unshare --user --map-root-user --mount and a kernel >= 5.11 are needed): "
                + "a cache hit copies the environment (cp --reflink=auto), which costs its size in time")
    }

    /// What to do about the container engine errors seen in practice.
    static func containerHint(_ text: String) -> String {
        if text.contains("cgroups in hybrid mode not supported") {
            return "; crun does not support this host's hybrid cgroups: install runc and set container_options: [\"--runtime\", \"runc\"]"
        }
        if text.contains("image not known") || text.contains("No such image") || text.contains("Unable to find image")
            || text.contains("pull access denied")
            || text.contains("manifest unknown") || text.contains("initializing source")
        {
            return
                "; build the image first: podman build -t localhost/patchd-sandbox -f container/Containerfile.sandbox container/ (or set container_image)"
        }
        if text.contains("Resource limits are not supported and ignored") {
            return
                "; rootless podman on cgroup v1 cannot apply --pids-limit, --memory or --cpus, so runs would have no process, memory or CPU cap: use cgroup v2 with delegation (systemd.unified_cgroup_hierarchy=1), or run patchd as root"
        }
        if text.contains("setrlimit") || text.contains("rlimit") {
            return "; the engine's default ulimits exceed this host's: lower default_ulimits in containers.conf"
        }
        return ""
    }

    /// Runs `script` in `sandbox` the way a run would, against an empty scratch workspace
    /// that is removed afterwards; returns the result and the output lines.
    static func probe(_ sandbox: Sandbox, script: String, seconds: Double) throws -> (SandboxResult, [String]) {
        let scratch = NSTemporaryDirectory() + "/patchd-doctor-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let mounts = SandboxMounts(workspace: scratch + "/workspace", repositoryObjects: scratch + "/objects", scratch: scratch)
        try FileManager.default.createDirectory(atPath: mounts.workspace, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: mounts.repositoryObjects, withIntermediateDirectories: true)
        var limits = SandboxLimits()
        limits.wallClockSeconds = seconds
        let output = LinesBox()
        let result = try sandbox.execute(
            script: script, environment: [:], mounts: mounts, limits: limits,
            cancel: CancellationFlag()
        ) { output.lines.append($0) }
        return (result, output.lines)
    }

    /// Collects the sandbox's output lines (the callback runs on this thread).
    private final class LinesBox {
        var lines: [String] = []
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

package enum PatchdVersion {
    package static let current = "0.1.0"
}
