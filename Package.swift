// swift-tools-version: 6.0
// patchd: a self-hosted patch service that speaks git over SSH.
// The targets are layered; each depends only on those above it in this file. docs/ARCHITECTURE.md
// has the map. `swift build --explicit-target-dependency-import-check error` keeps imports and
// dependencies in step (CI runs it).
import PackageDescription

/// Every Swift target: imports are internal unless marked, and a member is visible only where
/// its module is imported.
let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "patchd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "patchd", targets: ["patchd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
    ],
    targets: [
        // C libraries from Debian, found with pkg-config. Each header also carries the static inline
        // shims for what Swift cannot call (macros, variadics); each has exactly one Swift owner below.
        .systemLibrary(name: "CLibSSH", pkgConfig: "libssh", providers: [.apt(["libssh-dev"])]),
        .systemLibrary(name: "CLibGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        .systemLibrary(name: "CLibCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // OS plumbing: glibc GNU extensions (C), and errno errors, file descriptors, posix_spawn, threads.
        // Not "CSystem": swift-system, which the MCP SDK needs, has a target of that name.
        .target(name: "CPatchdSystem"),
        .target(name: "PatchdSystem", dependencies: ["CPatchdSystem"], swiftSettings: strictSwift),

        // Layer 1: one owner per C library, knowing nothing of patchd's domain.
        // SSH public keys and the identity a key proves, as plain values.
        .target(name: "SSHKeys", swiftSettings: strictSwift),
        // The libssh server: listener, sessions, auth, exec channel <-> fds pump. Knows nothing of git.
        .target(name: "SSHServer", dependencies: [
            "CLibSSH", "CPatchdSystem", "PatchdSystem", "SSHKeys",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strictSwift),
        // libcurl client for the LLM agents: streaming responses, Server-Sent Events.
        .target(name: "HTTPClient", dependencies: ["CLibCurl"], swiftSettings: strictSwift),
        // A run's egress proxy: the allowlist (EgressPolicy), one supervised squid per run, its connection records.
        .target(name: "Egress", dependencies: ["PatchdSystem"], swiftSettings: strictSwift),

        // Layer 2: the domain. Records and stores (SQLite), access roles, repository names, the data
        // layout, ref names, task files, run events. No libssh, libgit2 or libcurl.
        .target(name: "PatchdCore", dependencies: [
            "PatchdSystem", "SSHKeys", "Egress",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: strictSwift),
        // Bare repositories with libgit2: layout, hooks, the pack protocol processes, result commits.
        .target(name: "GitStore", dependencies: ["CLibGit2", "PatchdSystem", "PatchdCore"], swiftSettings: strictSwift),

        // Layer 3: running a task.
        // The Sandbox seam and its backends (bwrap, container, none), limits, workspaces.
        .target(name: "Sandboxing", dependencies: ["PatchdSystem", "PatchdCore"], swiftSettings: strictSwift),
        // The Agent seam and the agents: command, builtin (Messages / Chat Completions loop, tools, MCP clients), claude-code (CLI + API proxy).
        .target(name: "Agents", dependencies: [
            "PatchdSystem", "PatchdCore", "Sandboxing", "HTTPClient",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "MCP", package: "swift-sdk"),
        ], swiftSettings: strictSwift),
        // The run machinery: the push hooks that queue runs, the scheduler, the executor, run logs.
        .target(name: "Runs", dependencies: [
            "PatchdSystem", "PatchdCore", "GitStore", "Sandboxing", "Agents", "Egress",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strictSwift),

        // Layer 3: off-machine replication: pushes, runs and the database to S3-compatible storage (through
        // HTTPClient's libcurl SigV4), a durable queue in DATA/offsite.sqlite, restore from the bucket.
        .target(name: "Offsite", dependencies: [
            "PatchdSystem", "PatchdCore", "GitStore", "HTTPClient",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strictSwift),

        // Layer 3, beside the run machinery: the SSH commands (repo, run, key, user, stats, whoami, help): one ArgumentParser command per
        // file, each with its access gate as data; the router parses, gates and runs. No libssh: the
        // daemon injects key parsing and the stats snapshot.
        .target(name: "PatchdCommands", dependencies: [
            "PatchdCore", "SSHKeys", "GitStore", "Egress",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strictSwift),

        // Layer 4: the daemon. Wires SSH exec to git transport and commands; config, lifecycle, doctor, backup.
        .target(name: "PatchdServer", dependencies: [
            "PatchdSystem", "SSHKeys", "SSHServer", "PatchdCore", "GitStore", "Sandboxing", "Agents", "Runs", "HTTPClient",
            "PatchdCommands", "Offsite", "Egress",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: strictSwift),
        .executableTarget(name: "patchd", dependencies: [
            "PatchdSystem", "SSHServer", "PatchdCore", "GitStore", "Runs", "PatchdServer", "Offsite",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strictSwift),

        // Fuzz targets for the parsers of hostile input: `patchd-fuzz replay` (plain build), libFuzzer with -DFUZZING.
        .executableTarget(name: "PatchdFuzz", dependencies: ["PatchdCore", "Runs", "PatchdServer", "PatchdCommands", "HTTPClient"],
                          swiftSettings: strictSwift),

        // Shared by both test targets: a locked collector, the ready-line wait; C: mallinfo2 for leak tests.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strictSwift),
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        .testTarget(name: "UnitTests", dependencies: [
            "CTestSupport", "TestSupport", "SSHKeys", "SSHServer", "PatchdCore", "GitStore", "Sandboxing", "Agents", "Runs",
            "PatchdServer", "PatchdCommands", "PatchdSystem", "HTTPClient", "Offsite", "Egress",
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: strictSwift),
        .testTarget(name: "IntegrationTests", dependencies: ["PatchdSystem", "TestSupport", "Egress"], swiftSettings: strictSwift),
    ],
    swiftLanguageModes: [.v6]
)
