// IntegrationTests: `run diff` is a patch git applies byte for byte (CRLF, Latin-1, binary files).

import Foundation
import Testing

@Suite("run diff bytes", .serialized)
struct CommandDiffTests {
    func writeBytes(_ path: String, _ bytes: [UInt8]) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw TestFailure("cannot write \(path)") }
    }

    func bytes(_ r: (status: Int32, stdout: [UInt8], stderr: [UInt8])) -> String { String(decoding: r.stderr, as: UTF8.self) }

    @Test("run diff prints exactly what git diff --binary prints, and git apply --binary at BASE reproduces the result")
    func binaryDiffApplies() throws {
        let server = try TestServer()
        let work = try server.makeWorkTree("w", repo: "bytes", commits: 1)
        try server.write(work, ".gitattributes", "crlf.txt -text\n")
        try writeBytes(work + "/crlf.txt", Array("one\r\ntwo\r\n".utf8))
        try writeBytes(work + "/latin.txt", [0x63, 0x61, 0x66, 0xe9, 0x0a])  // "café" in Latin-1
        try writeBytes(work + "/blob.bin", [0x00, 0x01, 0x02, 0xff, 0xfe, 0x00, 0x7f])
        try server.commitAll(work, "files in three encodings")
        // The agent changes each: CRLF lines, a Latin-1 line, binary bytes, and a line with an escape sequence.
        try server.write(
            work, ".patchd/task.md",
            TestServer.commandTask(
                """
                printf 'one\\r\\nTWO\\r\\nthree\\r\\n' > crlf.txt
                printf 'na\\357ve \\351t\\351\\n' >> latin.txt
                printf '\\000\\003\\377\\376changed\\000' > blob.bin
                printf 'red \\033[31mtext\\n' > esc.txt
                """))
        try server.commitAll(work, "task")
        try expectOK(server.git(["push", "-q", "-o", "wait", "origin", "main"], in: work))
        let json = try server.runJSON(1)
        #expect(json["status"] as? String == "succeeded", "\(json)")
        let base = try #require(json["base"] as? String)
        try expectOK(server.git(["fetch", "-q", "origin", "agent/main"], in: work))

        let served = try runProcess(
            "/usr/bin/ssh", server.sshOptions(server.admin) + ["git@127.0.0.1", "run", "diff", "1"],
            environment: clientEnvironment())
        #expect(served.status == 0, "\(bytes(served))")
        let local = try runProcess(
            "/usr/bin/git", ["diff", "--binary", "--full-index", "--no-color", "--no-ext-diff", "--no-textconv", base, "FETCH_HEAD", "--"],
            environment: clientEnvironment(), workingDirectory: work)
        #expect(local.status == 0)
        #expect(served.stdout == local.stdout, "run diff differs from git diff --binary (\(served.stdout.count) vs \(local.stdout.count) bytes)")
        #expect(served.stdout.contains(0x0d), "CR bytes were stripped")
        #expect(served.stdout.contains(0xe9), "Latin-1 bytes were re-encoded")
        #expect(String(decoding: served.stdout, as: UTF8.self).contains("GIT binary patch"), "binary hunks are missing")

        // Applied at BASE in a fresh clone, the patch gives the result's files byte for byte.
        let clone = server.tmp.path + "/c"
        try expectOK(server.git(["clone", "-q", server.url("bytes"), clone], in: server.tmp.path))
        try expectOK(server.git(["checkout", "-q", base], in: clone))
        let patch = server.tmp.path + "/run1.patch"
        try writeBytes(patch, served.stdout)
        try expectOK(server.git(["apply", "--check", "--binary", patch], in: clone), "git apply --check")
        try expectOK(server.git(["apply", "--binary", patch], in: clone), "git apply")
        for file in ["crlf.txt", "latin.txt", "blob.bin", "esc.txt"] {
            let want = try runProcess(
                "/usr/bin/git", ["cat-file", "blob", "FETCH_HEAD:\(file)"], environment: clientEnvironment(), workingDirectory: work)
            let got = try [UInt8](Data(contentsOf: URL(fileURLWithPath: clone + "/" + file)))
            #expect(want.status == 0 && got == want.stdout, "\(file) differs after git apply")
        }

        // --binary (git's own word) changes nothing; --stat is for people.
        let binary = try runProcess(
            "/usr/bin/ssh", server.sshOptions(server.admin) + ["git@127.0.0.1", "run", "diff", "1", "--binary"],
            environment: clientEnvironment())
        #expect(binary.stdout == served.stdout)
        let stat = try expectOK(server.ssh(nil, ["run", "diff", "1", "--stat"])).stdout
        #expect(stat.contains("crlf.txt") && !stat.contains("\u{1b}"))
        let both = try server.ssh(nil, ["run", "diff", "1", "--binary", "--stat"])
        #expect(both.status == 2 && both.stderr.contains("usage:"))
    }
}
