// PatchdServer: `run list|show|logs|diff|start|cancel|retry`.
// Access gates: list/show/logs/diff: read on the run's repository (others see "not found");
// start/cancel/retry: write on the repository.
import Foundation
import GitStore
import PatchdCore
import Sandboxing
import Agents
import Runs
import SSHServer

enum RunCommand {
    static let usage = """
        run list [REPO] [--status S] [--json]
               run show ID [--json]
               run logs ID [--follow]
               run diff ID [--stat]
               run start REPO BRANCH [--agent A] [--model M] [--wait] -- TASK TEXT...
               run cancel ID
               run retry ID [--wait]
        """

    static func run(_ words: [String], _ ctx: CommandContext, _ io: ProgramOutput) -> Int32 {
        let sub = words.count >= 2 ? words[1] : "list"
        let rest = Array(words.dropFirst(2))
        return io.guarded(usage: usage) {
            switch sub {
            case "list": return try list(CommandArguments(rest, switches: ["--json"], options: ["--status"], positionals: 0...1), ctx, io)
            case "show": return try show(CommandArguments(rest, switches: ["--json"], positionals: 1...1), ctx, io)
            case "logs": return try logs(CommandArguments(rest, switches: ["--follow"], positionals: 1...1), ctx, io)
            case "diff": return try diff(CommandArguments(rest, switches: ["--stat"], positionals: 1...1), ctx, io)
            case "start": return try start(CommandArguments(rest, switches: ["--wait"], options: ["--agent", "--model"], allowRest: true, positionals: 2...2), ctx, io)
            case "cancel": return try cancel(CommandArguments(rest, positionals: 1...1), ctx, io)
            case "retry": return try retry(CommandArguments(rest, switches: ["--wait"], positionals: 1...1), ctx, io)
            default: return io.unknownSubcommand(sub, usage)
            }
        }
    }

    struct RunLookupError: Error, CustomStringConvertible { let description: String }

    /// The run, if the caller may read its repository; the role they have there.
    static func visibleRun(_ raw: String, _ ctx: CommandContext) throws -> (RunRecord, RepoRole) {
        guard let id = Int64(raw), id > 0 else {
            throw RunLookupError(description: "run id must be a positive number, not '\(Terminal.sanitize(String(raw.prefix(40))))'")
        }
        guard let run = try ctx.runs.run(id: id), let (_, _, role) = ctx.readableRepo(run.repo) else {
            throw RunLookupError(description: "run \(id) not found")
        }
        return (run, role)
    }

    static func list(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        var status: RunStatus?
        if let s = args.values["--status"] {
            guard let parsed = RunStatus(rawValue: s) else {
                return io.usage("--status must be queued, running, succeeded, failed or canceled", "run list [REPO] [--status S] [--json]")
            }
            status = parsed
        }
        var repo: String?
        if let raw = args.positionals.first {
            guard let (name, _, _) = ctx.readableRepo(raw) else { return RepoCommand.notFound(raw, io) }
            repo = name.value
        }
        let readable = Set(try ctx.repoStore.visible(userID: ctx.identity.userID).map { $0.0.name })
        let runs = try ctx.runs.list(repo: repo, status: status, limit: 200).filter { readable.contains($0.repo) }
        if args.flags.contains("--json") { return io.json(runs.map(RunJSON.init)) }
        if runs.isEmpty { io.out("no runs\n"); return 0 }
        io.out(TextTable.render(["ID", "REPO", "BRANCH", "STATUS", "AGENT", "CREATED", "TITLE"], runs.map {
            [String($0.id!), $0.repo, Terminal.sanitize($0.branch), $0.status.rawValue, $0.agent,
             RelativeTime.describe($0.createdAt), Terminal.sanitize(String($0.title.prefix(50)))]
        }))
        return 0
    }

    static func show(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let (run, _) = try visibleRun(args.positionals[0], ctx)
        if args.flags.contains("--json") { return io.json(RunJSON(run)) }
        var lines: [(String, String)] = [
            ("run", "\(run.id!)"), ("repo", run.repo), ("branch", run.branch), ("status", run.status.rawValue),
            ("title", run.title), ("agent", run.agent), ("model", run.model ?? "-"), ("base", run.base),
        ]
        if let result = run.result { lines.append(("result", "\(result) (refs/patchd/runs/\(run.id!))")) }
        if let changed = run.changed { lines.append(("changed", changed ? "yes" : "no")) }
        if let check = run.checkStatus { lines.append(("check", check)) }
        if let limit = run.limitHit { lines.append(("limit", limit)) }
        if let error = run.error { lines.append(("error", error)) }
        lines.append(("created", "\(RunJSON.iso(run.createdAt)) (\(RelativeTime.describe(run.createdAt)))"))
        if let s = run.startedAt { lines.append(("started", RunJSON.iso(s))) }
        if let f = run.finishedAt { lines.append(("finished", RunJSON.iso(f))) }
        if run.inputTokens + run.outputTokens > 0 || run.costUSD > 0 {
            lines.append(("usage", "\(run.inputTokens) in, \(run.outputTokens) out, $\(String(format: "%.4f", run.costUSD))"))
        }
        io.out(lines.map { $0.0.padding(toLength: 9, withPad: " ", startingAt: 0) + Terminal.sanitize($0.1) }.joined(separator: "\n") + "\n")
        return 0
    }

