// SSHKeys: an SSH public key and the identity it proves, as plain values (parsing is SSHServer's, with libssh).

/// A public key by exact bytes. Equality is byte equality of the key blob, never a
/// case-insensitive or prefix match.
package struct PublicKey: Sendable, Hashable {
    /// e.g. "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa".
    package let type: String
    /// The key blob, base64 as in an authorized_keys line.
    package let base64: String
    /// "SHA256:..." as OpenSSH prints it.
    package let fingerprint: String
    /// The comment of the line it was parsed from, if any.
    package let comment: String

    /// A key whose blob was already validated (by `PublicKey(line:)` in SSHServer, or read back from the database).
    package init(type: String, base64: String, fingerprint: String, comment: String) {
        self.type = type
        self.base64 = base64
        self.fingerprint = fingerprint
        self.comment = comment
    }

    package static func == (a: PublicKey, b: PublicKey) -> Bool { a.type == b.type && a.base64 == b.base64 }
    package func hash(into h: inout Hasher) { h.combine(type); h.combine(base64) }

    package var openSSHLine: String { comment.isEmpty ? "\(type) \(base64)" : "\(type) \(base64) \(comment)" }

    package enum ParseError: Error, CustomStringConvertible, Equatable {
        case malformed(String)
        case unsupportedType(String)
        package var description: String {
            switch self {
            case .malformed(let why): return "not an OpenSSH public key line (\(why)); expected 'TYPE BASE64 [COMMENT]' as in ~/.ssh/id_ed25519.pub"
            case .unsupportedType(let t): return "key type '\(t)' is not accepted; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa"
            }
        }
    }

    package static let acceptedTypes: Set<String> = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
    ]
}

/// Who a verified key belongs to. Set on a connection only after a valid signature.
package struct SSHIdentity: Sendable, Equatable {
    package let userID: Int64
    package let userName: String
    package let keyFingerprint: String

    package init(userID: Int64, userName: String, keyFingerprint: String) {
        self.userID = userID
        self.userName = userName
        self.keyFingerprint = keyFingerprint
    }
}
