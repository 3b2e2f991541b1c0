// PatchdServer: parses a shortcut's words against its allow-list of flags; anything else is a usage error.

/// The words after the command name, split into positionals and known flags. Unknown
/// flags, missing values and extra positionals are usage errors (exit 2).
struct CommandArguments {
    var positionals: [String] = []
    var flags: Set<String> = []
    var values: [String: String] = [:]
    /// Everything after `--` (the task text of `run start`).
    var rest: [String] = []

    struct UsageError: Error, CustomStringConvertible {
        let description: String
    }

    /// - Parameters:
    ///   - switches: flags without a value (`--json`).
    ///   - options: flags that take a value (`--status S`).
    init(_ words: [String], switches: Set<String> = [], options: Set<String> = [], allowRest: Bool = false,
         positionals range: ClosedRange<Int>) throws(UsageError) {
        var i = 0
        while i < words.count {
            let word = words[i]
            if word == "--" {
                guard allowRest else { throw UsageError(description: "'--' is not expected here") }
                rest = Array(words[(i + 1)...])
                break
            }
            if word.hasPrefix("-") && word.count > 1 {
                var name = word
                var inline: String?
                if let eq = word.firstIndex(of: "=") {
                    name = String(word[..<eq])
                    inline = String(word[word.index(after: eq)...])
                }
                if switches.contains(name) && inline == nil {
                    flags.insert(name)
                } else if options.contains(name) {
                    if let inline {
                        values[name] = inline
                    } else {
                        guard i + 1 < words.count else { throw UsageError(description: "\(name) needs a value") }
                        i += 1
                        values[name] = words[i]
                    }
                } else {
                    throw UsageError(description: "unknown flag '\(Terminal.sanitize(String(name.prefix(40))))'")
                }
            } else {
                positionals.append(word)
            }
            i += 1
        }
        guard range.contains(positionals.count) else {
            throw UsageError(description: positionals.count < range.lowerBound ? "missing arguments" : "too many arguments")
        }
    }
}

/// Human output: aligned columns, relative times. Strings users control are sanitized
/// by the caller. No colour: patchd refuses ptys, so output is never a terminal.
enum TextTable {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { col in all.map { $0[col].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n") + "\n"
    }
}

import Foundation
import PatchdCore

enum RelativeTime {
    static func describe(_ date: Date?, now: Date = Date()) -> String {
        guard let date else { return "-" }
        let seconds = Int(now.timeIntervalSince(date))
        switch seconds {
        case ..<0: return "just now"
        case 0..<60: return "\(seconds)s ago"
        case 60..<3600: return "\(seconds / 60)m ago"
        case 3600..<86400: return "\(seconds / 3600)h ago"
        default: return "\(seconds / 86400)d ago"
        }
    }
}
