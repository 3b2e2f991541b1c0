// UnitTests: the one executable lookup finds programs outside /usr/bin, as a shell would.

import Foundation
import Testing

@testable import PatchdSystem

@Suite("executable lookup")
struct ExecutableTests {
    /// A directory with an executable `tool`, a non-executable `patchd-test-plain` and a directory `patchd-test-dir`.
    func makeBin() throws -> String {
        let dir = NSTemporaryDirectory() + "patchd-exe-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir + "/patchd-test-dir", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir + "/tool", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        _ = FileManager.default.createFile(atPath: dir + "/patchd-test-plain", contents: Data(), attributes: [.posixPermissions: 0o644])
        return dir
    }

    @Test("every PATH entry is searched in order, not only /usr/bin and /bin")
    func findsOutsideUsrBin() throws {
        let bin = try makeBin()
        defer { try? FileManager.default.removeItem(atPath: bin) }
        #expect(try Executable.find("tool", path: "/nonexistent:\(bin):/usr/bin") == bin + "/tool")
        #expect(try Executable.find("tool", path: "\(bin)/") == bin + "/tool")
        #expect(try Executable.find("sh", path: "\(bin):/usr/bin:/bin").hasSuffix("/sh"))
    }

    @Test("non-executable files, directories, relative and empty PATH entries are skipped")
    func skips() throws {
        let bin = try makeBin()
        defer { try? FileManager.default.removeItem(atPath: bin) }
        #expect(throws: Executable.NotFound.self) { try Executable.find("patchd-test-plain", path: bin) }
        #expect(throws: Executable.NotFound.self) { try Executable.find("patchd-test-dir", path: bin) }
        // The same directory named relative to the working directory: never searched.
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let relative = String(repeating: "../", count: depth) + bin.dropFirst()
        #expect(FileManager.default.fileExists(atPath: relative + "/tool"))
        #expect(throws: Executable.NotFound.self) { try Executable.find("tool", path: "::\(relative)") }
    }

    @Test("a path is used as it is; a missing program names what was searched")
    func pathsAndErrors() throws {
        let bin = try makeBin()
        defer { try? FileManager.default.removeItem(atPath: bin) }
        #expect(try Executable.find(bin + "/tool", path: "") == bin + "/tool")
        #expect(throws: Executable.NotFound.self) { try Executable.find(bin + "/patchd-test-plain") }
        do {
            _ = try Executable.find("patchd-no-such-program", path: bin)
            Issue.record("found a program that does not exist")
        } catch {
            #expect(error.searched.first == bin)
            #expect(error.searched.contains("/usr/bin"))
            #expect(error.description.contains("not found in PATH"))
        }
    }
}
