// PatchdCore: what a run's environment was: the cache key, whether it came from the cache, how long setup took (run show --json's "environment").

import Foundation

/// Stored with the run as JSON; `run show --json` shows it as `environment`.
package struct RunEnvironmentRecord: Codable, Sendable, Equatable {
    /// The cache key (hex); its first 12 characters are the short id the log and `env list` show.
    package var key: String
    /// Whether the environment came from the cache (setup skipped).
    package var hit: Bool
    /// Seconds setup (on a miss) or maintenance (on a hit) took; 0 when neither ran.
    package var setup_seconds: Double

    package init(key: String, hit: Bool, setupSeconds: Double) {
        self.key = key
        self.hit = hit
        self.setup_seconds = setupSeconds
    }
}
