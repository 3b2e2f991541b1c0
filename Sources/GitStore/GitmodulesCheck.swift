// GitStore: fsck's .gitmodules content checks, with git 2.39's config parser ported byte for byte (config.c, fsck.c).

/// What `git fsck` refuses in a `.gitmodules` blob: a submodule name with a `..` component,
/// a url or path that looks like an option (or a url that smuggles a newline or escapes
/// its host), an `update = !command`. Entries before a syntax error count, as in git (the
/// syntax error itself is info-level: gitmodulesParse).
enum GitmodulesCheck {
    /// The first refusal in `data`, or nil when fsck accepts it.
    static func refusal(_ data: [UInt8]) -> String? {
        if data.count > 1 << 30 { return ".gitmodules too large (fsck: gitmodulesLarge)" }
        var found: String?
        var parser = ConfigParser(data)
        parser.parse { name, value in
            guard found == nil else { return }
            found = check(name: name, value: value)
        }
        return found
    }

    /// fsck_gitmodules_fn: `name` is the canonical key ("submodule.NAME.key"), as C strings.
    static func check(name: [UInt8], value: [UInt8]?) -> String? {
        let prefix = Array("submodule.".utf8)
        guard name.starts(with: prefix) else { return nil }
        let rest = Array(name[prefix.count...])
        guard let dot = rest.lastIndex(of: UInt8(ascii: ".")) else { return nil }  // no subsection
        let submodule = Array(rest[..<dot])
        let key = String(decoding: rest[(dot + 1)...], as: UTF8.self)
        let show = String(decoding: submodule, as: UTF8.self)
        if !isValidName(submodule) { return "submodule name '\(show)' (fsck: gitmodulesName)" }
        guard let value else { return nil }
        if key == "url" && !isValidURL(value) { return "the url of submodule '\(show)' (fsck: gitmodulesUrl)" }
        if key == "path" && value.first == UInt8(ascii: "-") { return "the path of submodule '\(show)' starts with '-' (fsck: gitmodulesPath)" }
        if key == "update" && value.first == UInt8(ascii: "!") {
            return "submodule '\(show)' runs a command on update (fsck: gitmodulesUpdate)"
        }
        return nil
    }

    private static func isSeparator(_ c: UInt8) -> Bool { c == UInt8(ascii: "/") || c == UInt8(ascii: "\\") }

    /// check_submodule_name: not empty, no ".." path component (either separator).
    static func isValidName(_ name: [UInt8]) -> Bool {
        if name.isEmpty { return false }
        var i = 0
        while true {
            // At the start of a component.
            if i + 1 < name.count, name[i] == 46, name[i + 1] == 46, i + 2 == name.count || isSeparator(name[i + 2]) { return false }
            guard let next = name[i...].firstIndex(where: isSeparator) else { return true }
            i = next + 1
        }
    }

    private static func startsWithDotSlash(_ s: ArraySlice<UInt8>) -> Bool {
        s.count >= 2 && s[s.startIndex] == 46 && isSeparator(s[s.startIndex + 1])
    }

    private static func startsWithDotDotSlash(_ s: ArraySlice<UInt8>) -> Bool {
        s.count >= 3 && s[s.startIndex] == 46 && s[s.startIndex + 1] == 46 && isSeparator(s[s.startIndex + 2])
    }

    /// check_submodule_url.
    static func isValidURL(_ url: [UInt8]) -> Bool {
        if url.first == UInt8(ascii: "-") { return false }
        let slice = url[...]
        if startsWithDotSlash(slice) || startsWithDotDotSlash(slice) || url.starts(with: Array("git://".utf8)) {
            if urlDecode(slice).contains(10) { return false }
            var rest = slice
            var dotdots = 0
            while true {
                if startsWithDotDotSlash(rest) { dotdots += 1; rest = rest.dropFirst(3); continue }
                if startsWithDotSlash(rest) { rest = rest.dropFirst(2); continue }
                break
            }
            if dotdots > 0, let c = rest.first, c == UInt8(ascii: ":") || c == UInt8(ascii: "/") { return false }
            return true
        }
        var curl: ArraySlice<UInt8>?
        for p in ["http::", "https::", "ftp::", "ftps::"] where url.starts(with: Array(p.utf8)) { curl = slice.dropFirst(p.utf8.count) }
        for p in ["http://", "https://", "ftp://", "ftps://"] where curl == nil && url.starts(with: Array(p.utf8)) { curl = slice }
        guard let curl else { return true }
        return credentialParses(curl)
    }

