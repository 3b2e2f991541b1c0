// PatchdCore: quotes words for a POSIX shell, for every command patchd prints for a user to paste.

import Foundation

/// `git fetch origin 'agent/x$(touch y)'`: pasting what patchd prints runs exactly that command.
package enum ShellQuote {
    /// `word` as one POSIX shell word: unchanged when it holds only characters no shell treats
    /// specially, otherwise in single quotes (a `'` inside becomes `'\''`). An empty word is `''`.
    package static func word(_ word: String) -> String {
        guard !word.isEmpty else { return "''" }
        if word.unicodeScalars.allSatisfy({ safe.contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// The words quoted and joined with spaces: a command line to paste.
    package static func command(_ words: [String]) -> String { words.map(word).joined(separator: " ") }

    /// Letters, digits and `@%+=:,./-_`: never special to sh, bash, zsh or dash (in any position
    /// patchd prints them; `-` can still read as an option, which is the caller's concern).
    private static let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_".unicodeScalars)
}
