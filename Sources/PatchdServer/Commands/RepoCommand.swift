// PatchdServer: `repo list|create|info|delete` and `repo collab add|remove|list`.
// Access gates: list: any user (shows what they can read); create: any user (becomes owner);
// info: read; delete: owner or admin; collab list: read; collab add/remove: owner or admin.
import Foundation
import GitStore
import SSHServer
import PatchdCore

enum RepoCommand {
    static let usage = """
        repo list [--json]
               repo create NAME
               repo info NAME [--json]
               repo delete NAME --yes
               repo collab add NAME USER [read|write]
               repo collab remove NAME USER
               repo collab list NAME [--json]
        """

    static func run(_ words: [String], _ ctx: CommandContext, _ io: ProgramOutput) -> Int32 {
        guard words.count >= 2 else { return io.usage("missing subcommand", usage) }
        return io.guarded(usage: usage) {
            switch words[1] {
            case "list": return try list(CommandArguments(Array(words.dropFirst(2)), switches: ["--json"], positionals: 0...0), ctx, io)
            case "create": return try create(CommandArguments(Array(words.dropFirst(2)), positionals: 1...1), ctx, io)
            case "info": return try info(CommandArguments(Array(words.dropFirst(2)), switches: ["--json"], positionals: 1...1), ctx, io)
            case "delete": return try delete(CommandArguments(Array(words.dropFirst(2)), switches: ["--yes"], positionals: 1...1), ctx, io)
            case "collab":
                guard words.count >= 3 else { return io.usage("missing collab subcommand", usage) }
                let rest = Array(words.dropFirst(3))
                switch words[2] {
                case "add": return try collabAdd(CommandArguments(rest, positionals: 2...3), ctx, io)
                case "remove": return try collabRemove(CommandArguments(rest, positionals: 2...2), ctx, io)
                case "list": return try collabList(CommandArguments(rest, switches: ["--json"], positionals: 1...1), ctx, io)
                default: return io.unknownSubcommand(words[2], usage)
                }
            default: return io.unknownSubcommand(words[1], usage)
            }
        }
    }

    struct RepoJSON: Encodable {
        let name: String
        let owner: String?
        let role: String
        let created_at: String
    }

    static func ownerName(_ repo: RepoRecord, _ ctx: CommandContext) -> String? {
        repo.ownerID.flatMap { try? ctx.users.user(id: $0) }??.name
    }

    static func list(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let repos = try ctx.repoStore.visible(userID: ctx.identity.userID)
        let items = repos.map { RepoJSON(name: $0.0.name, owner: ownerName($0.0, ctx), role: $0.1.description,
                                         created_at: RunJSON.iso($0.0.createdAt)) }
        if args.flags.contains("--json") { return io.json(items) }
        if items.isEmpty {
            io.out("no repositories yet; push to ssh://git@HOST:PORT/NAME to create one\n")
            return 0
        }
        io.out(TextTable.render(["NAME", "OWNER", "ROLE", "CREATED"], zip(items, repos).map {
            [$0.0.name, $0.0.owner ?? "-", $0.0.role, RelativeTime.describe($0.1.0.createdAt)]
        }))
        return 0
    }

    static func create(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let name: RepositoryName
        do { name = try RepositoryName(fromClient: args.positionals[0]) } catch { return io.fail(error.description) }
        guard let record = try ctx.repoStore.insert(name: name, ownerID: ctx.identity.userID) else {
            return io.fail("repository '\(name)' already exists")
        }
        do { try ctx.repositories.create(name) } catch {
            try? ctx.repoStore.delete(name: name)
            return io.fail("cannot create '\(name)': \(error)")
        }
        _ = record
        io.out("created \(name)\n  git remote add origin ssh://git@HOST:PORT/\(name)\n")
        return 0
    }

    struct InfoJSON: Encodable {
        let name: String
        let owner: String?
        let role: String
        let created_at: String
        let head: String?
        let branches: [String]
        let collaborators: [CollabJSON]?
    }

    struct CollabJSON: Encodable {
        let user: String
        let role: String
    }

