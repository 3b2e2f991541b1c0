// Offsite: the git side of replication: read refs, bundle what is new since the last upload, and rebuild a repository from bundles.

import Foundation
import PatchdCore
import PatchdSystem

/// Runs the `git` CLI in a bare repository with patchd's clean environment (no system or
/// global config, patchd's HOME). Everything here reads the repository or writes a file
/// outside it, except `unbundle`/`setRefs` on restore, which write a new repository.
struct GitReplication {
    let git: String
    let home: String

    var environment: [String: String] { GitEnvironment.make(home: home) }

    private func run(_ args: [String], in repo: String, stdin: String? = nil) throws(OffsiteError) -> (Int32, String, String) {
        do {
            let r = try runProcess(git, args, environment: environment, workingDirectory: repo, stdinBytes: stdin.map { Array($0.utf8) })
            return (r.status, String(decoding: r.stdout, as: UTF8.self), String(decoding: r.stderr, as: UTF8.self))
        } catch {
            throw .local("cannot run git \(args.first ?? ""): \(error)")
        }
    }

    private func checked(_ args: [String], in repo: String, stdin: String? = nil) throws(OffsiteError) -> String {
        let (status, out, err) = try run(args, in: repo, stdin: stdin)
        guard status == 0 else {
            throw .local(
                "git \(args.prefix(3).joined(separator: " ")) in \(repo) exited \(status): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return out
    }

    /// Every ref and its object id, and HEAD's target when HEAD is symbolic.
    func refs(_ repo: String) throws(OffsiteError) -> (refs: [String: String], head: String?) {
        var refs: [String: String] = [:]
        for line in try checked(["for-each-ref", "--format=%(objectname) %(refname)"], in: repo).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { refs[String(parts[1])] = String(parts[0]) }
        }
        let (status, head, _) = try run(["symbolic-ref", "-q", "HEAD"], in: repo)
        let target = head.trimmingCharacters(in: .whitespacesAndNewlines)
        return (refs, status == 0 && !target.isEmpty ? target : nil)
    }

    /// Those of `oids` the repository still has (a force push and a gc may have dropped some).
    func present(_ oids: Set<String>, in repo: String) throws(OffsiteError) -> [String] {
        guard !oids.isEmpty else { return [] }
        let out = try checked(
            ["cat-file", "--batch-check=%(objectname) %(objecttype)"], in: repo,
            stdin: oids.sorted().joined(separator: "\n") + "\n")
        return out.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            return parts.count == 2 && parts[1] != "missing" ? String(parts[0]) : nil
        }
    }

    /// A bundle of every ref with the objects not reachable from `excluding` (all of them when
    /// it is empty). False, and no file, when there is nothing new (git refuses an empty bundle).
    func createBundle(_ repo: String, to path: String, excluding: [String]) throws(OffsiteError) -> Bool {
        let stdin = excluding.map { "^" + $0 }.joined(separator: "\n") + (excluding.isEmpty ? "" : "\n")
        let (status, _, err) = try run(["bundle", "create", "--quiet", path, "--all", "--stdin"], in: repo, stdin: stdin)
        if status == 0 { return true }
        if err.contains("empty bundle") { return false }
        throw .local("git bundle create in \(repo) exited \(status): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    /// Stores a bundle's objects in `repo` (its prerequisites must be there already).
    func unbundle(_ bundle: String, into repo: String) throws(OffsiteError) {
        _ = try checked(["bundle", "unbundle", bundle], in: repo)
    }

    /// Creates every ref of `refs` and points HEAD at `head`.
    func setRefs(_ refs: [String: String], head: String?, in repo: String) throws(OffsiteError) {
        let script = refs.sorted { $0.key < $1.key }.map { "create \($0.key) \($0.value)" }.joined(separator: "\n")
        if !script.isEmpty { _ = try checked(["update-ref", "--stdin"], in: repo, stdin: script + "\n") }
        if let head { _ = try checked(["symbolic-ref", "HEAD", head], in: repo) }
    }

    /// `git fsck` of the whole repository (connectivity and object integrity).
    func fsck(_ repo: String) throws(OffsiteError) {
        _ = try checked(["fsck", "--no-progress", "--no-dangling"], in: repo)
    }

    func initBare(_ repo: String) throws(OffsiteError) {
        do { try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true) } catch {
            throw .local("cannot create \(repo): \(error.localizedDescription)")
        }
        _ = try checked(["init", "--quiet", "--bare", "."], in: repo)
    }
}
