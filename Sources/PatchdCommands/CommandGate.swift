// PatchdCommands: the access gate each command declares as data, and its enforcement before the command runs.

package import ArgumentParser
import Foundation
package import PatchdCore

/// Who may run a command. Declared once per subcommand (`static let gate`), enforced by the
/// router before `run`, so the rule is visible in one place and a new command cannot forget it
/// (the roles x commands test in UnitTests/CommandsAccessTests.swift lists every command).
package enum CommandGate: Sendable, Equatable {
    /// Any authenticated user (commands that show only the caller's own things).
    case anyone
    /// Server admins only; `denial` is the error everyone else gets.
    case admin(denial: String)
    /// A role on the repository the command's REPO argument names. Without read access the
    /// repository looks missing ("repository 'X' not found"); with read but less than `role`,
    /// the denial names `action`. `optional`: a command that may be given no REPO at all.
    case repository(RepoRole, action: String = "", optional: Bool = false)
    /// A role on the repository of the run the command's ID argument names; a run you cannot
    /// read looks missing ("run N not found").
    case run(RepoRole, action: String = "")

    /// The error for a caller who can read the repository but has less than `role` there.
    static func denial(_ role: RepoRole, action: String, repo: String) -> String {
        role.canAdminister ? "only the owner of '\(repo)' or an admin can \(action)" : "\(action) on '\(repo)' needs write access"
    }
}

/// One SSH subcommand: parsed by ArgumentParser, gated by `gate`, then run with what the gate
/// resolved. Its `run()` from ParsableCommand is never called.
package protocol SSHCommand: ParsableCommand {
    static var gate: CommandGate { get }
    /// The word the gate resolves: REPO for repository gates, the run ID for run gates.
    var gateSubject: String? { get }
    func run(_ invocation: CommandInvocation) throws -> Int32
}

extension SSHCommand {
    package var gateSubject: String? { nil }
}

/// A command's call: who asks, where to write, and what its gate resolved.
package struct CommandInvocation: Sendable {
    package let context: CommandContext
    package let output: any CommandOutput
    /// The repository of a repository gate (nil for an optional one given no REPO).
    package let repository: ResolvedRepository?
    /// The run of a run gate.
    package let run: ResolvedRun?
    /// The command's usage line(s), for usage errors found after parsing.
    package let usageText: String

    /// A usage error of this command: exit 2.
    package func usage(_ why: String) -> Int32 { output.usage(why, usageText) }
    package func fail(_ message: String) -> Int32 { output.fail(message) }
    package func json<T: Encodable>(_ value: T) -> Int32 { output.json(value) }
    @discardableResult package func out(_ text: String) -> Bool { output.out(text) }

    /// The repository a repository gate resolved. Throws (never crashes the daemon) for a
    /// command that asks without declaring such a gate.
    var repo: ResolvedRepository {
        get throws(GateMisuse) {
            guard let repository else { throw GateMisuse(description: "internal error: this command has no repository gate") }
            return repository
        }
    }

    /// The run a run gate resolved; throws for a command without a run gate.
    var runRecord: ResolvedRun {
        get throws(GateMisuse) {
            guard let run else { throw GateMisuse(description: "internal error: this command has no run gate") }
            return run
        }
    }
}

/// A command used what its gate did not resolve: a bug, reported as an error, not a crash.
struct GateMisuse: Error, CustomStringConvertible {
    let description: String
}

/// What the gate decided: go on with what it resolved, or stop with an error.
enum GateDecision {
    case allowed(repository: ResolvedRepository?, run: ResolvedRun?)
    case denied(String)
}

extension CommandGate {
    /// Checks the gate for `context`'s user against `subject` (the REPO or run ID word).
    func check(_ subject: String?, _ context: CommandContext) throws -> GateDecision {
        switch self {
        case .anyone:
            return .allowed(repository: nil, run: nil)
        case .admin(let denial):
            return context.isAdmin ? .allowed(repository: nil, run: nil) : .denied(denial)
        case .repository(let role, let action, let optional):
            guard let subject else {
                // Fail closed: a repository gate on a command that names no repository is a bug.
                return optional ? .allowed(repository: nil, run: nil) : .denied("internal error: no repository to check access on")
            }
            guard let repo = context.readableRepo(subject) else { return .denied(Self.repositoryNotFound(subject)) }
            guard repo.role >= role else { return .denied(Self.denial(role, action: action, repo: repo.name.value)) }
            return .allowed(repository: repo, run: nil)
        case .run(let role, let action):
            guard let subject else { return .denied("internal error: no run to check access on") }
            guard let id = Int64(subject), id > 0 else {
                return .denied("run id must be a positive number, not '\(shown(subject))'")
            }
            guard let run = try context.services.runs.run(id: id), let repo = context.readableRepo(run.repo) else {
                return .denied("run \(id) not found")
            }
            guard repo.role >= role else { return .denied(Self.denial(role, action: action, repo: run.repo)) }
            return .allowed(repository: nil, run: ResolvedRun(record: run, role: repo.role))
        }
    }

    static func repositoryNotFound(_ raw: String) -> String { "repository '\(shown(raw, 100))' not found" }
}
