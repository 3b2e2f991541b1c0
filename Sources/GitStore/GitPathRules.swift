// GitStore: the tree entry names git's fsck refuses or treats specially, ported from git 2.39 (utf8.c, path.c, fsck.c).

/// Name rules of `git fsck` for one tree entry, byte for byte as git applies them, so a tree
/// patchd writes never trips `receive.fsckObjects`, `transfer.fsckObjects` or `fsck --strict`
/// in a client. The functions take a name's raw bytes (no NUL); git reads up to a NUL, and a
/// file name from `readdir` has none.
enum GitPathRules {
    /// The fsck finding for entry `name` with `mode`, or nil when git accepts it. Only
    /// findings that `fsck --strict` reports as errors or warnings: symlinked `.gitignore`,
    /// `.gitattributes` and `.mailmap` are info-level (git ignores their content) and allowed.
    static func refusal(name: [UInt8], isLink: Bool, isDirectory: Bool) -> String? {
        if name.isEmpty { return "an empty name (fsck: emptyName)" }
        if name.contains(UInt8(ascii: "/")) { return "a name with '/' (fsck: fullPathname)" }
        if name == [46] { return "the name '.' (fsck: hasDot)" }
        if name == [46, 46] { return "the name '..' (fsck: hasDotdot)" }
        if isHFSDot(name, "git") || isNTFSDotGit(name[...]) {
            return "a name git reads as .git (fsck: hasDotgit)"
        }
        // fsck also reads a backslash as a directory separator (NTFS).
        var rest = name[...]
        while let slash = rest.firstIndex(of: UInt8(ascii: "\\")) {
            rest = rest[(slash + 1)...]
            if isNTFSDotGit(rest) { return "a name git reads as .git on Windows (fsck: hasDotgit)" }
            if isLink && isNTFSDot(rest, "gitmodules", "gi7eba") {
                return "a symbolic link git reads as .gitmodules (fsck: gitmodulesSymlink)"
            }
        }
        if isDotGitmodules(name) {
            if isLink { return "a symbolic link .gitmodules (fsck: gitmodulesSymlink)" }
            if isDirectory { return "a directory .gitmodules (fsck: gitmodulesBlob)" }
        }
        if isDotGitattributes(name) && isDirectory { return "a directory .gitattributes (fsck: gitattributesBlob)" }
        return nil
    }

    /// `.gitmodules` as fsck matches it (case, HFS+ ignorables, NTFS short names and trailing dots).
    static func isDotGitmodules(_ name: [UInt8]) -> Bool {
        isHFSDot(name, "gitmodules") || isNTFSDot(name[...], "gitmodules", "gi7eba")
    }

    /// A name whose blob fsck checks as `.gitmodules`: the name itself, or (NTFS) the part after a backslash.
    static func isGitmodulesLike(_ name: [UInt8]) -> Bool {
        if isDotGitmodules(name) { return true }
        var rest = name[...]
        while let slash = rest.firstIndex(of: UInt8(ascii: "\\")) {
            rest = rest[(slash + 1)...]
            if isNTFSDot(rest, "gitmodules", "gi7eba") { return true }
        }
        return false
    }

    static func isDotGitattributes(_ name: [UInt8]) -> Bool {
        isHFSDot(name, "gitattributes") || isNTFSDot(name[...], "gitattributes", "gi7d29")
    }

    static func isDotGitignore(_ name: [UInt8]) -> Bool {
        isHFSDot(name, "gitignore") || isNTFSDot(name[...], "gitignore", "gi250a")
    }

    // MARK: HFS+ (git's utf8.c: is_hfs_dot_generic)

    /// Code points HFS+ ignores in names: ".g\u{200c}it" is ".git" there.
    private static let hfsIgnorable: Set<UInt32> = [
        0x200c, 0x200d, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e,
        0x206a, 0x206b, 0x206c, 0x206d, 0x206e, 0x206f, 0xfeff,
    ]

    /// True when `name` is "." + `needle`, ignoring ASCII case and HFS+-ignorable code points.
    static func isHFSDot(_ name: [UInt8], _ needle: String) -> Bool {
        var i = 0
        /// The next code point not ignored; 0 at the end and, as in git, for malformed UTF-8
        /// (so ".git\xff" counts as ".git", and ".g\xffit" does not).
        func next() -> UInt32 {
            while true {
                guard i < name.count, let (scalar, length) = decodeUTF8(name, at: i) else { i = name.count; return 0 }
                i += length
                if !hfsIgnorable.contains(scalar) { return scalar }
            }
        }
        guard next() == 46 else { return false }
        for expected in needle.utf8 {
            let c = next()
            guard c != 0, c <= 127, lower(UInt8(c)) == expected else { return false }
        }
        let last = next()
        return last == 0 || last == UInt32(UInt8(ascii: "/"))
    }

