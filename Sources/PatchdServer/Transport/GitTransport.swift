// PatchdServer: `git-upload-pack` / `git-receive-pack` over SSH: name checks, access, auto-create, spawn.

import Foundation
import GitStore
import Logging
import PatchdCore
import PatchdSystem
import SSHKeys
import SSHServer
import Synchronization

/// Serves the pack protocol for one exec request. Unreadable repositories answer
/// exactly like missing ones; the first push to a missing name creates it, and a
/// push that fails to store anything removes it again.
struct GitTransport: Sendable {
    let repos: RepositoryStore
    let repoStore: RepoStore
    let logger: Logger
    /// Environment for hooks (data dir, patchd executable, ssh hint).
    let hooks: HookContext
    let counters: TransferCounters

    /// The verbs a git client sends, in both spellings. upload-archive is refused.
    static func service(for words: [String]) -> (PackService, [String])? {
        guard let first = words.first else { return nil }
        switch first {
        case "git-upload-pack": return (.uploadPack, Array(words.dropFirst()))
        case "git-receive-pack": return (.receivePack, Array(words.dropFirst()))
        case "git" where words.count >= 2 && words[1] == "upload-pack": return (.uploadPack, Array(words.dropFirst(2)))
        case "git" where words.count >= 2 && words[1] == "receive-pack": return (.receivePack, Array(words.dropFirst(2)))
        default: return nil
        }
    }

    static func isGitVerb(_ word: String) -> Bool {
        word.hasPrefix("git-") || word == "git"
    }

    func start(_ service: PackService, arguments: [String], request: ExecRequest) -> ChannelProgram {
        let verb = service.rawValue
        guard arguments.count == 1 else {
            return failure(verb, "usage: \(verb) 'REPO'", status: 2)
        }
        let name: RepositoryName
        do { name = try RepositoryName(fromClient: arguments[0]) } catch {
            return failure(verb, error.description)
        }
        let notFound = "repository '\(name)' not found (or you have no access to it). Push to it to create it."
        do {
            var created = false
            var record = try repoStore.repo(named: name)
            let userID = request.identity.userID
            if record == nil && repos.exists(name) {
                // A repository on disk without a database row (a partial restore, a copy by
                // hand): nobody owns it, so only an admin may use it, it is adopted by that
                // admin, and a failed push never deletes it.
                guard try repoStore.role(userID: userID, repo: nil) == .admin else { return failure(verb, notFound, repo: name) }
                record = try repoStore.insert(name: name, ownerID: userID) ?? repoStore.repo(named: name)
                logger.notice("Repository \(name) had no database row; adopted by \(request.identity.userName)")
            }
            if record == nil || !repos.exists(name) {
                // A readable-but-missing repo and a row without a directory both count as missing.
                guard service == .receivePack else { return failure(verb, notFound, repo: name) }
                if record == nil {
                    record = try repoStore.insert(name: name, ownerID: userID)
                    created = record != nil
                    record = try record ?? repoStore.repo(named: name)
                }
                if !repos.exists(name) {
                    let role = try repoStore.role(userID: userID, repo: record)
                    guard role.canWrite else { return failure(verb, notFound, repo: name) }
                    try repos.create(name)
                    created = true
                    logger.info("Created repository \(name) for \(request.identity.userName)")
                }
            }
            let role = try repoStore.role(userID: userID, repo: record)
            guard role.canRead else { return failure(verb, notFound, repo: name) }
            if service.writes && !role.canWrite {
                return failure(verb, "you have read access to '\(name)' but not write access; ask its owner for write access", repo: name)
            }
            var env = hooks.environment
            env["PATCHD_USER"] = request.identity.userName
            env["PATCHD_USER_ID"] = String(userID)
            env["PATCHD_REPO"] = name.value
            if let proto = request.environment["GIT_PROTOCOL"] { env["GIT_PROTOCOL"] = proto }
            let child = try repos.spawnPackProtocol(service, repository: name, environment: env)
            let started = MonotonicClock.now
            let onExit: (Int32) -> Void = { [repos, repoStore, logger, counters] status in
                counters.record(service: verb, status: status, seconds: MonotonicClock.now - started)
                guard created else { return }
                if status != 0 || repos.isEmpty(name) {
                    repos.delete(name)
                    try? repoStore.delete(name: name)
                    logger.info("Removed repository \(name): the push that created it stored nothing (exit \(status))")
                } else {
                    repos.pointHeadAtFirstBranch(name)
                }
            }
            return ProcessProgram(child: child, verb: verb, repo: name.value, onExit: onExit)
        } catch {
            logger.error("\(verb) \(name) failed: \(error)")
            return failure(verb, "internal error serving '\(name)'; the server log has details", repo: name)
        }
    }

    private func failure(_ verb: String, _ message: String, repo: RepositoryName? = nil, status: Int32 = 1) -> ChannelProgram {
        ThreadProgram.message(verb: verb, stderr: ErrorLine.format(message), status: status)
    }
}

/// The environment every git process passes on to patchd's hooks. Mostly fixed at start;
/// the SSH hint is known only once the listener is bound.
final class HookContext: Sendable {
    private let values: Mutex<[String: String]>
    init(base: [String: String]) { values = Mutex(base) }
    var environment: [String: String] { values.withLock { $0 } }
    func set(_ key: String, _ value: String) { values.withLock { $0[key] = value } }
}
