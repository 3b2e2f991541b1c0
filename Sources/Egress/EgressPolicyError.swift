// Egress: an allowlist entry that was refused: what was written, where, what is wrong and how to write it.

/// A refused allowlist entry. `description` is one line for the user: where (the source and the
/// entry's position), the entry as written (control characters made visible, cut when long),
/// what is wrong, and how to fix it.
package struct EgressPolicyError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Where the list came from, as the caller named it (`task file network.allow`, `server config`).
    package let source: String
    /// The entry's position in that list, from 1.
    package let position: Int
    /// The entry as written, made printable and cut to 100 characters.
    package let entry: String
    /// What is wrong (`is an IP address`).
    package let problem: String
    /// How to write it instead.
    package let fix: String

    package init(source: String, position: Int, entry: String, problem: String, fix: String) {
        self.source = source
        self.position = position
        self.entry = Self.printable(entry)
        self.problem = problem
        self.fix = fix
    }

    package var description: String {
        "\(source), entry \(position): '\(entry)' \(problem); \(fix)"
    }

    /// The entry as a user can read it in a terminal: controls and non-ASCII as \u{...}, at most 100 characters.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let piece =
                scalar.value >= 0x20 && scalar.value < 0x7f
                ? String(Character(scalar)) : "\\u{" + String(scalar.value, radix: 16) + "}"
            if out.utf8.count + piece.utf8.count > 100 {
                out += "..."
                break
            }
            out += piece
        }
        return out
    }
}
