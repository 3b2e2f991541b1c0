// PatchdCommands: splits an SSH exec string into words with shell-style quoting, without ever running a shell.

/// The words of an exec command. Quoting follows the shell ('...', "...", backslash) so
/// `git-upload-pack 'repo'` and `run start r b -- "fix it"` parse as users expect, but
/// unquoted shell syntax (`;`, `|`, `&`, `$(`, backticks, redirections) is refused:
/// whoever sent it expected a shell, and there is none. After a standalone `--` word the
/// rest is data (the task text of `run start`): such characters are kept as they are,
/// since the client's shell has already removed the user's quotes.
package enum CommandWords {
    package static let maxCommandBytes = 32 * 1024
    package static let maxWordBytes = 4096

    package enum Invalid: Error, CustomStringConvertible, Equatable {
        case tooLong
        case wordTooLong
        case controlCharacter
        case unbalancedQuote(Character)
        case trailingBackslash
        case shellSyntax(String)
        case empty

        package var description: String {
            switch self {
            case .tooLong: return "command is longer than \(maxCommandBytes) bytes"
            case .wordTooLong: return "an argument is longer than \(maxWordBytes) bytes; put long text in a file or a push option"
            case .controlCharacter: return "command contains a newline or control character"
            case .unbalancedQuote(let q): return "unbalanced \(q) quote in command"
            case .trailingBackslash: return "command ends with a backslash"
            case .shellSyntax(let s): return "'\(s)' is shell syntax, and commands are not run by a shell; quote it if it is data"
            case .empty: return "empty command"
            }
        }
    }

    package static func split(_ command: String) throws(Invalid) -> [String] {
        guard command.utf8.count <= maxCommandBytes else { throw .tooLong }
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var iterator = Array(command).makeIterator()
        var pending: Character? = nil
        var literal = false

        func next() -> Character? {
            if let p = pending { pending = nil; return p }
            return iterator.next()
        }

        while let c = next() {
            if c.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) && !(c == "\t" && quote == nil) {
                throw .controlCharacter
            }
            switch quote {
            case "'":
                if c == "'" { quote = nil } else { current.append(c) }
            case "\"":
                if c == "\"" {
                    quote = nil
                } else if c == "\\" {
                    guard let n = next() else { throw .unbalancedQuote("\"") }
                    // In double quotes a backslash escapes only these, as in sh.
                    if "\"\\$`".contains(n) { current.append(n) } else { current.append(c); pending = n }
                } else {
                    current.append(c)
                }
            default:
                switch c {
                case " ", "\t":
                    if inWord {
                        if current == "--" && !literal { literal = true }
                        words.append(current); current = ""; inWord = false
                    }
                case "'", "\"":
                    quote = c
                    inWord = true
                case "\\":
                    guard let n = next() else { throw .trailingBackslash }
                    current.append(n)
                    inWord = true
                case ";", "|", "&", "`", ">", "<":
                    guard literal else { throw .shellSyntax(String(c)) }
                    current.append(c)
                    inWord = true
                case "$" where literal:
                    current.append(c)
                    inWord = true
                case "$":
                    if let n = next() {
                        if n == "(" || n == "{" { throw .shellSyntax("$" + String(n)) }
                        pending = n
                    }
                    current.append(c)
                    inWord = true
                default:
                    current.append(c)
                    inWord = true
                }
            }
            if current.utf8.count > maxWordBytes { throw .wordTooLong }
        }
        if let q = quote { throw .unbalancedQuote(q) }
        if inWord { words.append(current) }
        guard !words.isEmpty else { throw .empty }
        return words
    }
}