    /// `--follow` streams until the run ends: exit 0 if it succeeded, 1 otherwise.
    static func logs(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let (run, _) = try visibleRun(args.positionals[0], ctx)
        guard args.flags.contains("--follow") else {
            for event in try ctx.runs.events(runID: run.id!) where !io.out(RunFollower.format(event) + "\n") { return 1 }
            return 0
        }
        return follow(run.id!, ctx, io)
    }

    static func follow(_ id: Int64, _ ctx: CommandContext, _ io: ProgramOutput) -> Int32 {
        guard let final = RunFollower(runs: ctx.runs).follow(runID: id, write: { io.out($0 + "\n") }) else { return 1 }
        return final.status == .succeeded ? 0 : 1
    }

    static func diff(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let (run, _) = try visibleRun(args.positionals[0], ctx)
        guard let result = run.result, let name = try? RepositoryName(run.repo) else {
            io.err("patchd: run \(run.id!) has no result commit (status \(run.status.rawValue)\(run.changed == false ? ", no changes" : ""))\n")
            return 0
        }
        // Diff text is the agent's output: escape sequences in it must not reach a terminal.
        io.out(Terminal.sanitize(ctx.repositories.diff(name, base: run.base, result: result, stat: args.flags.contains("--stat"))))
        return 0
    }

    static func start(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let startUsage = "run start REPO BRANCH [--agent A] [--model M] [--wait] -- TASK TEXT..."
        guard !args.rest.isEmpty else { return io.usage("missing the task text after --", startUsage) }
        var agent: AgentKind?
        if let a = args.values["--agent"] {
            guard let kind = AgentKind(rawValue: a) else { return io.usage("--agent must be builtin, claude-code or command", startUsage) }
            agent = kind
        }
        guard let (name, _, role) = ctx.readableRepo(args.positionals[0]) else { return RepoCommand.notFound(args.positionals[0], io) }
        guard role.canWrite else { return io.fail("starting runs on '\(name)' needs write access") }
        let branch = args.positionals[1]
        guard let base = try? GitRepository(openBare: ctx.repositories.path(for: name)).resolve("refs/heads/\(branch)") else {
            return io.fail("no branch '\(Terminal.sanitize(String(branch.prefix(100))))' in \(name)")
        }
        let defaultAgent = AgentKind(rawValue: ctx.repositories.defaultAgent) ?? .builtin
        var spec: TaskSpec
        do { spec = try TaskFile.fromText(args.rest.joined(separator: " "), agent: agent, defaultAgent: defaultAgent, file: "run start text") } catch {
            return io.fail("\(error)")
        }
        if let model = args.values["--model"] { spec.model = model }
        let run = try ctx.runs.enqueue(.init(repo: name.value, branch: branch, base: base, agent: agent ?? defaultAgent,
                                             spec: spec, source: "command", requestedBy: ctx.identity.userID))
        ctx.scheduler.wake()
        io.out("run \(run.id!) queued for \(Terminal.sanitize(branch)) (agent \(run.agent)); result: agent/\(Terminal.sanitize(branch))\n")
        return args.flags.contains("--wait") ? follow(run.id!, ctx, io) : 0
    }

    static func cancel(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let (run, role) = try visibleRun(args.positionals[0], ctx)
        guard role.canWrite else { return io.fail("canceling runs on '\(run.repo)' needs write access") }
        let id = run.id!
        if try ctx.runs.cancelQueued(id: id) {
            io.out("run \(id) canceled (it had not started)\n")
            return 0
        }
        guard ctx.scheduler.cancel(id) else { return io.fail("run \(id) is \(run.status.rawValue); only queued or running runs can be canceled") }
        // The sandbox's whole process tree is killed; wait for the run to record it.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, let current = try ctx.runs.run(id: id), !current.status.isFinished { usleep(50_000) }
        io.out("run \(id) canceled\n")
        return 0
    }

    static func retry(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let (old, role) = try visibleRun(args.positionals[0], ctx)
        guard role.canWrite else { return io.fail("retrying runs on '\(old.repo)' needs write access") }
        guard old.status.isFinished, let spec = old.taskSpec, let agent = AgentKind(rawValue: old.agent) else {
            return io.fail("run \(old.id!) is \(old.status.rawValue); only finished runs can be retried")
        }
        let run = try ctx.runs.enqueue(.init(repo: old.repo, branch: old.branch, base: old.base, agent: agent, spec: spec,
                                             source: "retry", requestedBy: ctx.identity.userID))
        ctx.scheduler.wake()
        io.out("run \(run.id!) queued (retry of \(old.id!))\n")
        return args.flags.contains("--wait") ? follow(run.id!, ctx, io) : 0
    }
}
