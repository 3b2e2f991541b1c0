// GitStore: a libgit2 repository handle (one owner; freed at deinit) with the few operations patchd needs.
import CLibGit2
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Owns one `git_repository*`. Not Sendable: open it where you use it.
public final class GitRepository {
    let raw: OpaquePointer

    public init(openBare path: String) throws(GitError) {
        LibGit2.initialize()
        var repo: OpaquePointer?
        try git("open \(path)") { git_repository_open_bare(&repo, path) }
        raw = repo!
    }

    /// Creates a bare repository whose HEAD names `initialBranch`.
    public static func createBare(at path: String, initialBranch: String) throws(GitError) -> GitRepository {
        LibGit2.initialize()
        var options = git_repository_init_options()
        try git("init options") { git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION)) }
        options.flags = UInt32(GIT_REPOSITORY_INIT_BARE.rawValue | GIT_REPOSITORY_INIT_MKPATH.rawValue
                               | GIT_REPOSITORY_INIT_NO_REINIT.rawValue)
        var repo: OpaquePointer?
        let branch = strdup(initialBranch)
        defer { free(branch) }
        options.initial_head = UnsafePointer(branch)
        try git("init \(path)") { git_repository_init_ext(&repo, path, &options) }
        return GitRepository(raw: repo!)
    }

    private init(raw: OpaquePointer) { self.raw = raw }

    deinit { git_repository_free(raw) }

    /// Sets string config values in the repository's own config file.
    public func setConfig(_ values: [(String, String)]) throws(GitError) {
        var config: OpaquePointer?
        try git("open config") { git_repository_config(&config, raw) }
        defer { git_config_free(config) }
        for (key, value) in values {
            try git("set \(key)") { git_config_set_string(config, key, value) }
        }
    }

    /// Names of all references (refs/heads/..., refs/tags/...).
    public func referenceNames() throws(GitError) -> [String] {
        var array = git_strarray()
        try git("list references") { git_reference_list(&array, raw) }
        defer { git_strarray_dispose(&array) }
        return (0..<array.count).compactMap { array.strings[$0].map { String(cString: $0) } }
    }

    public func setHead(_ refName: String) throws(GitError) {
        try git("set HEAD to \(refName)") { git_repository_set_head(raw, refName) }
    }

    /// The commit a reference points at, as hex.
    public func resolve(_ refName: String) throws(GitError) -> String {
        var oid = git_oid()
        try git("resolve \(refName)") { git_reference_name_to_id(&oid, raw, refName) }
        return String(cString: git_oid_tostr_s(&oid))
    }

    public var headTarget: String? {
        var ref: OpaquePointer?
        guard git_reference_lookup(&ref, raw, "HEAD") == 0 else { return nil }
        defer { git_reference_free(ref) }
        return git_reference_symbolic_target(ref).map { String(cString: $0) }
    }
}
