// PatchdCommands: `repo config NAME [KEY [VALUE...]] [--unset] [--json]`: a repository's network mode and allowlist. Gate: owner or admin.

import ArgumentParser
import Egress
import PatchdCore

struct RepoConfig: SSHCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "show or set a repository's settings (network, allowed-domains)",
        discussion: """
            Keys:
            \(RepoSettings.Key.allCases.map { "  \($0.rawValue): \($0.help)" }.joined(separator: "\n"))
            Examples:
              repo config NAME                                  show every setting
              repo config NAME network on                       every phase reaches the allowlist
              repo config NAME allowed-domains pypi.org "*.example.com"
              repo config NAME --unset allowed-domains
            The server's own setting caps the network mode; a task's `network:` and `allowed_domains:` come first.
            """)
    // The allowlist decides where a repository's runs may connect: owners and admins only.
    static let gate = CommandGate.repository(.owner, action: "change the repository's settings")

    @Argument(help: "The repository.")
    var name: String
    @Argument(help: "network or allowed-domains; none: show all.")
    var key: String?
    @Argument(help: "The new value (allowed-domains: one or more hosts).")
    var values: [String] = []
    @Flag(help: "Remove the setting (back to the server's default).")
    var unset = false
    @Flag(help: "One JSON object.")
    var json = false

    var gateSubject: String? { name }

    /// Both keys always present (null when not set), as every patchd JSON shape.
    struct SettingsJSON: Encodable {
        let network: String?
        let allowed_domains: [String]?
        enum CodingKeys: String, CodingKey { case network, allowed_domains }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(network, forKey: .network)
            try c.encode(allowed_domains, forKey: .allowed_domains)
        }
    }

    func validate() throws {
        if let key, RepoSettings.Key(rawValue: key) == nil {
            throw ValidationError(
                "unknown key '\(shown(key, 40))'; keys: " + RepoSettings.Key.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if unset && (key == nil || !values.isEmpty) { throw ValidationError("--unset takes a key and no value: repo config NAME --unset KEY") }
    }

    func run(_ invocation: CommandInvocation) throws -> Int32 {
        let ctx = invocation.context
        let repo = try invocation.repo
        let repoID = repo.record.id!
        guard let key = key.flatMap(RepoSettings.Key.init(rawValue:)) else { return show(invocation, try ctx.repoStore.repoSettings(repoID: repoID)) }
        if unset {
            try ctx.repoStore.setSetting(repoID: repoID, key: key.rawValue, value: nil)
            invocation.out("\(key.rawValue) unset on \(repo.name)\n")
            return 0
        }
        guard !values.isEmpty else { return show(invocation, try ctx.repoStore.repoSettings(repoID: repoID), only: key) }
        switch key {
        case .network:
            guard values.count == 1, let mode = NetworkMode(rawValue: values[0]) else {
                return invocation.fail(
                    "network must be one of " + NetworkMode.allCases.map(\.rawValue).joined(separator: ", ")
                        + ", not '\(shown(values.joined(separator: " "), 40))'")
            }
            try ctx.repoStore.setSetting(repoID: repoID, key: key.rawValue, value: mode.rawValue)
            invocation.out("network: \(mode.rawValue) for \(repo.name)\n")
        case .allowedDomains:
            // Commas too, as people write lists: "a.org,b.org".
            let entries = values.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
            do {
                _ = try EgressPolicy.parse(entries, source: "allowed-domains")
            } catch {
                return invocation.fail("\(error)")
            }
            try ctx.repoStore.setSetting(repoID: repoID, key: key.rawValue, value: RepoSettings.storedDomains(entries))
            invocation.out("allowed-domains on \(repo.name): \(entries.joined(separator: " "))\n")
        }
        return 0
    }

    private func show(_ invocation: CommandInvocation, _ settings: RepoSettings, only: RepoSettings.Key? = nil) -> Int32 {
        if json {
            return invocation.json(SettingsJSON(network: settings.network?.rawValue, allowed_domains: settings.allowedDomains))
        }
        let network = settings.network?.rawValue ?? "(not set: setup, or what the server allows)"
        let domains = settings.allowedDomains.map { $0.map { Terminal.sanitize($0) }.joined(separator: " ") } ?? "(not set: the server's list)"
        switch only {
        case .network?: invocation.out("\(network)\n")
        case .allowedDomains?: invocation.out("\(domains)\n")
        case nil: invocation.out("network          \(network)\nallowed-domains  \(domains)\n")
        }
        return 0
    }
}