    /// One UTF-8 sequence as git's pick_one_utf8_char accepts it (no overlongs, surrogates or > U+10FFFF).
    private static func decodeUTF8(_ s: [UInt8], at i: Int) -> (UInt32, Int)? {
        let b0 = s[i]
        if b0 < 0x80 { return (UInt32(b0), 1) }
        let length: Int
        let initial: UInt32
        switch b0 {
        case 0xc2...0xdf: length = 2; initial = UInt32(b0 & 0x1f)
        case 0xe0...0xef: length = 3; initial = UInt32(b0 & 0x0f)
        case 0xf0...0xf4: length = 4; initial = UInt32(b0 & 0x07)
        default: return nil
        }
        guard i + length <= s.count else { return nil }
        var value = initial
        for k in 1..<length {
            let b = s[i + k]
            guard b & 0xc0 == 0x80 else { return nil }
            value = value << 6 | UInt32(b & 0x3f)
        }
        let minimum: UInt32 = length == 2 ? 0x80 : (length == 3 ? 0x800 : 0x10000)
        guard value >= minimum, value <= 0x10ffff, !(0xd800...0xdfff).contains(value) else { return nil }
        return (value, length)
    }

    // MARK: NTFS (git's path.c: is_ntfs_dotgit, is_ntfs_dot_generic)

    private static func lower(_ c: UInt8) -> UInt8 { (65...90).contains(c) ? c + 32 : c }

    /// `.git` and `git~1`, followed only by spaces and dots, up to the end, a separator or ':'.
    static func isNTFSDotGit(_ name: ArraySlice<UInt8>) -> Bool {
        var s = Array(name)
        s.append(0)
        var i = 0
        if s[0] == 46 {
            guard lower(s[1]) == UInt8(ascii: "g"), lower(s[2]) == UInt8(ascii: "i"), lower(s[3]) == UInt8(ascii: "t") else { return false }
            i = 4
        } else if lower(s[0]) == UInt8(ascii: "g") {
            guard lower(s[1]) == UInt8(ascii: "i"), lower(s[2]) == UInt8(ascii: "t"), s[3] == UInt8(ascii: "~"), s[4] == UInt8(ascii: "1") else {
                return false
            }
            i = 5
        } else {
            return false
        }
        while true {
            let c = s[i]
            i += 1
            if c == 0 || c == UInt8(ascii: "/") || c == UInt8(ascii: "\\") || c == UInt8(ascii: ":") { return true }
            if c != 46 && c != 32 { return false }
        }
    }

    /// "." + `dotName` or its NTFS short names (`gitmod~1`, `gi7eba~1`), then only spaces and dots.
    static func isNTFSDot(_ name: ArraySlice<UInt8>, _ dotName: String, _ shortPrefix: String) -> Bool {
        // git reads past the name's end into its NUL: pad with enough NULs to index freely.
        let s = Array(name) + [UInt8](repeating: 0, count: dotName.utf8.count + 10)
        let needle = Array(dotName.utf8)
        let prefix = Array(shortPrefix.utf8)
        func onlySpacesAndPeriods(from start: Int) -> Bool {
            var i = start
            while true {
                let c = s[i]
                i += 1
                if c == 0 || c == UInt8(ascii: ":") { return true }
                if c != 32 && c != 46 { return false }
            }
        }
        func caseEqual(_ at: Int, _ n: Int) -> Bool {
            (0..<n).allSatisfy { lower(s[at + $0]) == lower(needle[$0]) }
        }
        if s[0] == 46 && caseEqual(1, needle.count) { return onlySpacesAndPeriods(from: needle.count + 1) }
        if caseEqual(0, 6) && s[6] == UInt8(ascii: "~") && (49...52).contains(s[7]) { return onlySpacesAndPeriods(from: 8) }
        var sawTilde = false
        var i = 0
        while i < 8 {
            let c = s[i]
            if c == 0 { return false }
            if sawTilde {
                if !(48...57).contains(c) { return false }
            } else if c == UInt8(ascii: "~") {
                i += 1
                if !(49...57).contains(s[i]) { return false }
                sawTilde = true
            } else if i >= 6 {
                return false
            } else if c & 0x80 != 0 {
                return false
            } else if lower(c) != prefix[i] {
                return false
            }
            i += 1
        }
        return onlySpacesAndPeriods(from: 8)
    }

    // MARK: blob contents fsck checks

    /// fsck's `.gitattributes` checks (git 2.39.1+): at most 100 MB, every line under 2048 bytes
    /// (up to the first NUL, as git reads it).
    static func gitattributesRefusal(_ data: [UInt8]) -> String? {
        if data.count > 100 * 1024 * 1024 { return ".gitattributes over 100 MB (fsck: gitattributesLarge)" }
        var lineStart = 0
        for (i, byte) in data.enumerated() {
            if byte == 0 { break }
            if byte == 10 { lineStart = i + 1; continue }
            if i - lineStart + 1 >= 2048 { return "a .gitattributes line of 2048 bytes or more (fsck: gitattributesLineLength)" }
        }
        return nil
    }
}
