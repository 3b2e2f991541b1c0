// PatchdCore: the stable JSON shape of a run (run show --json, run list --json, the result note).

package import Foundation

/// The documented shape (README, `run show --json`): id, repo, branch, status, agent, model, base, result, result_ref, changed,
/// created_at, started_at, finished_at, error, usage {input_tokens, output_tokens,
/// cache_read_tokens, cache_write_tokens, cost_usd};
/// plus title, check, limit, resumed_from (the run this one continues), checkpoint and checkpoint_ref
/// (the latest checkpoint commit and its ref). Times are ISO 8601 UTC; absent values are null.
package struct RunJSON: Encodable {
    struct Usage: Encodable {
        let input_tokens: Int
        let output_tokens: Int
        let cache_read_tokens: Int
        let cache_write_tokens: Int
        let cost_usd: Double
    }
    let id: Int64
    let repo: String
    let branch: String
    let title: String
    let status: String
    let agent: String
    let model: String?
    let base: String
    let result: String?
    let result_ref: String?
    let changed: Bool?
    let check: String?
    let limit: String?
    let created_at: String
    let started_at: String?
    let finished_at: String?
    let error: String?
    let usage: Usage
    /// Mode, allowlist and every connection through the egress proxy (nil: the run made no network plan yet).
    let network: RunNetworkRecord?
    /// The run this one continues (a follow-up), or null.
    let follows: Int64?
    /// The cached environment: key, hit, setup_seconds (nil: the task has no setup).
    let environment: RunEnvironmentRecord?
    let resumed_from: Int64?
    let checkpoint: String?
    let checkpoint_ref: String?
    /// Best of N: the attempt's group, number, the group's size, the winner and why (null for a single run).
    let attempt: Attempt?

    struct Attempt: Encodable {
        let group: Int64
        let number: Int
        let of: Int
        /// The winning attempt's run id; null when none won or the group is not decided yet.
        let winner: Int64?
        /// Why the winner won (or none did); null until the group is decided.
        let reason: String?

        /// Every key always present, as in the run object.
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(group, forKey: .group)
            try c.encode(number, forKey: .number)
            try c.encode(of, forKey: .of)
            try c.encode(winner, forKey: .winner)
            try c.encode(reason, forKey: .reason)
        }

        enum CodingKeys: String, CodingKey { case group, number, of, winner, reason }
    }

    package init(_ run: RunRecord) {
        id = run.id ?? 0
        repo = run.repo
        branch = run.branch
        title = run.title
        status = run.status.rawValue
        agent = run.agent
        model = run.model
        base = run.base
        result = run.result
        result_ref = run.resultRef
        changed = run.changed
        check = run.checkStatus
        limit = run.limitHit
        created_at = Self.iso(run.createdAt)
        started_at = run.startedAt.map(Self.iso)
        finished_at = run.finishedAt.map(Self.iso)
        error = run.error
        network = run.networkRecord
        follows = run.follows
        environment = run.environmentRecord
        resumed_from = run.resumedFrom
        checkpoint = run.checkpoint
        checkpoint_ref = run.checkpoint == nil ? nil : PatchdRefs.checkpoints(run.id ?? 0)
        attempt = run.attemptGroup.map { group in
            Attempt(
                group: group, number: run.attemptNumber ?? 1, of: run.attemptOf ?? 1, winner: run.attemptWinner, reason: run.attemptReason)
        }
        usage = Usage(
            input_tokens: run.inputTokens, output_tokens: run.outputTokens, cache_read_tokens: run.cacheReadTokens,
            cache_write_tokens: run.cacheWriteTokens, cost_usd: run.costUSD)
    }

    enum CodingKeys: String, CodingKey {
        case id, repo, branch, title, status, agent, model, base, result, result_ref, changed, check, limit
        case created_at, started_at, finished_at, error, usage, network, follows, environment, resumed_from, checkpoint
        case checkpoint_ref, attempt
    }

    /// Every key is always present; nil is encoded as null (scripts can rely on the shape).
    package func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(repo, forKey: .repo)
        try c.encode(branch, forKey: .branch)
        try c.encode(title, forKey: .title)
        try c.encode(status, forKey: .status)
        try c.encode(agent, forKey: .agent)
        try c.encode(model, forKey: .model)
        try c.encode(base, forKey: .base)
        try c.encode(result, forKey: .result)
        try c.encode(result_ref, forKey: .result_ref)
        try c.encode(changed, forKey: .changed)
        try c.encode(check, forKey: .check)
        try c.encode(limit, forKey: .limit)
        try c.encode(created_at, forKey: .created_at)
        try c.encode(started_at, forKey: .started_at)
        try c.encode(finished_at, forKey: .finished_at)
        try c.encode(error, forKey: .error)
        try c.encode(usage, forKey: .usage)
        try c.encode(network, forKey: .network)
        try c.encode(follows, forKey: .follows)
        try c.encode(environment, forKey: .environment)
        try c.encode(resumed_from, forKey: .resumed_from)
        try c.encode(checkpoint, forKey: .checkpoint)
        try c.encode(checkpoint_ref, forKey: .checkpoint_ref)
        try c.encode(attempt, forKey: .attempt)
    }

    package static func iso(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    package static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
