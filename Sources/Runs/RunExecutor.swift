// Runs: executes one run: workspace, setup, agent, check, result commit, refs, note, record.

package import Agents
import Foundation
package import GitStore
package import Logging
package import PatchdCore
import PatchdSystem
package import Sandboxing

/// Everything the executor needs, shared by all runs.
package struct RunEnvironment: Sendable {
    let runs: RunStore
    let repoStore: RepoStore?
    let repositories: RepositoryStore
    let layout: DataLayout
    let sandbox: Sandbox
    let agents: [AgentKind: Agent]
    let defaultLimits: SandboxLimits
    let maxTimeoutSeconds: Int
    let hostName: String
    let logger: Logger
    let egress: EgressSettings
    /// The environment cache (nil: off) and its caps; setup's secrets (nil: none).
    let environments: EnvironmentStore?
    let environmentCache: EnvironmentCacheSettings
    let secrets: SecretStore?
    /// Best of N: the first attempt that can win wins at once and the others are canceled.
    package var attemptsCancelRest = false

    /// - Parameter repoStore: the repositories' settings (network mode, allowlist); nil: none set.
    package init(
        runs: RunStore, repoStore: RepoStore? = nil, repositories: RepositoryStore, layout: DataLayout, sandbox: Sandbox,
        agents: [AgentKind: Agent], defaultLimits: SandboxLimits, maxTimeoutSeconds: Int, hostName: String, logger: Logger,
        egress: EgressSettings = EgressSettings(), environments: EnvironmentStore? = nil,
        environmentCache: EnvironmentCacheSettings = EnvironmentCacheSettings(), secrets: SecretStore? = nil
    ) {
        self.environments = environments
        self.environmentCache = environmentCache
        self.secrets = secrets
        self.runs = runs
        self.repoStore = repoStore
        self.egress = egress
        self.repositories = repositories
        self.layout = layout
        self.sandbox = sandbox
        self.agents = agents
        self.defaultLimits = defaultLimits
        self.maxTimeoutSeconds = maxTimeoutSeconds
        self.hostName = hostName
        self.logger = logger
    }

}