    /// credential_from_url_gently(quiet) succeeds and finds a host: git's guard against CVE-2020-11008.
    private static func credentialParses(_ url: ArraySlice<UInt8>) -> Bool {
        let sep = Array("://".utf8)
        var protoEnd: Int?
        if url.count >= 3 {
            for i in url.startIndex...(url.endIndex - 3) where Array(url[i..<(i + 3)]) == sep { protoEnd = i; break }
        }
        guard let protoEnd, protoEnd != url.startIndex else { return false }
        let cp = protoEnd + 3
        let at = url[cp...].firstIndex(of: UInt8(ascii: "@"))
        let colon = url[cp...].firstIndex(of: UInt8(ascii: ":"))
        let slash = url[cp...].firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? url.endIndex
        var parts: [ArraySlice<UInt8>] = [url[url.startIndex..<protoEnd]]
        let host: Int
        if at == nil || slash <= at! {
            host = cp
        } else if colon == nil || at! <= colon! {
            parts.append(url[cp..<at!])
            host = at! + 1
        } else {
            parts.append(url[cp..<colon!])
            parts.append(url[(colon! + 1)..<at!])
            host = at! + 1
        }
        let hostPart = host <= slash ? url[host..<slash] : url[slash..<slash]
        parts.append(hostPart)
        var path = url[slash...]
        while path.first == UInt8(ascii: "/") { path = path.dropFirst() }
        parts.append(path)
        for part in parts where urlDecode(part).contains(10) { return false }
        return !urlDecode(hostPart).isEmpty
    }

    /// git's url_decode: %XX escapes (but not %00, which stays as it is), '+' kept.
    private static func urlDecode(_ s: ArraySlice<UInt8>) -> [UInt8] {
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == UInt8(ascii: "%"), i + 2 < s.endIndex, let h = hex(s[i + 1]), let l = hex(s[i + 2]), h << 4 | l != 0 {
                out.append(h << 4 | l)
                i += 3
                continue
            }
            out.append(s[i])
            i += 1
        }
        return out
    }
}

/// git's config file parser (config.c: git_parse_source and helpers) over bytes. It calls
/// `entry(canonicalName, value)` for every entry up to the first syntax error. Names and
/// values are cut at a NUL byte, as git's C strings are.
struct ConfigParser {
    private let data: [UInt8]
    private var pos = 0
    private var eof = false

    init(_ data: [UInt8]) { self.data = data }

    private static let newline = Int(10)

    /// get_next_char over a blob: "\r\n" reads as "\n"; the end reads as "\n" with eof set. git
    /// reads a blob through a signed `char`, so a 0xff byte is EOF to it too (and the
    /// reading goes on after it, with eof set).
    private mutating func next() -> Int {
        guard pos < data.count else { eof = true; return Self.newline }
        var c = Int(data[pos])
        pos += 1
        if c == 0xff { eof = true; return Self.newline }
        if c == 13, pos < data.count, data[pos] == 10 {
            pos += 1
            c = 10
        }
        return c
    }

    private static func isSpace(_ c: Int) -> Bool { c == 9 || c == 10 || c == 13 || c == 32 }
    private static func isAlpha(_ c: Int) -> Bool { (65...90).contains(c) || (97...122).contains(c) }
    private static func isKeyChar(_ c: Int) -> Bool { isAlpha(c) || (48...57).contains(c) || c == 45 }
    private static func lower(_ c: Int) -> UInt8 { UInt8((65...90).contains(c) ? c + 32 : c) }

