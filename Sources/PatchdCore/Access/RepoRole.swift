// PatchdCore: who may do what to a repository (admin, owner, write or read collaborator, nobody).

/// A user's standing on one repository, weakest first so roles compare with `<`.
public enum RepoRole: Int, Sendable, Comparable, CustomStringConvertible {
    case none = 0, read, write, owner, admin

    public static func < (a: RepoRole, b: RepoRole) -> Bool { a.rawValue < b.rawValue }

    public var canRead: Bool { self >= .read }
    public var canWrite: Bool { self >= .write }
    /// Manage collaborators, delete the repository.
    public var canAdminister: Bool { self >= .owner }

    public var description: String {
        switch self {
        case .none: return "none"
        case .read: return "read"
        case .write: return "write"
        case .owner: return "owner"
        case .admin: return "admin"
        }
    }
}
