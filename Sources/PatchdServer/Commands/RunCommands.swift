// PatchdServer: `run show|logs|diff ID` over SSH. Access gate: read access to the run's repository.
import Foundation
import GitStore
import SSHServer

/// Run shortcuts. A run whose repository the user may not read answers exactly like a
/// missing run.
struct RunCommands: Sendable {
    let runs: RunStore
    let repoStore: RepoStore
    let repositories: RepositoryStore

    static let usage = """
        usage: run show ID [--json]
               run logs ID [--follow]
               run diff ID [--stat]
        """

    func start(_ words: [String], request: ExecRequest) -> ChannelProgram {
        let userID = request.identity.userID
        return ThreadProgramFactory.make(verb: "run") { io in
            guard words.count >= 3 else { return usage(io) }
            let sub = words[1]
            let flags = Set(words.dropFirst(3))
            let allowed: Set<String> = sub == "show" ? ["--json"] : sub == "logs" ? ["--follow"] : sub == "diff" ? ["--stat"] : []
            guard ["show", "logs", "diff"].contains(sub), flags.isSubset(of: allowed) else { return usage(io) }
            guard let id = Int64(words[2]), id > 0 else {
                io.err("patchd: error: run id must be a positive number, not '\(Terminal.sanitize(String(words[2].prefix(40))))'\n")
                return 2
            }
            guard let run = visibleRun(id, userID: userID) else {
                io.err("patchd: error: run \(id) not found\n")
                return 1
            }
            switch sub {
            case "show": return show(run, json: flags.contains("--json"), io: io)
            case "logs": return logs(run, follow: flags.contains("--follow"), io: io)
            default: return diff(run, stat: flags.contains("--stat"), io: io)
            }
        }
    }

    private func usage(_ io: ProgramOutput) -> Int32 {
        io.err("patchd: error: wrong usage\n\(Self.usage)\n")
        return 2
    }

    func visibleRun(_ id: Int64, userID: Int64) -> RunRecord? {
        guard let run = try? runs.run(id: id), let name = try? RepositoryName(run.repo),
              let repo = try? repoStore.repo(named: name),
              let role = try? repoStore.role(userID: userID, repo: repo), role.canRead else { return nil }
        return run
    }

    func show(_ run: RunRecord, json: Bool, io: ProgramOutput) -> Int32 {
        if json {
            io.out(((try? RunJSON.encode(RunJSON(run))) ?? "{}") + "\n")
            return 0
        }
        var lines: [(String, String)] = [
            ("run", "\(run.id!)"), ("repo", run.repo), ("branch", run.branch), ("status", run.status.rawValue),
            ("title", run.title), ("agent", run.agent), ("model", run.model ?? "-"), ("base", run.base),
        ]
        if let result = run.result { lines.append(("result", "\(result) (refs/patchd/runs/\(run.id!))")) }
        if let changed = run.changed { lines.append(("changed", changed ? "yes" : "no")) }
        if let check = run.checkStatus { lines.append(("check", check)) }
        if let limit = run.limitHit { lines.append(("limit", limit)) }
        if let error = run.error { lines.append(("error", error)) }
        lines.append(("created", RunJSON.iso(run.createdAt)))
        if let s = run.startedAt { lines.append(("started", RunJSON.iso(s))) }
        if let f = run.finishedAt { lines.append(("finished", RunJSON.iso(f))) }
        if run.inputTokens + run.outputTokens > 0 || run.costUSD > 0 {
            lines.append(("usage", "\(run.inputTokens) in, \(run.outputTokens) out, $\(String(format: "%.4f", run.costUSD))"))
        }
        for (key, value) in lines {
            io.out(key.padding(toLength: 9, withPad: " ", startingAt: 0) + Terminal.sanitize(value) + "\n")
        }
        return 0
    }

    /// `--follow` streams until the run ends: exit 0 if it succeeded, 1 otherwise.
    func logs(_ run: RunRecord, follow: Bool, io: ProgramOutput) -> Int32 {
        let id = run.id!
        if !follow {
            for event in (try? runs.events(runID: id)) ?? [] { if !io.out(RunFollower.format(event) + "\n") { return 1 } }
            return 0
        }
        guard let final = RunFollower(runs: runs).follow(runID: id, write: { io.out($0 + "\n") }) else { return 1 }
        return final.status == .succeeded ? 0 : 1
    }

    func diff(_ run: RunRecord, stat: Bool, io: ProgramOutput) -> Int32 {
        guard let result = run.result, let name = try? RepositoryName(run.repo) else {
            io.err("patchd: run \(run.id!) has no result commit (status \(run.status.rawValue)\(run.changed == false ? ", no changes" : ""))\n")
            return run.status.isFinished ? 0 : 1
        }
        io.out(repositories.diff(name, base: run.base, result: result, stat: stat))
        return 0
    }
}

/// Builds a ThreadProgram, or a failed one if the OS refuses pipes.
enum ThreadProgramFactory {
    static func make(verb: String, repo: String? = nil, _ body: @escaping @Sendable (ProgramOutput) -> Int32) -> ChannelProgram {
        (try? ThreadProgram(verb: verb, repo: repo, body: body))
            ?? ThreadProgram.message(verb: verb, stderr: "patchd: error: the server is out of resources\n", status: 1)
    }
}
