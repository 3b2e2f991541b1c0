// Agents: list prices of OpenAI's models for the codex agent's cost count (USD per million tokens).

import Foundation

/// Looked up by exact name, then by the longest prefix (so "gpt-5" prices "gpt-5-codex" and
/// "gpt-5.1-codex-max" alike). A server's `prices:` setting overrides these. OpenAI bills cached
/// input at a discount and has no cache-write charge; reasoning tokens are output tokens.
package enum OpenAIPrices {
    package static let table: [String: ModelPrice] = [
        "gpt-5": ModelPrice(input: 1.25, output: 10, cacheRead: 0.125, cacheWrite: 0),
        "gpt-5-mini": ModelPrice(input: 0.25, output: 2, cacheRead: 0.025, cacheWrite: 0),
        "gpt-5-nano": ModelPrice(input: 0.05, output: 0.4, cacheRead: 0.005, cacheWrite: 0),
        "gpt-4.1": ModelPrice(input: 2, output: 8, cacheRead: 0.5, cacheWrite: 0),
        "gpt-4.1-mini": ModelPrice(input: 0.4, output: 1.6, cacheRead: 0.1, cacheWrite: 0),
        "o3": ModelPrice(input: 2, output: 8, cacheRead: 0.5, cacheWrite: 0),
        "o4-mini": ModelPrice(input: 1.1, output: 4.4, cacheRead: 0.275, cacheWrite: 0),
        "codex-mini-latest": ModelPrice(input: 1.5, output: 6, cacheRead: 0.375, cacheWrite: 0),
    ]
    /// Whose price a model missing from the table is counted at (the run log says so).
    package static let fallbackModel = "gpt-5"
}
