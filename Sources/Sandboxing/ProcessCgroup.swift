// Sandboxing: a cgroup per sandboxed command (v2 or v1): the process cap that also binds root, memory and CPU caps.

import Foundation
import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// A cgroup with `pids.max` for one command, and where the memory controller is writable too,
/// a memory cap without swap. RLIMIT_NPROC is not enforced when the real uid is root (as for a
/// root daemon's bwrap), so the pids controller is what stops a fork bomb there. The memory
/// cgroup caps the sum of the command's processes (tmpfs `/tmp` included) and counts OOM
/// kills, so a run can report `limit: memory`; without it each process gets RLIMIT_AS, which
/// only makes an allocation fail. The cpu controller, where writable, caps the command's CPU
/// time (`max_cpus`). Absent (nil) when no writable pids hierarchy exists:
/// `patchd doctor` says so.
package final class ProcessCgroup: Sendable {
    /// The pids cgroup (on v2 also the memory one).
    package let path: String
    /// The memory cgroup, when a memory cap is in force: `path` on v2, under the v1 memory hierarchy otherwise.
    package let memoryPath: String?
    /// The cpu cgroup, when a CPU cap is in force: `path` on v2, under the v1 cpu hierarchy otherwise.
    package let cpuPath: String?

    /// Where patchd's pids cgroups live, if this machine lets us create them.
    package static let root: String? = {
        if let v2 = unifiedRoot { return v2 }
        return writableDirectory("/sys/fs/cgroup/pids/patchd")
    }()

    /// Where patchd's memory cgroups live, if this machine lets us create them.
    package static let memoryRoot: String? = {
        if let v2 = unifiedRoot {
            return controllers(of: v2 + "/cgroup.subtree_control").contains("memory") ? v2 : nil
        }
        guard root != nil else { return nil }
        return writableDirectory("/sys/fs/cgroup/memory/patchd")
    }()

    /// Where patchd's cpu cgroups live, if this machine lets us create them.
    package static let cpuRoot: String? = {
        if let v2 = unifiedRoot {
            return controllers(of: v2 + "/cgroup.subtree_control").contains("cpu") ? v2 : nil
        }
        guard root != nil else { return nil }
        return writableDirectory("/sys/fs/cgroup/cpu/patchd")
    }()

    /// cgroup v2 with the pids controller: /sys/fs/cgroup/patchd, delegating pids (and memory and cpu when available).
    private static let unifiedRoot: String? = {
        let available = controllers(of: "/sys/fs/cgroup/cgroup.controllers")
        guard available.contains("pids"), let dir = writableDirectory("/sys/fs/cgroup/patchd") else { return nil }
        // Children get a controller only if the parent delegates it; each is asked for alone,
        // so a refused memory controller does not cost the pids one.
        for controller in ["pids", "memory", "cpu"] where available.contains(controller) {
            try? "+\(controller)".write(toFile: dir + "/cgroup.subtree_control", atomically: false, encoding: .utf8)
        }
        return controllers(of: dir + "/cgroup.subtree_control").contains("pids") ? dir : nil
    }()

    private static func controllers(of file: String) -> [String] {
        (readSmallFile(file) ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
    }

    private static func writableDirectory(_ dir: String) -> String? {
        let parent = (dir as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: parent + "/cgroup.procs") else { return nil }
        guard FileManager.default.fileExists(atPath: dir) || mkdir(dir, 0o755) == 0 else { return nil }
        return access(dir, W_OK) == 0 ? dir : nil
    }

    /// `maxMemoryBytes` nil: no memory cgroup (the caller keeps RLIMIT_AS). `maxCPUs` nil: no CPU cap.
    package init?(name: String, maxProcesses: Int, maxMemoryBytes: Int64? = nil, maxCPUs: Double? = nil) {
        guard let root = Self.root else { return nil }
        path = "\(root)/\(name)"
        _ = rmdir(path)
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { return nil }
        guard Self.write(String(maxProcesses), to: path + "/pids.max") else {
            _ = rmdir(path)
            return nil
        }
        let pidsPath = path
        memoryPath = maxMemoryBytes.flatMap { Self.makeMemoryCgroup(name: name, pidsPath: pidsPath, bytes: $0) }
        cpuPath = maxCPUs.flatMap { Self.makeCPUCgroup(name: name, pidsPath: pidsPath, cpus: $0) }
    }

    /// The CFS bandwidth cap: `quota` microseconds of CPU per 100 ms period.
    private static func makeCPUCgroup(name: String, pidsPath: String, cpus: Double) -> String? {
        guard let cpuRoot = Self.cpuRoot, cpus > 0 else { return nil }
        let period = 100_000
        let quota = max(1_000, Int(cpus * Double(period)))
        if cpuRoot == Self.unifiedRoot {
            return write("\(quota) \(period)", to: pidsPath + "/cpu.max") ? pidsPath : nil
        }
        let dir = "\(cpuRoot)/\(name)"
        _ = rmdir(dir)
        guard mkdir(dir, 0o755) == 0 || errno == EEXIST else { return nil }
        guard write(String(period), to: dir + "/cpu.cfs_period_us"), write(String(quota), to: dir + "/cpu.cfs_quota_us") else {
            _ = rmdir(dir)
            return nil
        }
        return dir
    }

    private static func makeMemoryCgroup(name: String, pidsPath: String, bytes: Int64) -> String? {
        guard let memoryRoot = Self.memoryRoot else { return nil }
        if memoryRoot == Self.unifiedRoot {
            // v2: the same directory; swap is capped at 0 where swap accounting exists.
            guard write(String(bytes), to: pidsPath + "/memory.max") else { return nil }
            if FileManager.default.fileExists(atPath: pidsPath + "/memory.swap.max") { _ = write("0", to: pidsPath + "/memory.swap.max") }
            return pidsPath
        }
        let dir = "\(memoryRoot)/\(name)"
        _ = rmdir(dir)
        guard mkdir(dir, 0o755) == 0 || errno == EEXIST else { return nil }
        // v1: memory+swap may only be set at or above the memory limit, so memory goes first.
        guard write(String(bytes), to: dir + "/memory.limit_in_bytes") else {
            _ = rmdir(dir)
            return nil
        }
        if FileManager.default.fileExists(atPath: dir + "/memory.memsw.limit_in_bytes") {
            _ = write(String(bytes), to: dir + "/memory.memsw.limit_in_bytes")
        }
        return dir
    }

    private static func write(_ value: String, to file: String) -> Bool {
        (try? value.write(toFile: file, atomically: false, encoding: .utf8)) != nil
    }

    /// The cgroup.procs files a command joins before it execs (one per hierarchy).
    package var procsFiles: [String] {
        directories.map { $0 + "/cgroup.procs" }
    }

    /// The distinct cgroup directories of this command: one on v2, one per controller on v1.
    private var directories: [String] {
        var dirs = [path]
        for dir in [memoryPath, cpuPath].compactMap({ $0 }) where !dirs.contains(dir) { dirs.append(dir) }
        return dirs
    }

    /// Whether the memory cap is the cgroup's (else RLIMIT_AS applies).
    package var capsMemory: Bool { memoryPath != nil }

    /// True once a fork was refused because of pids.max.
    package var limitReached: Bool { forkRefusals > 0 }

    /// Forks refused because of pids.max so far (a run's commands compare it before and after).
    package var forkRefusals: Int { Self.counter("max", in: path + "/pids.events") }

    /// Processes the OOM killer ended for the memory cap so far.
    package var oomKills: Int {
        guard let memoryPath else { return 0 }
        let file = memoryPath == path ? memoryPath + "/memory.events" : memoryPath + "/memory.oom_control"
        return Self.counter("oom_kill", in: file)
    }

    /// True once the kernel's OOM killer ended a process of this group for the memory cap.
    /// v2: memory.events; v1: memory.oom_control (both "oom_kill N").
    package var memoryLimitReached: Bool { oomKills > 0 }

    /// The value of `name` in a cgroup's "KEY VALUE" lines file (pids.events, memory.events, memory.oom_control).
    static func counter(_ name: String, in file: String) -> Int {
        guard let text = readSmallFile(file) else { return 0 }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == name { return Int(parts[1]) ?? 0 }
        }
        return 0
    }

    /// SIGKILLs everything still in the group (repeatedly, as a fork bomb keeps forking).
    /// cgroup.procs is read with `readSmallFile`: it is empty by now after every command, and
    /// Foundation's `String(contentsOfFile:)` leaks 4 KiB on such a file.
    package func killAll() {
        for _ in 0..<50 {
            guard let text = readSmallFile(path + "/cgroup.procs") else { return }
            let pids = text.split(separator: "\n").compactMap { pid_t($0) }
            if pids.isEmpty { return }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(2_000)
        }
    }

    deinit {
        killAll()
        for dir in directories {
            for _ in 0..<100 where rmdir(dir) != 0 && errno == EBUSY { usleep(5_000) }
        }
    }
}
