// PatchdCore: setup's secrets per repository, sealed with age to a key file outside the database so a database copy alone reveals nothing.

import Foundation
import GRDB
import PatchdSystem

/// A refused or failed secret operation: what and how to fix it.
package struct SecretError: Error, Sendable, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// Secrets are sealed with age (X25519 + ChaCha20-Poly1305, the Debian `age` package) to the
/// identity in DATA/secrets.key (0600, made on first use). The database holds only ciphertext:
/// a backup of the database, or of the data directory without that file, cannot be opened.
package struct SecretStore: Sendable {
    let db: PatchdDatabase
    let keyFile: String

    package static let maxValueBytes = 64 * 1024
    package static let maxSecrets = 100
    /// Names the sandbox or the egress proxy set for every command: a secret may not replace them.
    package static let reservedNames: Set<String> = [
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "CI", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
        "BASH_ENV", "ENV",
    ]

    package init(db: PatchdDatabase, keyFile: String) {
        self.db = db
        self.keyFile = keyFile
    }

    /// Why `name` cannot name a secret, or nil: an environment variable name, not reserved.
    package static func refusal(name: String) -> String? {
        let chars = Array(name.utf8)
        let ok =
            !chars.isEmpty && chars.count <= 64 && !(chars[0] >= 48 && chars[0] <= 57)
            && chars.allSatisfy { $0 == 95 || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
        if !ok { return "a secret's name is an environment variable name: letters, digits and '_', not starting with a digit, at most 64 characters" }
        if reservedNames.contains(name) || name.uppercased().hasPrefix("PATCHD") || name.hasPrefix("GIT_") {
            return "'\(name)' is set by patchd for every command; choose another name"
        }
        return nil
    }

    package func names(repoID: Int64) throws -> [String] {
        try db.pool.read { try String.fetchAll($0, sql: "SELECT name FROM repo_secrets WHERE repo_id = ? ORDER BY name", arguments: [repoID]) }
    }

    package func set(repoID: Int64, name: String, value: [UInt8]) throws {
        if let why = Self.refusal(name: name) { throw SecretError(why) }
        guard value.count <= Self.maxValueBytes else { throw SecretError("the value is \(value.count) bytes; at most \(Self.maxValueBytes)") }
        guard !value.isEmpty, !value.contains(0) else { throw SecretError("the value is empty or has a NUL byte; give it on stdin") }
        let existing = try names(repoID: repoID)
        if !existing.contains(name) && existing.count >= Self.maxSecrets { throw SecretError("a repository has at most \(Self.maxSecrets) secrets") }
        let sealed = try seal(value)
        try db.pool.write { db in
            try db.execute(
                sql:
                    "INSERT INTO repo_secrets (repo_id, name, sealed, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(repo_id, name) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at",
                arguments: [repoID, name, Data(sealed), Date()])
        }
    }

    @discardableResult
    package func remove(repoID: Int64, name: String) throws -> Bool {
        try db.pool.write { db in
            try db.execute(sql: "DELETE FROM repo_secrets WHERE repo_id = ? AND name = ?", arguments: [repoID, name])
            return db.changesCount > 0
        }
    }

    /// Every secret of the repository, opened (for setup's environment only).
    package func values(repoID: Int64) throws -> [String: String] {
        let rows = try db.pool.read { try Row.fetchAll($0, sql: "SELECT name, sealed FROM repo_secrets WHERE repo_id = ?", arguments: [repoID]) }
        var result: [String: String] = [:]
        for row in rows {
            let name: String = row["name"]
            let sealed: Data = row["sealed"]
            result[name] = String(decoding: try open(Array(sealed), name: name), as: UTF8.self)
        }
        return result
    }

    private func age() throws -> String {
        do { return try Executable.find("age") } catch {
            throw SecretError("secrets are sealed with age, which is not installed (apt-get install age)")
        }
    }

    /// The public recipient of DATA/secrets.key, making the key on first use.
    private func recipient() throws -> String {
        if !FileManager.default.fileExists(atPath: keyFile) {
            let keygen: String
            do { keygen = try Executable.find("age-keygen") } catch { throw SecretError("age-keygen is not installed (apt-get install age)") }
            let old = umask(0o077)
            defer { umask(old) }
            let r = try runProcess(keygen, ["-o", keyFile], environment: ["PATH": "/usr/bin:/bin"])
            // A concurrent first use may have made it: then theirs is the key.
            guard r.status == 0 || FileManager.default.fileExists(atPath: keyFile) else {
                throw SecretError("cannot make the secrets key: \(String(decoding: r.stderr, as: UTF8.self))")
            }
            chmod(keyFile, 0o600)
        }
        guard let text = try? String(contentsOfFile: keyFile, encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("# public key: ") })
        else { throw SecretError("the secrets key (DATA/secrets.key) cannot be read") }
        return String(line.dropFirst("# public key: ".count))
    }

    private func seal(_ value: [UInt8]) throws -> [UInt8] {
        let r = try runProcess(try age(), ["-r", try recipient()], environment: ["PATH": "/usr/bin:/bin"], stdinBytes: value)
        guard r.status == 0 else { throw SecretError("age could not seal the secret: \(String(decoding: r.stderr, as: UTF8.self))") }
        return r.stdout
    }

    private func open(_ sealed: [UInt8], name: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: keyFile) else {
            throw SecretError("secret \(name) cannot be opened: DATA/secrets.key is missing (restored from a backup? set the secret again)")
        }
        let r = try runProcess(try age(), ["-d", "-i", keyFile], environment: ["PATH": "/usr/bin:/bin"], stdinBytes: sealed)
        guard r.status == 0 else {
            throw SecretError("secret \(name) cannot be opened with DATA/secrets.key (was the key replaced? set the secret again)")
        }
        return r.stdout
    }
}
