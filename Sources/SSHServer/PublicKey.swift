// SSHServer: reads an SSH public key (an authorized_keys line, or the key libssh saw in auth) into a PublicKey.

import CLibSSH
import Foundation
package import SSHKeys

extension PublicKey {
    /// Parses "TYPE BASE64 [COMMENT]" and validates the blob with libssh.
    package init(line: String) throws(ParseError) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count <= 16_384 else { throw .malformed("longer than 16 KiB") }
        guard !trimmed.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) else {
            throw .malformed("more than one line")
        }
        let parts = trimmed.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2 else { throw .malformed("missing the base64 part") }
        let type = String(parts[0])
        guard Self.acceptedTypes.contains(type) else {
            if type.contains("=") || type.contains(",") {
                throw .malformed("authorized_keys options are not supported")
            }
            throw .unsupportedType(type)
        }
        let comment = parts.count == 3 ? String(parts[2]) : ""
        var key: ssh_key?
        let rc = ssh_pki_import_pubkey_base64(String(parts[1]), ssh_key_type_from_name(type), &key)
        guard rc == SSH_OK, let key else { throw .malformed("the base64 key does not decode as \(type)") }
        defer { ssh_key_free(key) }
        try self.init(libsshKey: key, comment: comment)
    }

    /// Reads a key that libssh handed us (during auth). Does not take ownership.
    init(libsshKey key: ssh_key, comment: String = "") throws(ParseError) {
        guard let typeC = ssh_key_type_to_char(ssh_key_type(key)) else { throw .malformed("unknown key type") }
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else {
            throw .malformed("cannot export the key")
        }
        defer { ssh_string_free_char(b64) }
        var typeName = String(cString: typeC)
        // libssh names every ECDSA curve "ecdsa" in ssh_key_type_to_char; use the wire name.
        if typeName.hasPrefix("ecdsa"), let ecdsa = ssh_pki_key_ecdsa_name(key) {
            typeName = String(cString: ecdsa)
        }
        guard let fp = Self.sha256Fingerprint(key) else { throw .malformed("cannot hash the key") }
        self.init(type: typeName, base64: String(cString: b64), fingerprint: fp, comment: comment)
    }

    static func sha256Fingerprint(_ key: ssh_key) -> String? {
        var hash: UnsafeMutablePointer<UInt8>?
        var length: Int = 0
        guard ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) == 0, hash != nil else { return nil }
        defer { ssh_clean_pubkey_hash(&hash) }
        guard let fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length) else { return nil }
        defer { ssh_string_free_char(fp) }
        return String(cString: fp)
    }
}
