// Offsite: encryption at rest for what is secret (host keys, database snapshots), with the age tool from Debian.

import Foundation
import PatchdSystem

/// age (https://age-encryption.org, Debian package `age`) as a subprocess: X25519 recipients and
/// ChaCha20-Poly1305, authenticated, a format other tools read too. Chosen over hand-written
/// crypto and over `openssl enc` (which has no AEAD mode and only passphrases): the daemon holds
/// only the public recipient, so the machine that writes the bucket cannot read it back; the
/// admin keeps the identity file off the machine and needs it only for a restore.
struct AgeCipher {
    let age: String

    init() throws(OffsiteError) {
        do { age = try Executable.find("age") } catch {
            throw .configuration(
                "offsite: the age tool is not installed (apt-get install age): host keys and database snapshots are encrypted with it")
        }
    }

    /// Encrypts `input` to `recipients` into `output` (binary age format).
    func encrypt(_ input: String, to output: String, recipients: [String]) throws(OffsiteError) {
        try run(recipients.flatMap { ["-r", $0] } + ["-o", output, input], what: "encrypting \(input)")
    }

    /// Decrypts `input` with the identity file into `output`.
    func decrypt(_ input: String, to output: String, identity: String) throws(OffsiteError) {
        try run(["-d", "-i", identity, "-o", output, input], what: "decrypting \(input) with \(identity)")
    }

    private func run(_ args: [String], what: String) throws(OffsiteError) {
        let r: (status: Int32, stdout: [UInt8], stderr: [UInt8])
        do { r = try runProcess(age, args, environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"]) } catch {
            throw .local("cannot run age: \(error)")
        }
        guard r.status == 0 else {
            throw .local("age failed \(what): \(String(decoding: r.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