    static func info(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        guard let (name, repo, role) = ctx.readableRepo(args.positionals[0]) else { return notFound(args.positionals[0], io) }
        let git = try? GitRepository(openBare: ctx.repositories.path(for: name))
        let branches = ((try? git?.referenceNames()) ?? [])?.filter { $0.hasPrefix("refs/heads/") }
            .map { String($0.dropFirst(11)) }.sorted() ?? []
        let head = git?.headTarget.map { $0.hasPrefix("refs/heads/") ? String($0.dropFirst(11)) : $0 }
        let collabs = role.canAdminister
            ? try ctx.repoStore.collaborators(repoID: repo.id!).map { CollabJSON(user: $0.0.name, role: $0.1) } : nil
        let info = InfoJSON(name: name.value, owner: ownerName(repo, ctx), role: role.description,
                            created_at: RunJSON.iso(repo.createdAt), head: head, branches: branches, collaborators: collabs)
        if args.flags.contains("--json") { return io.json(info) }
        var text = "name      \(info.name)\nowner     \(info.owner ?? "-")\nyour role \(info.role)\n"
        text += "created   \(info.created_at) (\(RelativeTime.describe(repo.createdAt)))\nhead      \(info.head ?? "-")\n"
        text += "branches  \(branches.isEmpty ? "-" : branches.map { Terminal.sanitize($0) }.joined(separator: ", "))\n"
        if let collabs { text += "collabs   \(collabs.isEmpty ? "-" : collabs.map { "\($0.user) (\($0.role))" }.joined(separator: ", "))\n" }
        io.out(text)
        return 0
    }

    static func delete(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        guard let (name, _, role) = ctx.readableRepo(args.positionals[0]) else { return notFound(args.positionals[0], io) }
        guard role.canAdminister else { return io.fail("only the owner of '\(name)' or an admin can delete it") }
        guard args.flags.contains("--yes") else {
            return io.usage("deleting '\(name)' removes its history for good; add --yes to confirm", "repo delete NAME --yes")
        }
        try ctx.repoStore.delete(name: name)
        ctx.repositories.delete(name)
        io.out("deleted \(name)\n")
        return 0
    }

    /// Resolves USER for collab commands.
    static func targetUser(_ name: String, _ ctx: CommandContext) throws -> User? {
        try ctx.users.user(named: name)
    }

    static func collabAdd(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        let roleName = args.positionals.count == 3 ? args.positionals[2] : "read"
        guard roleName == "read" || roleName == "write" else {
            return io.usage("role must be read or write, not '\(Terminal.sanitize(String(roleName.prefix(20))))'", "repo collab add NAME USER [read|write]")
        }
        guard let (name, repo, role) = ctx.readableRepo(args.positionals[0]) else { return notFound(args.positionals[0], io) }
        // Only owners and admins grant: a write collaborator cannot hand out access.
        guard role.canAdminister else { return io.fail("only the owner of '\(name)' or an admin can manage collaborators") }
        guard let user = try targetUser(args.positionals[1], ctx), let userID = user.id else {
            return io.fail("no user '\(Terminal.sanitize(String(args.positionals[1].prefix(40))))'")
        }
        guard userID != repo.ownerID else { return io.fail("\(user.name) owns '\(name)' already") }
        try ctx.repoStore.setCollaborator(repoID: repo.id!, userID: userID, role: roleName)
        io.out("\(user.name) can now \(roleName == "write" ? "read and push to" : "read") \(name)\n")
        return 0
    }

    static func collabRemove(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        guard let (name, repo, role) = ctx.readableRepo(args.positionals[0]) else { return notFound(args.positionals[0], io) }
        guard role.canAdminister else { return io.fail("only the owner of '\(name)' or an admin can manage collaborators") }
        guard let user = try targetUser(args.positionals[1], ctx), let userID = user.id,
              try ctx.repoStore.removeCollaborator(repoID: repo.id!, userID: userID) else {
            return io.fail("'\(Terminal.sanitize(String(args.positionals[1].prefix(40))))' is not a collaborator on \(name)")
        }
        io.out("removed \(user.name) from \(name)\n")
        return 0
    }

    static func collabList(_ args: CommandArguments, _ ctx: CommandContext, _ io: ProgramOutput) throws -> Int32 {
        guard let (name, repo, _) = ctx.readableRepo(args.positionals[0]) else { return notFound(args.positionals[0], io) }
        let collabs = try ctx.repoStore.collaborators(repoID: repo.id!).map { CollabJSON(user: $0.0.name, role: $0.1) }
        if args.flags.contains("--json") { return io.json(collabs) }
        if collabs.isEmpty { io.out("\(name) has no collaborators\n"); return 0 }
        io.out(TextTable.render(["USER", "ROLE"], collabs.map { [$0.user, $0.role] }))
        return 0
    }

    static func notFound(_ raw: String, _ io: ProgramOutput) -> Int32 {
        io.fail("repository '\(Terminal.sanitize(String(raw.prefix(100))))' not found")
    }
}
