// PatchdCore: validated repository names (`NAME` or `GROUP/NAME`), the only way a path is derived from user input.

/// A repository name that is safe to turn into a path: `[A-Za-z0-9][A-Za-z0-9._-]*`,
/// optionally behind one `GROUP/`. No `..`, no leading `-` or `.`, no `.git` suffix
/// inside (it is stripped once from what the client sent).
package struct RepositoryName: Sendable, Hashable, CustomStringConvertible, Comparable {
    package let value: String

    package var description: String { value }
    package static func < (a: RepositoryName, b: RepositoryName) -> Bool { a.value < b.value }

    package enum Invalid: Error, CustomStringConvertible, Equatable {
        case empty
        case tooLong
        case badComponent(String)
        case tooDeep

        package var description: String {
            let rule = "names are letters, digits, '.', '_' and '-', start with a letter or digit, with at most one 'GROUP/' prefix"
            switch self {
            case .empty: return "missing repository name"
            case .tooLong: return "repository name is longer than 100 characters"
            case .badComponent(let c): return "invalid repository name '\(c)': \(rule)"
            case .tooDeep: return "invalid repository name: \(rule)"
            }
        }
    }

    /// Parses what a git client sends: `'/NAME.git'`, `NAME`, `GROUP/NAME`, ...
    /// The leading `/` of ssh:// URLs and one trailing `.git` (or `/`) are dropped.
    package init(fromClient raw: String) throws(Invalid) {
        var name = Substring(raw)
        if name.hasPrefix("/") { name = name.dropFirst() }
        if name.hasSuffix("/") { name = name.dropLast() }
        if name.hasSuffix(".git") { name = name.dropLast(4) }
        try self.init(String(name))
    }

    /// Validates a canonical name (no `.git` suffix).
    package init(_ name: String) throws(Invalid) {
        guard !name.isEmpty else { throw .empty }
        guard name.utf8.count <= 100 else { throw .tooLong }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw .tooDeep }
        for part in parts {
            guard Self.isValidComponent(part) else { throw .badComponent(String(name.prefix(100))) }
        }
        value = name
    }

    static func isValidComponent(_ part: Substring) -> Bool {
        guard let first = part.unicodeScalars.first, Self.isAlnum(first) else { return false }
        guard !part.contains(".."), !part.hasSuffix(".git"), !part.hasSuffix(".lock"), !part.hasSuffix(".") else { return false }
        return part.unicodeScalars.allSatisfy { isAlnum($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }

    static func isAlnum(_ s: Unicode.Scalar) -> Bool {
        (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9")
    }

    /// The group part, if any ("team" for "team/app").
    package var group: String? {
        guard let slash = value.firstIndex(of: "/") else { return nil }
        return String(value[..<slash])
    }
}
