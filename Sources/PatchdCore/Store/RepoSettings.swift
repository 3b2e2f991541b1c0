// PatchdCore: a repository's settings (`ssh HOST repo config`): its default network mode and the hosts it adds to the egress allowlist.

import Foundation

/// The settings an owner or admin keeps on a repository; runs read them when they start.
package struct RepoSettings: Sendable, Equatable {
    /// The setting names, as `repo config` spells them.
    package enum Key: String, CaseIterable, Sendable {
        /// none | setup | on: the default for tasks that name no `network:`.
        case network
        /// Hosts (and presets) added to the server's allowlist for this repository's runs.
        case allowedDomains = "allowed-domains"

        package var help: String {
            switch self {
            case .network: "none, setup or on: which phases reach the allowlist when a task names no `network:` (default setup)"
            case .allowedDomains: "hosts added to the server's allowlist for this repository (pypi.org, *.example.com, host:8443, preset:registries)"
            }
        }
    }

    package var network: NetworkMode?
    package var allowedDomains: [String]?

    package init(network: NetworkMode? = nil, allowedDomains: [String]? = nil) {
        self.network = network
        self.allowedDomains = allowedDomains
    }

    /// From the stored key/value rows; a value that no longer parses reads as not set.
    package init(stored: [String: String]) {
        network = stored[Key.network.rawValue].flatMap(NetworkMode.init(rawValue:))
        allowedDomains = stored[Key.allowedDomains.rawValue].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
    }

    /// The stored form of `allowedDomains`.
    package static func storedDomains(_ domains: [String]) -> String {
        (try? JSONEncoder().encode(domains)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}

extension RepoStore {
    /// The repository's settings (none set: all nil).
    package func repoSettings(repoID: Int64) throws -> RepoSettings { RepoSettings(stored: try settings(repoID: repoID)) }
}
