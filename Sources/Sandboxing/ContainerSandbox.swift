// Sandboxing: the container sandbox: each command is one `podman run` (or `docker run`) of an image, no network, uid 1000.

import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// A container engine's command-line client. podman and docker take the same `run` flags
/// for everything used here; they differ in how a non-root caller maps users (see
/// `ContainerSandbox.identityArguments`).
package struct ContainerEngine: Sendable, Equatable {
    package enum Kind: String, Sendable { case podman, docker }
    package let kind: Kind
    /// Absolute path of the client binary.
    package let executable: String

    package init(kind: Kind, executable: String) {
        self.kind = kind
        self.executable = executable
    }

    /// `name` is "podman", "docker", or a path whose last component starts with one of those;
    /// empty picks podman if it is in PATH, else docker.
    package static func find(
        _ name: String, path: String? = nil
    )
        throws(SandboxSetupError) -> ContainerEngine
    {
        let candidates = name.isEmpty ? ["podman", "docker"] : [name]
        for candidate in candidates {
            let base = (candidate as NSString).lastPathComponent
            guard let kind = base.hasPrefix("podman") ? Kind.podman : base.hasPrefix("docker") ? Kind.docker : nil else {
                throw SandboxSetupError("container_engine '\(candidate)' is neither podman nor docker; name one of them or a path to its client")
            }
            if let executable = try? Executable.find(candidate, path: path) {
                return ContainerEngine(kind: kind, executable: executable)
            }
        }
        throw SandboxSetupError(
            name.isEmpty
                ? "--sandbox container needs podman or docker in PATH; install one (apt-get install podman) or set container_engine to its path"
                : "container engine '\(name)' not found or not executable; install it or set container_engine to its path")
    }
}

/// A sandbox backend could not be set up (engine missing, bad configuration).
package struct SandboxSetupError: Error, CustomStringConvertible {
    package let description: String
    package init(_ d: String) { description = d }
}

