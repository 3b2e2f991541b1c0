// Runs: `patchd hook pre-receive|post-receive`: reserved refs, task validation, queueing, push feedback.

import Foundation
import GitStore
import PatchdCore
import PatchdSystem

/// Runs inside git-receive-pack's hook process (a child of the daemon's git), with the
/// environment the server set (PATCHD_*) plus git's (GIT_DIR, quarantine, push options).
/// It talks to the daemon through the database and the wake-up socket.
package struct HookRunner {
    let env: [String: String]
    let write: (String) -> Void

    package init(environment: [String: String], write: @escaping (String) -> Void) {
        env = environment
        self.write = write
    }

    static let zero = String(repeating: "0", count: 40)

    struct Update {
        let old: String
        let new: String
        let ref: String
        /// A branch of the user's (patchd's own agent/* are not).
        var isBranch: Bool { ref.hasPrefix(PatchdRefs.branchPrefix) && !isReserved }
        var isReserved: Bool { PatchdRefs.isReserved(ref) }
        var isDeletion: Bool { new == HookRunner.zero }
        var branch: String { String(ref.dropFirst(PatchdRefs.branchPrefix.count)) }
    }

    static func parseUpdates(_ input: String) -> [Update] {
        input.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 3 else { return nil }
            return Update(old: String(parts[0]), new: String(parts[1]), ref: String(parts[2]))
        }
    }

    /// Whether the receive-pack running this hook hides patchd's refs (`-c receive.hideRefs=...`,
    /// which git hands to hooks in GIT_CONFIG_PARAMETERS): then it refuses their updates itself.
    var receivePackHidesPatchdRefs: Bool {
        let parameters = env["GIT_CONFIG_PARAMETERS"] ?? ""
        return PatchdRefs.hidden.allSatisfy { parameters.contains("'receive.hideRefs'='\($0)'") }
    }

    var defaultAgent: AgentKind { env["PATCHD_DEFAULT_AGENT"].flatMap(AgentKind.init(rawValue:)) ?? .builtin }

    /// The server's max_attempts (best of N): a task's attempts are capped by it.
    var maxAttempts: Int { env["PATCHD_MAX_ATTEMPTS"].flatMap { Int($0) }.map { max($0, 1) } ?? RunStore.AttemptPlan.defaultCap }

    /// One line to the pusher. The data directory's path never reaches them (errors carry it).
    func say(_ line: String) {
        let shown = env["PATCHD_DATA_DIR"].map { line.replacingOccurrences(of: $0, with: "DATA") } ?? line
        write("patchd: " + shown + "\n")
    }

    // MARK: pre-receive

    /// Exit status 0 accepts the push; anything else refuses all of it (git is atomic here).
    package func preReceive(stdin: String) -> Int32 {
        let updates = Self.parseUpdates(stdin)
        let options: PushOptions
        do { options = try PushOptions(environment: env) } catch {
            say("error: \(error)")
            return 1
        }
        let reserved = updates.filter(\.isReserved)
        if !reserved.isEmpty {
            // receive-pack refuses these refs one by one (they are hidden from it) and updates the
            // rest: a `git push --mirror` must not fail as a whole for refs the pusher never wrote.
            // Without that setting (a repository not served by patchd) the whole push is refused.
            guard receivePackHidesPatchdRefs else {
                say(
                    "error: \(Terminal.sanitize(reserved[0].ref)) is written by patchd only (results live on agent/* and refs/patchd/*); push your work to another branch"
                )
                return 1
            }
            for update in reserved.prefix(5) {
                say("\(Terminal.sanitize(update.ref)) is written by patchd only; it was left as it is (results live on agent/* and refs/patchd/*)")
            }
            if reserved.count > 5 { say("... and \(reserved.count - 5) more of patchd's refs, left as they are") }
            say(
                "to copy a repository without patchd's refs: "
                    + ShellQuote.command([
                        "git", "push", "origin", "refs/heads/*:refs/heads/*", "^refs/heads/agent/*", "refs/tags/*:refs/tags/*",
                    ]))
        }
        let branches = updates.filter { $0.isBranch && !$0.isDeletion }
        let repo: GitRepository
        do { repo = try openRepository() } catch {
            say("error: cannot read the pushed objects: \(error)")
            return 1
        }
        if let text = options.task {
            guard branches.count == 1 else {
                say("error: -o task=... needs exactly one branch in the push (this push updates \(branches.count)); push one branch at a time")
                return 1
            }
            do {
                let spec = try TaskFile.fromText(text, agent: nil, defaultAgent: defaultAgent)
                if let why = agentRefusal(spec) {
                    say("error: -o task: \(why)")
                    say("nothing from this push was stored")
                    return 1
                }
            } catch {
                say("error: \(error)")
                return 1
            }
        }
        for update in branches {
            do {
                let file = try taskFile(at: update.new, in: repo)
                // A push that would queue a run (as post-receive decides) must name an agent this
                // server runs; a branch whose unchanged task names another still takes code.
                if options.task == nil, let file, file.blob != blobID(update.old, TaskFile.path, in: repo) || options.run,
                    let why = agentRefusal(file.spec)
                {
                    say("error: branch \(Terminal.sanitize(update.branch)): \(TaskFile.path): \(why)")
                    say("nothing from this push was stored")
                    return 1
                }
            } catch {
                say("error: branch \(Terminal.sanitize(update.branch)): \(error)")
                say("fix the file and push again; nothing from this push was stored")
                return 1
            }
        }
        return 0
    }

    /// Why the server cannot run the agent `spec` asks for (or the default), with the fix; nil
    /// when it can, or when the daemon did not say which agents it runs.
    func agentRefusal(_ spec: TaskSpec) -> String? {
        AgentAvailability(environmentValue: env[AgentAvailability.environmentKey])?.refusal(for: spec.agent ?? defaultAgent)
    }

    /// The repository being pushed to, read with libgit2 in this process (no git programs):
    /// GIT_DIR (the hook's working directory), plus the push's quarantine in pre-receive.
    func openRepository() throws -> GitRepository {
        let repo = try GitRepository(openBare: env["GIT_DIR"] ?? ".")
        if env["GIT_QUARANTINE_PATH"] != nil, let objects = env["GIT_OBJECT_DIRECTORY"] {
            try repo.addObjectDirectory(objects)
        }
        return repo
    }

    /// The parsed task file at `commit` and its blob id, nil when it has none. Blob size is checked before reading.
    func taskFile(at commit: String, in repo: GitRepository) throws -> (spec: TaskSpec, blob: String)? {
        guard commit != Self.zero, let blob = try repo.blob(at: TaskFile.path, in: commit) else { return nil }
        guard blob.size <= TaskFile.maxBytes else {
            throw HookError("\(TaskFile.path): the file is \(blob.size) bytes; the limit is \(TaskFile.maxBytes) (64 KiB): shorten it")
        }
        return (try TaskFile.parse(try repo.blobContent(blob.id), defaultAgent: defaultAgent), blob.id)
    }

    func blobID(_ commit: String, _ path: String, in repo: GitRepository) -> String? {
        guard commit != Self.zero else { return nil }
        return (try? repo.blob(at: path, in: commit))??.id
    }

    // MARK: post-receive

    package func postReceive(stdin: String) -> Int32 {
        let updates = Self.parseUpdates(stdin)
        guard let dataDir = env["PATCHD_DATA_DIR"], let repo = env["PATCHD_REPO"] else {
            say("error: missing hook environment; was this push made through patchd?")
            return 1
        }
        let options = (try? PushOptions(environment: env)) ?? PushOptions()
        let branches = updates.filter { $0.isBranch && !$0.isDeletion }
        let database: PatchdDatabase
        do { database = try PatchdDatabase(path: DataLayout(root: dataDir).database) } catch {
            say("error: cannot open the database: \(error)")
            return 1
        }
        // A new repository's HEAD names the first branch this push created (main if among them).
        if let name = try? RepositoryName(repo) {
            let repositories = repositories(dataDir)
            repositories.pointHeadAtFirstBranch(name, pushedBranches: updates.filter { $0.isBranch && $0.old == Self.zero }.map(\.ref))
            // Each run writes its ref as a loose file; once enough have piled up they are packed
            // (every push and v0 fetch reads every loose ref). A failure leaves them loose: correct, slower.
            _ = try? repositories.packRefsIfMany(name)
        }
        let runs = RunStore(db: database)
        let repository: GitRepository
        do { repository = try openRepository() } catch {
            say("error: cannot read the pushed branches: \(error)")
            return 1
        }
        // One entry per branch: its run, or its attempts (best of N).
        var queued: [(runs: [RunRecord], plan: RunStore.AttemptPlan)] = []
        for update in branches {
            do {
                let spec: TaskSpec
                let source: String
                if let text = options.task {
                    spec = try TaskFile.fromText(text, agent: nil, defaultAgent: defaultAgent)
                    source = "option"
                } else {
                    guard let file = try taskFile(at: update.new, in: repository) else {
                        if options.run {
                            say("branch \(Terminal.sanitize(update.branch)) has no \(TaskFile.path); nothing to run (push it with -o task=\"...\")")
                        }
                        continue
                    }
                    let changed = file.blob != blobID(update.old, TaskFile.path, in: repository)
                    guard changed || options.run else {
                        // Silence here reads as a broken server: say why, and how to run it again.
                        say(
                            "branch \(Terminal.sanitize(update.branch)): \(TaskFile.path) is unchanged, so no run; "
                                + "push with -o run to run it again (or: run retry ID)")
                        continue
                    }
                    spec = file.spec
                    source = "file"
                }
                let (base, follows) = try followUp(update, options: options, repo: repo, runs: runs, in: repository)
                let new = RunStore.NewRun(
                    repo: repo, branch: update.branch, base: base,
                    agent: spec.agent ?? defaultAgent, spec: spec, source: source,
                    requestedBy: env["PATCHD_USER_ID"].flatMap { Int64($0) }, follows: follows)
                let plan = RunStore.AttemptPlan(spec: spec, option: options.attempts, cap: maxAttempts)
                queued.append((try runs.enqueue(new, plan: plan), plan))
            } catch {
                say("error: branch \(Terminal.sanitize(update.branch)): \(error)")
            }
        }
        guard !queued.isEmpty else { return 0 }
        RunWakeup.notify(dataDir: dataDir)
        let ssh = env["PATCHD_SSH_HINT"] ?? "ssh git@HOST"
        for (group, plan) in queued {
            for line in plan.queuedLines(group) { say(line) }
            if !options.wait {
                for run in group { say("follow it:  \(ssh) " + ShellQuote.command(["run", "logs", String(run.id!), "--follow"])) }
            }
        }
        guard options.wait else { return 0 }
        let follower = RunFollower(runs: runs)
        for (group, _) in queued {
            if group.count > 1 {
                guard
                    let final = follower.followGroup(
                        group, prefix: "patchd: ",
                        write: {
                            write($0 + "\n"); return true
                        })
                else { return 0 }
                groupOutcome(final, repoName: repo, dataDir: dataDir)
                continue
            }
            let run = group[0]
            guard
                let final = follower.follow(
                    runID: run.id!, prefix: "patchd: ",
                    write: { line in
                        write(line + "\n")
                        return true
                    })
            else { return 0 }
            outcome(final, repoName: repo, dataDir: dataDir)
        }
        return 0
    }

    /// How far back a pushed tip is searched for a run's result it builds on.
    static let followUpDepth = 200

    /// Where a branch's run starts and which run it continues. With `-o follow-up`: from the
    /// branch's latest result (agent/BRANCH), continuing its run. Otherwise from the pushed
    /// tip, continuing the run whose result is the nearest of the tip's ancestors, if any (the
    /// user adopted a result and pushed a new task on top of it).
    func followUp(
        _ update: Update, options: PushOptions, repo: String, runs: RunStore, in repository: GitRepository
    ) throws -> (base: String, follows: Int64?) {
        if options.followUp {
            let ref = PatchdRefs.agentBranch(update.branch)
            guard let result = try? repository.resolve(ref), let run = try runs.runWithResult(repo: repo, among: [result]) else {
                throw HookError(
                    "-o follow-up: \(Terminal.sanitize(ref)) holds no result to continue; push without -o follow-up for a fresh run")
            }
            return (result, run.id)
        }
        let history = (try? repository.ancestors(of: update.new, limit: Self.followUpDepth)) ?? []
        return (update.new, try runs.runWithResult(repo: repo, among: history)?.id)
    }

    /// The repositories as the hook sees them (reads only: names, HEAD, diffs).
    private func repositories(_ dataDir: String) -> RepositoryStore {
        let layout = DataLayout(root: dataDir)
        return RepositoryStore(root: layout.repos, gitExecutable: env["PATCHD_GIT"] ?? "/usr/bin/git", gitHome: layout.home, maxPushBytes: 0)
    }

    /// A group's end: each attempt, the winner and why with its diffstat and fetch hint, or that none won.
    private func groupOutcome(_ attempts: [RunRecord], repoName: String, dataDir: String) {
        for line in RunFollower.groupSummary(attempts) { say(line) }
        guard let name = try? RepositoryName(repoName) else { return }
        if let winner = attempts.first(where: { $0.id != nil && $0.id == $0.attemptWinner }), let result = winner.result {
            for statLine in repositories(dataDir).diff(name, base: winner.base, result: result, stat: true).split(separator: "\n") {
                say("  " + Terminal.sanitize(String(statLine)))
            }
            say("fetch it:   " + ShellQuote.command(["git", "fetch", "origin", "agent/" + winner.branch]) + " && git diff HEAD FETCH_HEAD")
        } else {
            for run in attempts where run.result != nil {
                say("attempt \(run.attemptNumber ?? 0)'s work: " + ShellQuote.command(["git", "fetch", "origin", PatchdRefs.run(run.id!)]))
            }
        }
    }

    private func outcome(_ run: RunRecord, repoName: String, dataDir: String) {
        let id = run.id!
        var line = "run \(id) \(run.status.rawValue)"
        if let error = run.error { line += ": \(Terminal.sanitize(error))" }
        if let check = run.checkStatus { line += " (check \(check))" }
        say(line)
        guard let result = run.result, let name = try? RepositoryName(repoName) else {
            if run.changed == false { say("no changes") }
            return
        }
        for statLine in repositories(dataDir).diff(name, base: run.base, result: result, stat: true).split(separator: "\n") {
            say("  " + Terminal.sanitize(String(statLine)))
        }
        if run.status == .succeeded {
            say("fetch it:   " + ShellQuote.command(["git", "fetch", "origin", "agent/" + run.branch]) + " && git diff HEAD FETCH_HEAD")
        } else {
            say("partial work: " + ShellQuote.command(["git", "fetch", "origin", PatchdRefs.run(id)]))
        }
    }
}

struct HookError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
