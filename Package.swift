// swift-tools-version: 6.0
// patchd: a self-hosted patch service that speaks git over SSH.
import PackageDescription

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
    ],
    targets: [
        // C libraries from Debian, found with pkg-config.
        .systemLibrary(name: "CLibSSH", pkgConfig: "libssh", providers: [.apt(["libssh-dev"])]),
        .systemLibrary(name: "CLibGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        .systemLibrary(name: "CLibCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // What Swift cannot call directly: C variadics and macros.
        .target(name: "CShims", dependencies: ["CLibSSH", "CLibGit2", "CLibCurl"]),

        // OS plumbing: errno errors, file descriptors, posix_spawn, threads.
        .target(name: "CSystem"),
        .target(name: "PatchdSystem", dependencies: ["CSystem"]),
        // libcurl client for the LLM agents: streaming responses, Server-Sent Events.
        .target(name: "HTTPClient", dependencies: ["CLibCurl", "CShims", "PatchdSystem"]),
        // The libssh server: listener, sessions, auth, exec channel <-> fds pump. Knows nothing of git.
        .target(name: "SSHServer", dependencies: [
            "CLibSSH", "CShims", "PatchdSystem",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Bare repositories: names, layout, libgit2 wrappers, the pack protocol processes.
        .target(name: "GitStore", dependencies: ["CLibGit2", "CShims", "PatchdSystem"]),
        // Task files, workspaces, the Sandbox seam and its backends, the Agent seam and agents.
        .target(name: "Runs", dependencies: ["GitStore", "PatchdSystem", .product(name: "Yams", package: "Yams")]),
        // Wires SSH exec to git transport and commands; config, database, lifecycle.
        .target(name: "PatchdServer", dependencies: [
            "SSHServer", "GitStore", "PatchdSystem", "Runs", "HTTPClient",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "patchd", dependencies: [
            "PatchdServer",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Fuzz targets for the parsers of hostile input: `patchd-fuzz replay` (plain build), libFuzzer with -DFUZZING.
        .executableTarget(name: "PatchdFuzz", dependencies: ["Runs", "PatchdServer", "HTTPClient"]),

        .testTarget(name: "UnitTests", dependencies: ["SSHServer", "GitStore", "PatchdServer", "PatchdSystem", "Runs", "HTTPClient"]),
        .testTarget(name: "IntegrationTests", dependencies: ["PatchdSystem"]),
    ],
    swiftLanguageModes: [.v6]
)
