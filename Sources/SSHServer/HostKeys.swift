// SSHServer: the server's host keys (ed25519 and RSA), generated once with mode 0600 and reused.

import CLibSSH
import Foundation
import PatchdSystem
package import SSHKeys

/// Errors from libssh, with its own message where it gives one.
package struct SSHError: Error, CustomStringConvertible, Sendable {
    package let what: String
    package let detail: String
    package init(_ what: String, _ detail: String = "") { self.what = what; self.detail = detail }
    package var description: String { detail.isEmpty ? what : "\(what): \(detail)" }
}

/// The paths and fingerprints of the host keys in the data directory.
package struct HostKeys: Sendable {
    package struct Key: Sendable {
        package let path: String
        package let publicKey: PublicKey
    }
    package let ed25519: Key
    package let rsa: Key

    /// Loads `DIR/ssh_host_ed25519_key` and `DIR/ssh_host_rsa_key`, creating each that is missing.
    package static func loadOrCreate(in directory: String) throws(SSHError) -> HostKeys {
        let ed = try loadOrCreate(path: directory + "/ssh_host_ed25519_key", type: SSH_KEYTYPE_ED25519, bits: 0)
        let rsa = try loadOrCreate(path: directory + "/ssh_host_rsa_key", type: SSH_KEYTYPE_RSA, bits: 3072)
        return HostKeys(ed25519: ed, rsa: rsa)
    }

    static func loadOrCreate(path: String, type: ssh_keytypes_e, bits: Int32) throws(SSHError) -> Key {
        var key: ssh_key?
        if FileManager.default.fileExists(atPath: path) {
            guard ssh_pki_import_privkey_file(path, nil, nil, nil, &key) == SSH_OK, key != nil else {
                throw SSHError("cannot read host key \(path)", "remove it to generate a new one, or fix its permissions")
            }
        } else {
            guard ssh_pki_generate(type, bits, &key) == SSH_OK, key != nil else {
                throw SSHError("cannot generate host key", path)
            }
            var b64: UnsafeMutablePointer<CChar>?
            guard ssh_pki_export_privkey_base64(key, nil, nil, nil, &b64) == SSH_OK, let b64 else {
                ssh_key_free(key)
                throw SSHError("cannot export host key", path)
            }
            let pem = String(cString: b64)
            ssh_string_free_char(b64)
            // Created 0600 from the first byte: the key is never readable by others, even briefly.
            do {
                try writeNewFile(path: path, contents: pem, mode: 0o600)
            } catch {
                ssh_key_free(key)
                throw SSHError("cannot write host key \(path)", error.description)
            }
        }
        defer { ssh_key_free(key) }
        let pub: PublicKey
        do { pub = try PublicKey(libsshKey: key!, comment: "patchd") } catch {
            throw SSHError("cannot read host key \(path)", "\(error)")
        }
        if !FileManager.default.fileExists(atPath: path + ".pub") {
            try? writeNewFile(path: path + ".pub", contents: pub.openSSHLine + "\n", mode: 0o644)
        }
        return Key(path: path, publicKey: pub)
    }
}

/// Creates a file that must not exist yet with exactly `mode`, and syncs it.
func writeNewFile(path: String, contents: String, mode: mode_t) throws(SystemError) {
    let fd = try checked("open", path) { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
    let owned = OwnedFD(fd)
    _ = fchmod(fd, mode)
    try writeAll(owned.raw, contents)
    _ = fsync(fd)
}

/// The libssh version patchd runs with, for `patchd doctor` and `patchd version`.
package let libsshVersion: String = String(cString: ssh_version(0))
