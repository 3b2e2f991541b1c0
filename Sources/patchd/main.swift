// patchd: the command-line entry point: serve, doctor, version (and the internal hook).

import ArgumentParser
import Foundation
import GitStore
import Offsite
import PatchdCore
import PatchdServer
import PatchdSystem
import Runs
import SSHServer

#if canImport(Glibc)
import Glibc
import SSHKeys
#endif

struct Patchd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patchd",
        abstract: "A self-hosted patch service that speaks git over SSH.",
        discussion: "Users push a branch with a task; patchd runs a coding agent in a sandbox and pushes back agent/BRANCH.",
        subcommands: [Serve.self, Doctor.self, BackupCommand.self, RestoreCommand.self, Version.self, Hook.self])
}

/// Flags shared by serve and doctor.
struct ServerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Data directory (default $PATCHD_DATA_DIR or ./patchd-data).", valueName: "dir"))
    var dataDir: String?

    @Option(help: ArgumentHelp("Address to listen on; port 0 picks a free one (default $PATCHD_LISTEN or 127.0.0.1:2222).", valueName: "host:port"))
    var listen: String?

    @Option(
        name: .customLong("admin-key"),
        help: ArgumentHelp("An OpenSSH public key line or a .pub file for the admin user; repeatable.", valueName: "key"))
    var adminKeys: [String] = []

    @Option(
        help: ArgumentHelp(
            "Sandbox backend: bwrap (default), container (podman or docker, see --container-image) or none (no isolation).",
            valueName: "bwrap|container|none"))
    var sandbox: String?

    @Option(
        help: ArgumentHelp(
            "Image for --sandbox container (default localhost/patchd-sandbox, built from container/Containerfile.sandbox).", valueName: "image"))
    var containerImage: String?

    @Option(
        help: ArgumentHelp(
            "Container engine for --sandbox container: podman, docker or a path (default: podman if installed, else docker).", valueName: "engine"))
    var containerEngine: String?

    @Option(help: "Concurrent runs (default: number of cores).")
    var workers: Int?

    @Option(help: ArgumentHelp("Agent for tasks that name none: builtin (default), claude-code, codex or command.", valueName: "agent"))
    var defaultAgent: String?

    @Option(help: ArgumentHelp("YAML config file; its keys mirror these flags (data_dir, listen, admin_keys, ...).", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Seconds a connection has to authenticate (default 30).", valueName: "seconds"))
    var authTimeout: Double?

    @Option(help: ArgumentHelp("Seconds without traffic before a connection is dropped (default 600).", valueName: "seconds"))
    var idleTimeout: Double?

    /// Defaults, then environment, then the config file, then flags.
    func resolve() throws -> PatchdConfiguration {
        var c = PatchdConfiguration()
        try c.apply(environment: ProcessInfo.processInfo.environment)
        if let config { try c.apply(configFile: config) }
        if let dataDir { c.dataDir = dataDir }
        if let listen { c.listen = listen }
        if !adminKeys.isEmpty { c.adminKeys += try adminKeys.map { try PatchdConfiguration.readKey($0) } }
        if let sandbox { c.sandbox = sandbox }
        if let containerImage { c.containerImage = containerImage }
        if let containerEngine { c.containerEngine = containerEngine }
        if let workers { c.workers = workers }
        if let defaultAgent { c.defaultAgent = defaultAgent }
        if let authTimeout { c.authTimeout = authTimeout }
        if let idleTimeout { c.idleTimeout = idleTimeout }
        try c.validate()
        return c
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the SSH server.",
        discussion: "Prints 'patchd: listening on HOST:PORT' on stderr once it accepts connections. SIGTERM or SIGINT stops it gracefully.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        // Block the stop signals before any thread exists, so every thread inherits the
        // mask and the main thread alone receives them with sigwait.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        signal(SIGPIPE, SIG_IGN)

        let configuration: PatchdConfiguration
        let daemon: PatchdDaemon
        let address: (host: String, port: Int)
        do {
            configuration = try options.resolve()
            if configuration.sandbox == "none" {
                printError("patchd: warning: --sandbox none: agents run WITHOUT isolation, with this user's rights\n")
            }
            daemon = try PatchdDaemon(configuration: configuration)
            address = try daemon.start()
        } catch {
            printError(ErrorLine.format("\(error)"))
            throw ExitCode(1)
        }
        let shownHost = address.host.contains(":") ? "[\(address.host)]" : address.host
        printError("patchd: listening on \(shownHost):\(address.port)\n")
        printError(
            "patchd: host key \(daemon.hostKeys.ed25519.publicKey.fingerprint) (ED25519), \(daemon.hostKeys.rsa.publicKey.fingerprint) (RSA)\n")

        var received: Int32 = 0
        sigwait(&stopSignals, &received)
        printError("patchd: stopping (signal \(received)); finishing transfers in progress\n")
        daemon.stop()
        printError("patchd: stopped\n")
    }
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that this machine can run patchd.",
        discussion: "One line per check; exits 1 if any check fails.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        let configuration = try options.resolve()
        let checks = PatchdServer.Doctor(configuration: configuration).run()
        for check in checks {
            print("\(check.status.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)) \(check.name): \(check.detail)")
        }
        if checks.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
    }
}

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the data dir consistently, while the server runs.",
        discussion:
            "Writes the database (SQLite online backup), a git bundle of every repository and the host keys into DIR, which must be new or empty. See docs/OPERATIONS.md."
    )

    @Argument(help: "A new or empty directory for the backup.")
    var directory: String

    @OptionGroup var options: ServerOptions

    func run() throws {
        do {
            let configuration = try options.resolve()
            try Backup(dataDir: configuration.dataDir) { print("patchd: \($0)") }.backup(to: directory)
        } catch {
            printError(ErrorLine.format("\(error)"))
            throw ExitCode(1)
        }
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Recreate a data dir from a backup, or from the offsite bucket.",
        discussion:
            "The data dir (--data-dir) must be new or empty. Start patchd on it afterwards; it rewrites hooks and repository config at start. With --from-offsite it reads the bucket named by the config file's offsite: settings and decrypts the host keys and database with --identity (docs/OPERATIONS.md, Disaster recovery)."
    )

    @Argument(help: "A directory written by 'patchd backup' (not with --from-offsite).")
    var directory: String?

    @Flag(help: "Restore from the offsite: bucket in --config instead of a backup directory.")
    var fromOffsite = false

    @Option(
        help: ArgumentHelp(
            "With --from-offsite: the age identity file whose public key is in age_recipients (default $PATCHD_OFFSITE_IDENTITY).", valueName: "file")
    )
    var identity: String?

    @OptionGroup var options: ServerOptions

    func validate() throws {
        if fromOffsite && directory != nil { throw ValidationError("give either a backup directory or --from-offsite, not both") }
        if !fromOffsite && directory == nil { throw ValidationError("give a backup directory, or --from-offsite") }
    }

    func run() throws {
        do {
            let configuration = try options.resolve()
            if fromOffsite {
                guard let offsite = configuration.offsite else {
                    throw OffsiteError.configuration(
                        "--from-offsite needs the offsite: settings: pass --config with an offsite: mapping (docs/OPERATIONS.md)")
                }
                guard let identity = identity ?? ProcessInfo.processInfo.environment["PATCHD_OFFSITE_IDENTITY"], !identity.isEmpty else {
                    throw OffsiteError.configuration(
                        "--from-offsite needs --identity FILE (the age identity that decrypts host keys and database snapshots)")
                }
                let git = try Backup(dataDir: configuration.dataDir) { _ in }.git
                try OffsiteRestore(configuration: offsite, dataDir: configuration.dataDir, identity: identity, git: git) {
                    print("patchd: \($0)")
                }.restore()
                return
            }
            try Backup(dataDir: configuration.dataDir) { print("patchd: \($0)") }.restore(from: directory ?? "")
        } catch {
            printError(ErrorLine.format("\(error)"))
            throw ExitCode(1)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")

    func run() {
        print("patchd \(PatchdVersion.current) (libssh \(libsshVersion), libgit2 \(LibGit2.version))")
    }
}

/// One write(2) per line on stderr (tests wait for the exact "listening" line).
func printError(_ line: String) {
    line.withCString { _ = write(2, $0, strlen($0)) }
}
/// `patchd hook NAME`: run by the scripts patchd installs in each repository's hooks/.
struct Hook: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Internal: the git hooks patchd installs call this.", shouldDisplay: false)

    @Argument(help: "pre-receive or post-receive")
    var name: String

    func run() throws {
        let input = String(decoding: (try? readAll(0, limit: 16 << 20)) ?? [], as: UTF8.self)
        let runner = HookRunner(environment: ProcessInfo.processInfo.environment) { printError($0) }
        let status: Int32
        switch name {
        case "pre-receive": status = runner.preReceive(stdin: input)
        case "post-receive":
            // First, before -o wait streams a run: the replicator uploads in the background.
            OffsiteNotify.pushed(environment: ProcessInfo.processInfo.environment)
            status = runner.postReceive(stdin: input)
        default:
            printError(ErrorLine.format("unknown hook '\(name)'"))
            status = 2
        }
        if status != 0 { throw ExitCode(status) }
    }
}

Patchd.main()
