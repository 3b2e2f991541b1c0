// Runs: a pids cgroup per sandboxed command (v2 or v1), the one process cap that also binds root.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A cgroup with `pids.max` for one command. RLIMIT_NPROC is not enforced when the real
/// uid is root (as for a root daemon's bwrap), so the pids controller is what stops a fork
/// bomb there. Absent (nil) when no writable pids hierarchy exists: `patchd doctor` says so.
public final class ProcessCgroup {
    public let path: String

    /// Where patchd's cgroups live, if this machine lets us create them.
    public static let root: String? = {
        let fm = FileManager.default
        var candidates: [String] = []
        if let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8),
           controllers.split(separator: " ").contains(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines) == "pids" }) {
            candidates.append("/sys/fs/cgroup/patchd")
        }
        candidates.append("/sys/fs/cgroup/pids/patchd")
        for dir in candidates {
            let parent = (dir as NSString).deletingLastPathComponent
            guard fm.fileExists(atPath: parent + "/cgroup.procs") else { continue }
            if (fm.fileExists(atPath: dir) || mkdir(dir, 0o755) == 0) && access(dir, W_OK) == 0 {
                if dir == "/sys/fs/cgroup/patchd" {
                    // v2: children get the pids controller only if the parent delegates it.
                    try? "+pids".write(toFile: dir + "/cgroup.subtree_control", atomically: false, encoding: .utf8)
                }
                return dir
            }
        }
        return nil
    }()

    public init?(name: String, maxProcesses: Int) {
        guard let root = Self.root else { return nil }
        path = "\(root)/\(name)"
        _ = rmdir(path)
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { return nil }
        guard (try? String(maxProcesses).write(toFile: path + "/pids.max", atomically: false, encoding: .utf8)) != nil else {
            _ = rmdir(path)
            return nil
        }
    }

    public var procsFile: String { path + "/cgroup.procs" }

    /// True once a fork was refused because of pids.max.
    public var limitReached: Bool {
        guard let events = try? String(contentsOfFile: path + "/pids.events", encoding: .utf8) else { return false }
        for line in events.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == "max", let n = Int(parts[1]), n > 0 { return true }
        }
        return false
    }

    /// SIGKILLs everything still in the group (repeatedly, as a fork bomb keeps forking).
    public func killAll() {
        for _ in 0..<50 {
            guard let text = try? String(contentsOfFile: procsFile, encoding: .utf8) else { return }
            let pids = text.split(separator: "\n").compactMap { pid_t($0) }
            if pids.isEmpty { return }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(2_000)
        }
    }

    deinit {
        killAll()
        for _ in 0..<100 where rmdir(path) != 0 && errno == EBUSY { usleep(5_000) }
    }
}
