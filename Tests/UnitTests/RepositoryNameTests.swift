// UnitTests: repository names: what git clients send, and everything that must be refused.

import Testing

@testable import GitStore
@testable import PatchdCore

@Suite struct RepositoryNameTests {
    @Test(arguments: [
        ("demo", "demo"), ("/demo", "demo"), ("demo.git", "demo"), ("/demo.git", "demo"), ("team/app", "team/app"),
        ("/team/app.git", "team/app"), ("a.b_c-d", "a.b_c-d"), ("X1", "X1"), ("demo/", "demo"),
    ])
    func accepted(_ raw: String, _ canonical: String) throws {
        #expect(try RepositoryName(fromClient: raw).value == canonical)
    }

    @Test(arguments: [
        "", "/", "..", "../etc", "a/../b", "a/b/c", "-oProxyCommand=x", "--upload-pack=touch", ".hidden", "a..b",
        "//etc/passwd", "~root", "~/x", "a b", "a;b", "a$b", "a`b`", "a\nb", "a\\b", "team//app", "a.git.git",
        "repo.lock", "ünïcode", ".git", "a/.git", String(repeating: "a", count: 101),
    ])
    func refused(_ raw: String) {
        #expect(throws: RepositoryName.Invalid.self) { try RepositoryName(fromClient: raw) }
    }

    @Test func group() throws {
        #expect(try RepositoryName("team/app").group == "team")
        #expect(try RepositoryName("app").group == nil)
    }
}
