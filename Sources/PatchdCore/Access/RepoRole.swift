// PatchdCore: who may do what to a repository (admin, owner, write or read collaborator, nobody).

/// A user's standing on one repository, weakest first so roles compare with `<`.
package enum RepoRole: Int, Sendable, Comparable, CustomStringConvertible {
    case none = 0, read, write, owner, admin

    package static func < (a: RepoRole, b: RepoRole) -> Bool { a.rawValue < b.rawValue }

    package var canRead: Bool { self >= .read }
    package var canWrite: Bool { self >= .write }
    /// Manage collaborators, delete the repository.
    package var canAdminister: Bool { self >= .owner }

    package var description: String {
        switch self {
        case .none: return "none"
        case .read: return "read"
        case .write: return "write"
        case .owner: return "owner"
        case .admin: return "admin"
        }
    }
}
