// UnitTests: leaks found by running the integration suite against an ASan build of the
// server (contrib/asan-patchd, docs/SANITIZERS.md), each pinned by what was left behind.
import Foundation
import Testing
@testable import PatchdServer
import SSHServer

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
}
