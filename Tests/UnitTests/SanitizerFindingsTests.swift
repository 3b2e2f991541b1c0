// UnitTests: leaks found by running the integration suite against an ASan build of the
// server (contrib/asan-patchd, docs/SANITIZERS.md), each pinned by what was left behind.

import CTestSupport
import Foundation
import PatchdSystem
import Testing

@testable import PatchdCore
@testable import PatchdServer
@testable import Runs
@testable import SSHServer
@testable import Sandboxing

@Suite struct SanitizerFindingsTests {
    /// The stats command's StatsSource held the SSH server strongly while the server (through
    /// its delegate and the commands) held the StatsSource: a released daemon kept its server,
    /// the database pool and the libssh bind, reported by LeakSanitizer at every clean stop.
    @Test func releasedDaemonFreesServerAndDatabase() throws {
        let dir = NSTemporaryDirectory() + "/patchd-unit-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var configuration = PatchdConfiguration()
        configuration.dataDir = dir
        configuration.listen = "127.0.0.1:0"
        configuration.sandbox = "none"
        weak var server: SSHServer?
        weak var database: PatchdDatabase?
        do {
            let daemon = try PatchdDaemon(configuration: configuration)
            _ = try daemon.start()
            server = daemon.ssh
            database = daemon.database
            daemon.stop(grace: 1)
        }
        #expect(server == nil, "the SSH server outlived its daemon")
        #expect(database == nil, "the database pool outlived its daemon")
    }

    /// Heap bytes in use (all malloc arenas).
    static func heapInUse() -> Int { Int(patchd_heap_in_use()) }

    /// The smallest heap growth over `rounds` rounds of `body`: a leak grows every round,
    /// while other tests allocating concurrently do not make every round grow.
    static func minimumGrowth(rounds: Int = 4, _ body: () -> Void) -> Int {
        var growth = Int.max
        for _ in 0..<rounds {
            let before = heapInUse()
            body()
            growth = min(growth, heapInUse() - before)
        }
        return growth
    }

    /// A cgroup's teardown (killAll) read its cgroup.procs, empty by then, with
    /// String(contentsOfFile:), which leaks Foundation's 4 KiB buffer on a file that reports
    /// size 0 and is empty: 4 KiB per sandboxed command.
    @Test(.enabled(if: ProcessCgroup.root != nil, "needs a writable pids cgroup (root)"))
    func cgroupTeardownDoesNotLeak() throws {
        let growth = Self.minimumGrowth {
            for i in 0..<500 {
                _ = ProcessCgroup(name: "unit-leak-\(getpid())-\(i)", maxProcesses: 4)
            }
        }
        // A leak of 4 KiB per cgroup would be 2 MB a round.
        #expect(growth < 512 * 1024, "heap grew by \(growth) bytes over 500 cgroups")
    }

    @Test func readSmallFileReadsEmptyAndKernelFilesWithoutLeaking() throws {
        let path = NSTemporaryDirectory() + "/patchd-unit-empty-\(UUID().uuidString)"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(readSmallFile(path) == "")
        #expect(readSmallFile("/proc/self/comm")?.isEmpty == false)
        #expect(readSmallFile(path + ".missing") == nil)
        let growth = Self.minimumGrowth {
            for _ in 0..<500 { _ = readSmallFile(path) }
        }
        #expect(growth < 512 * 1024, "heap grew by \(growth) bytes over 500 reads of an empty file")
    }
}