    private static func cString(_ bytes: [UInt8]) -> [UInt8] {
        if let nul = bytes.firstIndex(of: 0) { return Array(bytes[..<nul]) }
        return bytes
    }

    mutating func parse(_ entry: ([UInt8], [UInt8]?) -> Void) {
        var comment = false
        var variable: [UInt8] = []
        var baseLength = 0
        // git skips a UTF-8 BOM in files, but compares it with the signed bytes of a blob:
        // there it never matches, and the BOM's first byte is a syntax error (below).
        while true {
            let c = next()
            if c == 10 {
                if eof { return }
                comment = false
                continue
            }
            if comment { continue }
            if Self.isSpace(c) { continue }
            if c == 35 || c == 59 { comment = true; continue }
            if c == 91 {  // '['
                variable = []
                guard baseVariable(&variable), !variable.isEmpty else { return }
                variable.append(46)
                baseLength = variable.count
                continue
            }
            guard Self.isAlpha(c) else { return }
            variable.removeSubrange(baseLength...)
            variable.append(Self.lower(c))
            guard value(&variable, entry) else { return }
        }
    }

    /// get_base_var: `[section]`, `[section.sub]` or `[section "subsection"]`.
    private mutating func baseVariable(_ name: inout [UInt8]) -> Bool {
        while true {
            let c = next()
            if eof { return false }
            if c == 93 { return true }  // ']'
            if Self.isSpace(c) { return extendedBaseVariable(&name, c) }
            guard Self.isKeyChar(c) || c == 46 else { return false }
            name.append(Self.lower(c))
        }
    }

    private mutating func extendedBaseVariable(_ name: inout [UInt8], _ first: Int) -> Bool {
        var c = first
        repeat {
            if c == 10 { return false }
            c = next()
        } while Self.isSpace(c)
        guard c == 34 else { return false }  // '"'
        name.append(46)
        while true {
            var c = next()
            if c == 10 { return false }
            if c == 34 { break }
            if c == 92 {  // '\\'
                c = next()
                if c == 10 { return false }
            }
            name.append(UInt8(c))
        }
        return next() == 93
    }

    /// get_value: the rest of a key, then `= value` or nothing (a boolean true: value nil).
    private mutating func value(_ name: inout [UInt8], _ entry: ([UInt8], [UInt8]?) -> Void) -> Bool {
        var c: Int
        while true {
            c = next()
            if eof { break }
            if !Self.isKeyChar(c) { break }
            name.append(Self.lower(c))
        }
        while c == 32 || c == 9 { c = next() }
        var value: [UInt8]?
        if c != 10 {
            guard c == 61, let parsed = parseValue() else { return false }  // '='
            value = parsed
        }
        entry(Self.cString(name), value.map(Self.cString))
        return true
    }

    /// parse_value: quotes, escapes (\t \b \n \\ \"), comments, inner spaces folded to one.
    private mutating func parseValue() -> [UInt8]? {
        var quote = false, comment = false
        var spaces = 0
        var out: [UInt8] = []
        while true {
            var c = next()
            if c == 10 { return quote ? nil : out }
            if comment { continue }
            if Self.isSpace(c) && !quote {
                if !out.isEmpty { spaces += 1 }
                continue
            }
            if !quote && (c == 59 || c == 35) { comment = true; continue }
            out.append(contentsOf: repeatElement(32, count: spaces))
            spaces = 0
            if c == 92 {
                c = next()
                switch c {
                case 10: continue
                case 116: c = 9
                case 98: c = 8
                case 110: c = 10
                case 92, 34: break
                default: return nil
                }
                out.append(UInt8(c))
                continue
            }
            if c == 34 { quote.toggle(); continue }
            out.append(UInt8(c))
        }
    }
}