package struct RunExecutor: Sendable {
    let env: RunEnvironment

    package init(env: RunEnvironment) {
        self.env = env
    }

    /// Runs `run` to completion and records the outcome. Never throws: every failure
    /// becomes the run's error.
    func execute(_ claimed: RunRecord, cancel: CancellationFlag) {
        var run = claimed
        let id = run.id!
        let runLog = RunLog(runs: env.runs, runID: id)
        defer { runLog.flush() }
        let log: @Sendable (RunEvent) -> Void = { event in runLog.append(event) }
        let started = MonotonicClock.now
        guard let spec = run.taskSpec, let kind = AgentKind(rawValue: run.agent) else {
            finish(&run, status: .failed, error: "the run's task could not be read", log: log)
            return
        }
        guard let agent = env.agents[kind] else {
            finish(&run, status: .failed, error: "the \(kind.rawValue) agent is not available on this server", log: log)
            return
        }
        let name: RepositoryName
        do { name = try RepositoryName(run.repo) } catch {
            finish(&run, status: .failed, error: "invalid repository name", log: log)
            return
        }
        let barePath = env.repositories.path(for: name)
        var limits = env.defaultLimits
        let timeout = min(spec.timeoutSeconds ?? env.maxTimeoutSeconds, env.maxTimeoutSeconds)
        limits.wallClockSeconds = Double(timeout)
        log(RunEvent(.info, "started: agent \(kind.rawValue), sandbox \(env.sandbox.name), timeout \(timeout)s"))
        // The pushed commit, or where an interrupted or resumed run's work stands.
        let start = startPoint(run, barePath: barePath, log: log)

        let workspace: Workspace
        do {
            workspace = try Workspace.create(
                runID: id, workRoot: env.layout.work, bareRepository: barePath, commit: run.base,
                branch: run.branch, gitExecutable: env.repositories.gitExecutable,
                environment: env.repositories.gitEnvironment(),
                objectsPathInSandbox: env.sandbox.objectsPath(
                    SandboxMounts(
                        workspace: "", repositoryObjects: barePath + "/objects", scratch: "")),
                startTree: start.commit)
        } catch {
            // A half-made checkout (a full disk, say) would keep the space the record below needs.
            try? FileManager.default.removeItem(atPath: "\(env.layout.work)/run-\(id)")
            finish(&run, status: .failed, error: "cannot create the workspace: \(error)", log: log)
            return
        }
        defer { workspace.remove() }
        // Before any sandboxed command: the checkout as git recorded it, so the result snapshot
        // re-reads only the files that changed since.
        let baseline = WorkspaceBaseline.read(workspace: workspace.path)
        var mounts = SandboxMounts(workspace: workspace.path, repositoryObjects: barePath + "/objects", scratch: workspace.root)
        // Best of N: every command of an attempt knows which one it is (a command task can vary by it).
        if let number = run.attemptNumber { mounts.environment["PATCHD_ATTEMPT"] = String(number) }
        mounts.extra = agent.sandboxBinds(mounts)
        // The repository's row, read once: its settings (network) and its environment cache.
        let repoID = (try? env.repoStore?.repo(named: name))??.id
        let egress: RunEgress?
        do {
            egress = try planEgress(run: run, repoID: repoID, spec: spec, mounts: &mounts, log: log)
        } catch {
            finish(&run, status: .failed, error: "\(error)", log: log)
            return
        }
        // Stops squid and the bridge on every path out; the record keeps what they saw.
        defer { _ = egress?.finish() }
        // A cached environment is mounted (or copied) before the sandbox opens; a hit skips setup.
        let cached = env.environments.flatMap { store in
            EnvironmentCache(env: env, store: store).prepare(
                run: run, spec: spec, repoID: repoID, barePath: barePath, workspace: workspace,
                egress: egress, mounts: &mounts, log: log)
        }
        defer { cached?.close() }
        runLog.mask(cached?.maskedValues ?? [])
        // One sandbox for the whole run: setup, the agent's commands and check share its /tmp,
        // HOME and processes; closing it (on every path out) kills them all.
        let runSandbox: RunSandbox
        do {
            runSandbox = try env.sandbox.open(mounts: mounts, limits: limits, cancel: cancel)
        } catch {
            finish(&run, status: .failed, error: "cannot start the run sandbox: \(error)", log: log)
            return
        }
        defer { runSandbox.close() }
        if let egress, mounts.extra.contains(where: { $0.inside == egress.bind.inside }) {
            let started = try? runSandbox.execute(script: egress.insideListenerScript, environment: [:], limits: limits) { _ in }
            if started?.succeeded != true {
                log(RunEvent(.error, "network: the sandbox's end of the egress bridge did not start (is socat installed?)"))
            }
        }
        var context = AgentContext(
            runID: id, task: spec, sandbox: env.sandbox, mounts: mounts, limits: limits,
            cancel: cancel, deadline: started + Double(timeout), runSandbox: runSandbox, log: log)
        if run.follows != nil {
            context.earlier = FollowUpContext.render(for: run, runs: env.runs)
            if let chain = try? env.runs.followChain(of: run), !chain.isEmpty {
                let told = kind.usesModel ? "; the agent is told what they did" : ""
                log(RunEvent(.info, "follows run " + chain.map(String.init).joined(separator: " <- run ") + told))
            }
        }
        var outcome: AgentOutcome
        var checkStatus: String?
        // The workspace as a tree (untracked caches excluded), written into the bare repository.
        let taker = WorkspaceTaker(
            barePath: barePath, workspace: workspace.path, base: run.base, start: start.commit,
            excludes: spec.resultExcludePatterns, maxFileBytes: env.defaultLimits.maxFileBytes - 1, baseline: baseline)
        let takeSnapshot = { () throws -> TakenResult in try taker.snapshot() }
        // After each turn of an LLM agent: a checkpoint commit and its conversation (RunCheckpointer).
        let checkpointer = RunCheckpointer(
            runs: env.runs, runID: id, taker: taker, lastCommit: start.lastCheckpoint,
            identity: GitIdentity(name: "patchd", email: "patchd@\(env.hostName)"), scrub: env.layout.scrub, log: log)
        context.checkpointer = checkpointer
        context.resume = start.resume
        var afterSetup: String?
        var agentRan = false
        do {
            if let setup = cached.map({ $0.script(spec) }) ?? spec.setup, !setup.isEmpty {
                log(RunEvent(.tool, "$ \(cached?.hit == true ? "maintenance" : "setup"): \(ScriptSummary.firstLine(setup))"))
                egress?.enter(.setup)
                let setupStarted = MonotonicClock.now
                let result = try context.runScript(
                    setup,
                    environment: (egress?.environment(for: .setup) ?? [:]).merging(cached?.setupEnvironment(env.sandbox) ?? [:]) { own, _ in own })
                cached?.seconds = MonotonicClock.now - setupStarted
                run.environment = cached?.record
                if !result.succeeded {
                    let why = result.limit.map { "setup: \($0.explanation)" } ?? "setup: script exited \(result.exitStatus)"
                    outcome = AgentOutcome(succeeded: false, summary: "", error: why, limit: result.limit)
                    if let egress { run.network = egress.finish().json }
                    return record(&run, outcome: outcome, checkStatus: nil, taken: nil, spec: spec, workspace: workspace, log: log)
                }
                cached?.setupSucceeded(mounts: mounts, workspace: workspace, runID: id, log: log)
                // What setup wrote is not the agent's work: the result is the change from here.
                afterSetup = try takeSnapshot().tree
                checkpointer.setAfterSetup(afterSetup)
            }
            run.environment = cached?.record
            agentRan = true
            egress?.enter(.agent)
            outcome = try agent.run(context)
        } catch {
            outcome = AgentOutcome(succeeded: false, summary: "", error: "sandbox error: \(error)")
        }
        // The result is taken before check runs, so nothing check writes can reach it.
        var taken: Result<TakenResult, Error>?
        if agentRan && cancel.reason != .shutdown {
            taken = Result { try taker.agentWork(afterSetup: afterSetup) }
        }
        do {
            if let check = spec.check, !check.isEmpty, agentRan, outcome.limit == nil, cancel.reason == nil {
                log(RunEvent(.check, "$ check: \(ScriptSummary.firstLine(check))"))
                egress?.enter(.check)
                let result = try context.runScript(check, environment: egress?.environment(for: .check) ?? [:])
                checkStatus = result.succeeded ? "passed" : "failed"
                log(RunEvent(.check, "check \(checkStatus!) (exit \(result.exitStatus))"))
                if result.limit != nil { outcome.limit = result.limit }
                if !result.succeeded && outcome.succeeded {
                    outcome.succeeded = false
                    outcome.error = result.limit.map { "check: \($0.explanation)" } ?? "check failed (exit \(result.exitStatus))"
                }
            }
        } catch {
            outcome.succeeded = false
            outcome.error = outcome.error ?? "sandbox error in check: \(error)"
        }
        if let reason = cancel.reason, outcome.limit == nil { outcome.limit = reason }
        // Stopping: leave the run as it is; the scheduler puts it back in the queue.
        if cancel.reason == .shutdown { return }
        if let egress { run.network = egress.finish().json }
        record(&run, outcome: outcome, checkStatus: checkStatus, taken: taken, spec: spec, workspace: workspace, log: log)
    }

    /// The run's egress (nil for a sandbox without its own network namespace, which has the
    /// host's network anyway). Unless its mode is none, adds the bridge's bind and the proxy
    /// variables to `mounts`.
    private func planEgress(
        run: RunRecord, repoID: Int64?, spec: TaskSpec, mounts: inout SandboxMounts, log: @escaping @Sendable (RunEvent) -> Void
    ) throws -> RunEgress? {
        guard env.sandbox.hasPrivateNetwork else {
            if spec.network != nil || spec.allowedDomains != nil {
                log(RunEvent(.network, "network: sandbox \(env.sandbox.name) has the host's network; network: and allowed_domains do not apply"))
            }
            return nil
        }
        let settings = repoID.flatMap { try? env.repoStore?.repoSettings(repoID: $0) } ?? RepoSettings()
        let egress = try RunEgress(
            task: spec, repository: settings, server: env.egress, scratch: mounts.scratch, repositoryName: run.repo, log: log)
        // Under none the record still says so (mode and allowlist, no connection); so it does
        // under setup for a task without setup, which needs no bridge at all.
        let used = egress.mode == .on || (egress.mode == .setup && !(spec.setup ?? "").isEmpty)
        guard used else { return egress }
        try egress.prepare()
        mounts.extra.append(egress.bind)
        // Under on every command gets the proxy settings; under setup only setup's command does,
        // so the agent's tools find no network exactly as before (not a proxy that refuses).
        if egress.mode == .on { mounts.environment.merge(egress.environment) { _, new in new } }
        return egress
    }

    /// The result as taken from the workspace (before check): its tree, whether it differs
    /// from the pushed one, and what the run log should say about left-out paths.
    struct TakenResult {
        var tree: String
        var changed: Bool
        var notes: [String]
    }

    /// Commits the result taken from the workspace (whatever the outcome: partial work is kept
    /// on refs/patchd/runs/ID; nil: nothing to take, as when setup failed) and stores the record.
    private func record(
        _ run: inout RunRecord, outcome: AgentOutcome, checkStatus: String?, taken: Result<TakenResult, Error>?,
        spec: TaskSpec, workspace: Workspace, log: @Sendable (RunEvent) -> Void
    ) {
        let id = run.id!
        // A non-output event also flushes the buffered output, so the note below sees all of it.
        log(RunEvent(.info, "collecting the result from the workspace"))
        run.checkStatus = checkStatus
        run.limitHit = outcome.limit?.rawValue
        run.summary = outcome.summary
        run.model = outcome.model ?? run.model
        run.inputTokens = outcome.usage.inputTokens
        run.outputTokens = outcome.usage.outputTokens
        run.cacheReadTokens = outcome.usage.cacheReadTokens
        run.cacheWriteTokens = outcome.usage.cacheWriteTokens
        run.costUSD = outcome.usage.costUSD
        let canceled = outcome.limit == .canceled
        var status: RunStatus = canceled ? .canceled : (outcome.succeeded ? .succeeded : .failed)
        var failure = outcome.error
        do {
            let name = try RepositoryName(run.repo)
            let writer = try ResultWriter(bareRepository: env.repositories.path(for: name))
            // A file at the size cap was cut short by RLIMIT_FSIZE: it is not a result (takeSnapshot).
            let snapshot = try taken?.get() ?? TakenResult(tree: "", changed: false, notes: [])
            for note in snapshot.notes { log(RunEvent(.info, note)) }
            run.changed = snapshot.changed
            if snapshot.changed {
                let message = commitMessage(run, spec: spec, outcome: outcome, checkStatus: checkStatus)
                let identity = GitIdentity(name: "patchd", email: "patchd@\(env.hostName)")
                let commit = try writer.commit(tree: snapshot.tree, parent: run.base, message: message, identity: identity)
                run.result = commit
                try writer.setReference(PatchdRefs.run(id), to: commit, log: "patchd: run \(id)")
                // Runs started without a push (run start, retries) would leave their refs loose
                // until the next push: pack here too once enough are (loose refs by the thousand
                // slow every push and fetch).
                _ = try? env.repositories.packRefsIfMany(name)
                var location = PatchdRefs.run(id)
                if run.attemptGroup != nil {
                    // An attempt does not move agent/BRANCH itself: its group's decision does (AttemptGroups).
                    run.diffLines = try? writer.changedLines(from: run.base, to: commit)
                    if status == .succeeded { location += "; agent/\(run.branch) moves if this attempt wins" }
                } else if status == .succeeded {
                    do {
                        try moveAgentBranch(run.branch, to: commit, repository: name, runID: id, log: log)
                        location += " and agent/\(run.branch)"
                    } catch {
                        status = .failed
                        failure = "cannot move agent/\(run.branch): \(error) (the result is on \(PatchdRefs.run(id)))"
                    }
                }
                log(RunEvent(.info, "result: \(commit.prefix(12)) on \(location)"))
                // The note last, from the final status, so it never disagrees with the record.
                // A note that cannot be written loses no work: the record and the refs hold it.
                do {
                    try writer.addNote(to: commit, text: note(run, status: status, error: failure), notesRef: PatchdRefs.notes, identity: identity)
                } catch {
                    log(RunEvent(.info, "the run's note could not be written: \(env.layout.scrub("\(error)"))"))
                }
            } else {
                log(RunEvent(.info, "no changes"))
            }
        } catch {
            status = canceled ? .canceled : .failed
            failure = "cannot build the result: \(error)"
        }
        // The workspace goes before the record: when a run filled the disk, its files are what
        // keeps the database from recording the end.
        workspace.remove()
        finish(&run, status: status, error: failure, log: log)
    }

    /// Points agent/BRANCH at `commit`. A stale agent/ ref that makes the name impossible (git keeps
    /// refs as files: agent/feat blocks agent/feat/x and the other way round; it happens when a
    /// branch was deleted and another grew below its name) is removed first: its commit stays on
    /// its own run's refs/patchd/runs/ID, so no result is lost.
    func moveAgentBranch(
        _ branch: String, to commit: String, repository name: RepositoryName, runID id: Int64,
        log: @Sendable (RunEvent) -> Void
    ) throws {
        let ref = PatchdRefs.agentBranch(branch)
        let repository = try GitRepository(openBare: env.repositories.path(for: name))
        for stale in try repository.referencesBlocking(ref) where PatchdRefs.isReserved(stale) {
            let shown = stale.dropFirst(PatchdRefs.branchPrefix.count)
            let target = (try? repository.resolve(stale)).map { " (it pointed at \($0.prefix(12)))" } ?? ""
            try repository.deleteReference(stale)
            log(RunEvent(.info, "removed \(shown)\(target): it blocked agent/\(branch); the result it named stays on its run's ref"))
        }
        try ResultWriter(bareRepository: env.repositories.path(for: name)).setReference(ref, to: commit, log: "patchd: run \(id)")
    }

    private func finish(_ run: inout RunRecord, status: RunStatus, error: String?, log: @Sendable (RunEvent) -> Void) {
        // Errors often carry a path (libgit2's, the workspace's): a user never sees the server's.
        let error = error.map(env.layout.scrub)
        run.status = status
        run.error = error
        run.finishedAt = Date()
        // The checkpoint column moved while the agent worked (RunStore.saveCheckpoint): keep its latest.
        if let latest = try? env.runs.run(id: run.id!)?.checkpoint { run.checkpoint = latest }
        if let error { log(RunEvent(.error, error)) }
        log(RunEvent(.info, "\(status.rawValue)"))
        // A full disk or a busy database can pass: retry for about 15 s before giving
        // up (then the next start's recovery re-queues or fails the run).
        var delay = 0.25
        while true {
            do {
                try env.runs.update(run)
                if let group = run.attemptGroup { settleAttempts(group: group) }
                return
            } catch {
                env.logger.error("Cannot record the end of run \(run.id ?? 0): \(error)\(delay > 8 ? "; giving up" : "; retrying in \(delay) s")")
                if delay > 8 { return }
                Thread.sleep(forTimeInterval: delay)
                delay *= 2
            }
        }
    }

    func commitMessage(_ run: RunRecord, spec: TaskSpec, outcome: AgentOutcome, checkStatus: String?) -> String {
        var title = spec.title.isEmpty ? "patchd run \(run.id!) on \(run.branch)" : spec.title
        if title.count > 72 { title = String(title.prefix(71)) + "…" }
        var lines = [title, ""]
        let summary = outcome.summary.trimmingCharacters(in: .whitespacesAndNewlines)
        if !summary.isEmpty { lines += [summary, ""] }
        if let error = outcome.error { lines += ["Unfinished: \(error)", ""] }
        lines.append("Patchd-Run: \(run.id!)")
        lines.append("Patchd-Agent: \(run.agent)")
        lines.append("Patchd-Model: \(outcome.model ?? run.model ?? "none")")
        if let checkStatus { lines.append("Patchd-Check: \(checkStatus)") }
        if let number = run.attemptNumber { lines.append("Patchd-Attempt: \(number)/\(run.attemptOf ?? number) of group \(run.attemptGroup ?? 0)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The note on the result commit: the run record as JSON, then the transcript.
    func note(_ run: RunRecord, status: RunStatus, error: String?) -> String {
        var copy = run
        copy.status = status
        copy.error = error
        copy.finishedAt = Date()
        let json = (try? RunJSON.encode(RunJSON(copy))) ?? "{}"
        let events = (try? env.runs.events(runID: run.id!)) ?? []
        let transcript = events.map { "[\($0.kind)] \($0.text)" }.joined(separator: "\n")
        return json + "\n\n--- transcript ---\n" + String(transcript.suffix(512 * 1024)) + "\n"
    }
}
