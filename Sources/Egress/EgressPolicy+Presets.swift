// Egress: named sets of hosts a task can allow in one word (`preset:registries`).

extension EgressPolicy {
    /// A named set of hosts, written `preset:NAME` in an allowlist.
    package enum Preset: String, CaseIterable, Sendable {
        /// The package registries and source archives a dependency install needs, HTTPS (443) and
        /// plain HTTP (80) each:
        /// - PyPI: `pypi.org`, `files.pythonhosted.org` (the wheel and sdist files);
        /// - npm: `registry.npmjs.org`;
        /// - crates.io: `crates.io`, `static.crates.io` (the .crate files), `index.crates.io` (the sparse index);
        /// - Go: `proxy.golang.org` (the module proxy), `sum.golang.org` (the checksum database);
        /// - RubyGems: `rubygems.org`, `index.rubygems.org`;
        /// - Maven Central: `repo.maven.apache.org`, `repo1.maven.org`;
        /// - Debian and Ubuntu archives: `deb.debian.org`, `security.debian.org`, `archive.ubuntu.com`,
        ///   `security.ubuntu.com`;
        /// - GitHub: `github.com` (git over HTTPS, release pages), `codeload.github.com` (archive
        ///   tarballs), `objects.githubusercontent.com` (release assets and LFS objects).
        /// No wildcard: each name is exact, so a preset never opens a whole CDN domain.
        case registries

        /// The hosts, in the order of the doc comment above.
        package var hosts: [String] {
            switch self {
            case .registries:
                return [
                    "pypi.org", "files.pythonhosted.org",
                    "registry.npmjs.org",
                    "crates.io", "static.crates.io", "index.crates.io",
                    "proxy.golang.org", "sum.golang.org",
                    "rubygems.org", "index.rubygems.org",
                    "repo.maven.apache.org", "repo1.maven.org",
                    "deb.debian.org", "security.debian.org", "archive.ubuntu.com", "security.ubuntu.com",
                    "github.com", "codeload.github.com", "objects.githubusercontent.com",
                ]
            }
        }

        /// The preset as entries on the default ports.
        package var entries: [Entry] { hosts.map { Entry(name: $0) } }
    }

    /// The policy of one preset.
    package static func preset(_ preset: Preset) -> EgressPolicy {
        EgressPolicy(preset.entries)
    }
}
