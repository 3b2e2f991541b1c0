// PatchdCommands: `run start REPO BRANCH [--agent A] [--model M] [--follow-up ID] [--attempts N] [--wait] -- TASK TEXT...`: a run without a push. Gate: write.

import ArgumentParser
import GitStore
import PatchdCore
import SSHKeys

struct RunStart: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "start a run without pushing",
        discussion: """
            The run works on BRANCH as it is on the server; its result is pushed to agent/BRANCH.
            With --follow-up ID it starts from run ID's result instead (that run must be on this
            repository and have one), and its agent is told what ID and the runs before it did.
            With --attempts N, N attempts run from the same base side by side and the winner
            (README "Best of N") moves agent/BRANCH; commands see PATCHD_ATTEMPT (1..N).
            With --agent command the text is the script. A branch whose name starts with '-' is
            written refs/heads/-name (anything else with a leading '-' is taken for an option).
            """)
    static let gate = CommandGate.repository(.write, action: "starting runs")

    @Argument(help: "The repository.")
    var repo: String
    @Argument(help: "The branch to start from, e.g. main or refs/heads/main.")
    var branch: String
    @Option(help: "builtin, claude-code, codex or command (default: the server's).")
    var agent: String?
    @Option(help: "The model, for the LLM agents.")
    var model: String?
    @Option(name: .customLong("follow-up"), help: "Continue run ID: start from its result, with what it did as context.")
    var followUp: Int64?
    @Option(help: "Best of N: run N attempts from the same base (capped by the server's max_attempts).")
    var attempts: Int?
    @Flag(help: "Stream the run's log until it ends: exit 0 if it succeeded, 1 otherwise.")
    var wait = false
    @Argument(parsing: .postTerminator, help: "The task, after '--'.")
    var task: [String] = []

    var gateSubject: String? { repo }

    func validate() throws {
        guard !task.isEmpty else { throw ValidationError("missing the task text after --") }
        if let attempts, !(1...TaskFile.maxAttempts).contains(attempts) {
            throw ValidationError("--attempts must be a whole number from 1 to \(TaskFile.maxAttempts)")
        }
        if let agent, AgentKind(rawValue: agent) == nil {
            throw ValidationError("--agent must be one of " + AgentKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
    }

    /// The branch's short name: `refs/heads/X` names X, so X may start with '-'.
    var branchName: String { branch.hasPrefix("refs/heads/") ? String(branch.dropFirst("refs/heads/".count)) : branch }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let name = try invocation.repo.name
        let branch = branchName
        guard !branch.isEmpty, var base = try? GitRepository(openBare: ctx.repositories.path(for: name)).resolve("refs/heads/\(branch)") else {
            return invocation.fail("no branch '\(shown(branch, 100))' in \(name)")
        }
        if let followUp {
            // Another repository's run looks missing, as everywhere.
            guard let earlier = try ctx.runs.run(id: followUp), earlier.repo == name.value else {
                return invocation.fail("run \(followUp) not found in \(name)")
            }
            guard let result = earlier.result else {
                return invocation.fail("run \(followUp) has no result to continue (\(earlier.status.rawValue)); start without --follow-up")
            }
            base = result
        }
        let kind = agent.flatMap(AgentKind.init(rawValue:))
        let defaultAgent = AgentKind(rawValue: ctx.repositories.defaultAgent) ?? .builtin
        var spec: TaskSpec
        do { spec = try TaskFile.fromText(task.joined(separator: " "), agent: kind, defaultAgent: defaultAgent, file: "run start text") } catch {
            return invocation.fail("\(error)")
        }
        if let model { spec.model = model }
        // As a push is refused in pre-receive: an agent this server cannot run is said now, with the fix.
        if let refusal = ctx.agents?.refusal(for: kind ?? defaultAgent) { return invocation.fail(refusal) }
        let plan = RunStore.AttemptPlan(spec: spec, option: attempts, cap: ctx.maxAttempts)
        let runs = try ctx.runs.enqueue(
            .init(
                repo: name.value, branch: branch, base: base, agent: kind ?? defaultAgent,
                spec: spec, source: "command", requestedBy: ctx.identity.userID, follows: followUp),
            plan: plan)
        ctx.scheduler.wake()
        for line in plan.queuedLines(runs) { invocation.out(line + "\n") }
        guard wait else { return 0 }
        return runs.count > 1 ? invocation.followGroup(runs) : invocation.follow(runs[0].id!)
    }
}