/// `--sandbox container`: every command is `ENGINE run` of the configured image, so tasks get
/// that image's tools (container/Containerfile.sandbox: Python, Node, build tools) instead of
/// the host's /usr. Inside: uid 1000, /workspace (the only writable host path), the repository
/// objects read-only at /patchd/objects, a read-only root, a private /tmp, no network, no
/// capabilities, no-new-privileges, and the run's limits as the engine's own flags (pids,
/// memory without swap, CPU, file size). Starting a container costs about 0.2 s against bwrap's
/// 5 ms (docs/PERFORMANCE.md); choose it for the richer image, not for speed.
///
/// Identity: with a root daemon the command runs as host uid 1000, so patchd hands the
/// workspace to uid 1000 before each command (files the daemon itself wrote, such as the
/// editor tool's, included). A non-root daemon maps the command to its own uid instead
/// (podman: --userns=keep-id), so no ownership changes.
package struct ContainerSandbox: Sandbox {
    package let name = "container"
    package let workspacePath = "/workspace"
    package let engine: ContainerEngine
    package let image: String
    package var environmentIdentity: String { name + "\n" + image }
    /// Extra `run` flags from the operator (e.g. `--runtime runc`), placed before the image.
    package let extraOptions: [String]
    /// Whose containers these are (the daemon's data directory): the value of the label, so a
    /// daemon cleaning up after a crash touches only its own, not another daemon's on the host.
    package let owner: String
    /// The uid/gid commands run as when the daemon is root.
    static let agentID: uid_t = 1000

    package init(engine: ContainerEngine, image: String, extraOptions: [String] = [], owner: String) throws(SandboxSetupError) {
        guard !image.isEmpty, !image.hasPrefix("-"), !image.contains(where: { $0.isWhitespace }) else {
            throw SandboxSetupError(
                "container_image '\(image)' is not an image reference; build one with container/Containerfile.sandbox and name it, e.g. localhost/patchd-sandbox"
            )
        }
        self.engine = engine
        self.image = image
        self.extraOptions = extraOptions
        self.owner = owner
    }

    package func objectsPath(_ mounts: SandboxMounts) -> String { "/patchd/objects" }
    package func path(of bind: SandboxBind) -> String { bind.inside }
    package var hasPrivateNetwork: Bool { true }

    /// Labels every container patchd starts (with `owner` as the value), so leftovers of a crashed daemon can be found.
    package static let label = "io.patchd.sandbox"

    /// The full `ENGINE run ...` argv of a run's container, whose program is `command`.
    func arguments(
        command: [String], environment: [String: String], mounts: SandboxMounts, limits: SandboxLimits,
        containerName: String, cidFile: String
    ) throws(SandboxSetupError) -> [String] {
        // --pull never: a run never downloads anything; the operator builds or pulls the image.
        // --rm: the engine removes the container when it ends; patchd removes it itself only
        // when it killed the client (timeout, cancel, output cap).
        var args = [
            engine.executable, "run", "--rm", "--interactive", "--pull", "never", "--name", containerName, "--cidfile", cidFile,
            "--label", "\(Self.label)=\(owner)",
            "--network", "none", "--hostname", "patchd",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777",
            "--pids-limit", String(limits.maxProcesses),
            "--memory", String(limits.maxMemoryBytes), "--memory-swap", String(limits.maxMemoryBytes),
            "--ulimit", "fsize=\(limits.maxFileBytes):\(limits.maxFileBytes)", "--ulimit", "core=0:0",
        ]
        if let cpus = limits.maxCPUs { args += ["--cpus", String(format: "%.3f", cpus)] }
        // The engines' default nofile/nproc limits can exceed what the daemon may grant (then
        // the OCI runtime fails to start the container): pass the daemon's own hard limits.
        // RLIMIT_NPROC is not the process cap here (--pids-limit is), so it is only bounded by
        // pid_max, which no count of processes can pass anyway (some kernels refuse more).
        for (name, resource, cap) in [("nofile", RLIMIT_NOFILE, rlim_t(1 << 20)), ("nproc", __RLIMIT_NPROC, Self.pidMax)] {
            var limit = rlimit()
            guard getrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0 else { continue }
            let hard = min(limit.rlim_max, cap)
            args += ["--ulimit", "\(name)=\(hard):\(hard)"]
        }
        args += identityArguments()
        args += try volume(mounts.workspace, "/workspace", writable: true)
        args += try volume(mounts.repositoryObjects, "/patchd/objects", writable: false)
        for bind in mounts.extra {
            args += try volume(bind.host, bind.inside, writable: bind.writable)
        }
        args += ["--workdir", "/workspace"]
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) {
            args += ["--env", "\(key)=\(value)"]
        }
        args += extraOptions
        args += ["--", image] + command
        return args
    }

    /// The kernel's pid_max, read once.
    static let pidMax: rlim_t =
        readSmallFile("/proc/sys/kernel/pid_max")
        .flatMap { rlim_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 32768

    /// Whose uid the command runs as (see the type's comment).
    func identityArguments() -> [String] {
        let uid = geteuid(), gid = getegid()
        if uid == 0 { return ["--user", "\(Self.agentID):\(Self.agentID)"] }
        switch engine.kind {
        case .podman: return ["--userns", "keep-id", "--user", "\(uid):\(gid)"]
        case .docker: return ["--user", "\(uid):\(gid)"]
        }
    }

    /// `--volume HOST:INSIDE[:ro]`. The engines split that on ':' and parse ',' as options,
    /// so such paths are refused rather than mis-mounted.
    func volume(_ host: String, _ inside: String, writable: Bool) throws(SandboxSetupError) -> [String] {
        for path in [host, inside] where path.contains(":") || path.contains(",") || !path.hasPrefix("/") {
            throw SandboxSetupError(
                "cannot mount '\(path)' into a container: paths must be absolute and contain no ':' or ','; move the data directory")
        }
        return ["--volume", "\(host):\(inside)" + (writable ? ":rw" : ":ro")]
    }

    /// One container per run, its program the init (`SandboxInit`); each command enters through
    /// it. The engine's flags cap the whole run (pids, memory, CPU); the init's commands are
    /// killed by process group on their own limits, the container by `rm --force` at close.
    package func open(mounts: SandboxMounts, limits: SandboxLimits, cancel: CancellationFlag) throws -> RunSandbox {
        var withRunBinds = mounts
        let binds = try BubblewrapSandbox.runBinds(mounts)
        withRunBinds.extra = binds
        let root = geteuid() == 0
        if root {
            try Self.handOver(mounts.workspace)
            for bind in binds where bind.writable { try Self.handOver(bind.host) }
            try Self.handOver(RunSandboxPaths.control(mounts))
        }
        let containerName = "patchd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let cidFile = "\(mounts.scratch)/\(containerName).cid"
        let argv = try arguments(
            command: SandboxInit.command(controlInside: RunSandboxPaths.controlInside),
            environment: ["PATH": SandboxEnvironment.path], mounts: withRunBinds, limits: limits,
            containerName: containerName, cidFile: cidFile)
        let sandbox = self
        let workspace = mounts.workspace
        let backend = InitBackend(
            argv: argv, environment: engineEnvironment(), workingDirectory: mounts.scratch,
            probe: {
                // One per command: the container's cgroups are found once the engine wrote the id.
                let probe = ContainerCgroupProbe(cidFile: cidFile)
                return CommandDeltaProbe(forks: { probe.forkRefusals }, ooms: { probe.oomKills })
            },
            beforeCommand: { files in
                // Files the daemon wrote (the editor tool's, the command's own) go to the agent uid.
                guard root else { return }
                try Self.handOver(workspace)
                for file in files { _ = lchown(file, Self.agentID, Self.agentID) }
            },
            cleanup: {
                sandbox.remove(containerName)
                try? FileManager.default.removeItem(atPath: cidFile)
            },
            startSeconds: 120)
        return try InitRunSandbox(
            backend: backend, mounts: mounts, declared: binds,
            baseEnvironment: SandboxEnvironment.base(home: RunSandboxPaths.homeInside).merging(mounts.environment) { _, run in run },
            cancel: cancel)
    }

    /// The client's own environment: enough to find its configuration, nothing of the daemon's secrets.
    func engineEnvironment() -> [String: String] {
        var env = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"]
        let own = ProcessInfo.processInfo.environment
        for key in [
            "HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF",
            "CONTAINER_HOST", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT",
        ] {
            if let value = own[key] { env[key] = value }
        }
        return env
    }

    /// Removes the container (killing it if it still runs). Errors are ignored: it may never have been created.
    func remove(_ containerName: String) {
        _ = try? runProcess(engine.executable, ["rm", "--force", containerName], environment: engineEnvironment())
    }

    /// Whether the engine has the image (runs never pull it).
    package func imageExists() -> Bool {
        (try? runProcess(engine.executable, ["image", "inspect", "--format", "{{.Id}}", image], environment: engineEnvironment()))?.status == 0
    }

    /// Removes containers an earlier daemon with the same `owner` left behind (it crashed
    /// while a command ran). Only containers carrying patchd's label with that value are touched.
    package func removeLeftovers() -> Int {
        guard
            let r = try? runProcess(
                engine.executable, ["ps", "--all", "--quiet", "--filter", "label=\(Self.label)=\(owner)"],
                environment: engineEnvironment()), r.status == 0
        else { return 0 }
        let ids = String(decoding: r.stdout, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
        guard !ids.isEmpty else { return 0 }
        _ = try? runProcess(engine.executable, ["rm", "--force"] + ids, environment: engineEnvironment())
        return ids.count
    }

    /// Makes `path` and everything under it owned by the agent's uid, without following
    /// symlinks: a link the agent planted cannot redirect this to a host file. Entries already
    /// owned cost only the walk's lstat (after the first command of a run, nearly all).
    static func handOver(_ path: String) throws {
        do {
            try changeOwnerOfTree(path, uid: agentID, gid: agentID)
        } catch {
            throw SandboxSetupError("cannot hand the workspace to uid \(agentID) for the container: \(error)")
        }
    }
}

/// Watches the container's cgroups: pids (refused forks) and memory (OOM kills). The engine
/// names them after the container id (cgroupfs: .../libpod-ID or .../docker/ID; systemd:
/// ...-ID.scope), which it writes to the --cidfile once the container exists. The counts are
/// remembered: the cgroups vanish soon after the container ends, before the client exits.
final class ContainerCgroupProbe: ProcessLimitProbe {
    let cidFile: String
    private var pidsEvents: String?
    private var memoryEvents: String?
    private var lastSearch = 0.0
    private var forkRefused = false
    private var oomKilled = false

    init(cidFile: String) { self.cidFile = cidFile }

    var limitReached: Bool {
        update()
        return forkRefused
    }

    var memoryLimitReached: Bool {
        update()
        return oomKilled
    }

    /// Forks the pids cap refused so far (0 until the cgroup is found).
    var forkRefusals: Int {
        locate()
        return pidsEvents.map { ProcessCgroup.counter("max", in: $0) } ?? 0
    }

    /// OOM kills for the memory cap so far.
    var oomKills: Int {
        locate()
        return memoryEvents.map { ProcessCgroup.counter("oom_kill", in: $0) } ?? 0
    }

    /// The engine's `rm --force` stops the container; nothing to do here.
    func killAll() {}

    private func update() {
        locate()
        if !forkRefused, let file = pidsEvents { forkRefused = ProcessCgroup.counter("max", in: file) > 0 }
        // v1: memory.oom_control "oom_kill N"; v2: memory.events "oom_kill N".
        if !oomKilled, let file = memoryEvents { oomKilled = ProcessCgroup.counter("oom_kill", in: file) > 0 }
    }

    private func locate() {
        guard pidsEvents == nil || memoryEvents == nil else { return }
        let now = MonotonicClock.now
        guard now - lastSearch > 0.05 else { return }
        lastSearch = now
        // readSmallFile: the engine may not have written the file yet, and Foundation leaks on an empty one.
        guard let id = readSmallFile(cidFile)?.trimmingCharacters(in: .whitespacesAndNewlines), id.count >= 12 else { return }
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids") {
            pidsEvents = pidsEvents ?? Self.search("/sys/fs/cgroup/pids", for: id, file: "pids.events", depth: 4)
            memoryEvents = memoryEvents ?? Self.search("/sys/fs/cgroup/memory", for: id, file: "memory.oom_control", depth: 4)
        } else {
            pidsEvents = pidsEvents ?? Self.search("/sys/fs/cgroup", for: id, file: "pids.events", depth: 4)
            memoryEvents = memoryEvents ?? Self.search("/sys/fs/cgroup", for: id, file: "memory.events", depth: 4)
        }
    }

    /// Depth-first search for a directory whose name contains the container id and holds `file`.
    static func search(_ dir: String, for id: String, file: String, depth: Int) -> String? {
        guard depth > 0, let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return nil }
        for entry in entries where entry.contains(id) {
            let path = "\(dir)/\(entry)/\(file)"
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        // Control files have dots (cgroup.procs, pids.max); cgroup directories do not, except slices.
        for entry in entries where !entry.contains(".") || entry.hasSuffix(".slice") {
            var isDirectory: ObjCBool = false
            let path = "\(dir)/\(entry)"
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            if let found = search(path, for: id, file: file, depth: depth - 1) { return found }
        }
        return nil
    }
}
