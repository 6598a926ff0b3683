import ArgumentParser
import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import Foundation

/// `clew connections`: systems tasks connect to, every change an event with who and why, every use by a
/// task a recorded step naming the host it was given (docs/operations.md#connections).
struct ConnectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections",
        abstract: "Set, list and delete Connections (one or several hosts, port, schema, login, extra; the password by reference), their history and which host each run used.",
        discussion: """
            A command task lists the Connections it uses (connections: [ID] in a pipeline file) and gets one host picked at \
            random as CLEW_CONN_<ID>_HOST, with _PORT, _SCHEMA, _LOGIN, _TYPE, _EXTRA and _PASSWORD; a Swift task calls \
            ctx.connection("id"). Which host it got is recorded; the password is read where the task runs from \
            --password-env or --password-file and never recorded.
            """,
        subcommands: [ConnectionsSet.self, ConnectionsGet.self, ConnectionsList.self, ConnectionsDelete.self, ConnectionsHistory.self, ConnectionsSeen.self])
}

struct ConnectionsSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a Connection (replacing what it was).")
    @Argument(help: "The connection id (a letter or _, then letters, digits, _ . -).") var id: String
    @Option(name: .long, help: "A host (repeatable: a task is given one at random).") var host: [String] = []
    @Option(name: .long, help: "The port.") var port: Int?
    @Option(name: .long, help: "The schema or database.") var schema: String?
    @Option(name: .long, help: "The login.") var login: String?
    @Option(name: .long, help: "What it is (postgres, s3, http …).") var type: String?
    @Option(name: .customLong("password-env"), help: "Read the password from this environment variable where the task runs.") var passwordEnv: String?
    @Option(name: .customLong("password-file"), help: "Read the password from this file (absolute path) where the task runs.") var passwordFile: String?
    @Option(name: .long, help: ArgumentHelp("An extra setting (repeatable); not for secrets.", valueName: "key=value")) var extra: [String] = []
    @Option(name: .long, help: "What the Connection is for.") var description: String?
    @Option(name: .long, help: "Why it changes (recorded).") var reason: String?
    @Option(name: .long, help: "Who sets it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if passwordEnv != nil, passwordFile != nil { throw ValidationError("give --password-env or --password-file, not both") }
        for e in extra where !e.contains("=") || e.hasPrefix("=") { throw ValidationError("--extra '\(e)' must look like key=value") }
    }

    func run() async throws {
        try await reportingErrors {
            let pairs = extra.map { e in
                let eq = e.firstIndex(of: "=")!
                return (String(e[..<eq]), String(e[e.index(after: eq)...]))
            }
            let change = ConnectionChanged(
                id: id, type: type, hosts: host, port: port, schema: schema, login: login,
                passwordReference: passwordEnv.map { "env:\($0)" } ?? passwordFile.map { "file:\($0)" },
                extra: pairs.isEmpty ? nil : Dictionary(pairs, uniquingKeysWith: { _, b in b }), description: description, reason: reason)
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let set = try await ConnectionStore(ledger: l).set(change, by: VariablesCommand.actor(by))
            if output.json { Terminal.line(try JSONOutput.text(set)); return }
            Terminal.error("set \(set.id) (seq \(set.seq)) by \(set.setBy)")
        }
    }
}

struct ConnectionsGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a Connection (never its password).")
    @Argument(help: "The connection id.") var id: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            guard let c = try ConnectionStore(ledger: l).get(id) else { throw VariableError(.notFound, "no connection '\(id)' is set") }
            return c
        }, text: { Terminal.line(ConnectionsList.describe($0)) })
    }
}

struct ConnectionsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the Connections that are set, with who set them and when.")
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    static func describe(_ c: Connection) -> String {
        let hosts = c.hosts.joined(separator: ",") + (c.port.map { ":\($0)" } ?? "")
        let parts = [c.type.map { "\($0)://" }, c.login.map { "\($0)@" }, hosts, c.schema.map { "/\($0)" }].compactMap { $0 }.joined()
        return parts + (c.passwordReference.map { "  password → \($0)" } ?? "")
    }

    func run() async throws {
        try await ledger.show(output, { try ConnectionStore(ledger: $0).list() }, text: { all in
            if all.isEmpty { Terminal.error("no connections are set (clew connections set ID --host …)") }
            for c in all { Terminal.line("\(Show.pad(c.id, 20)) \(Show.pad(Self.describe(c), 50)) \(c.setAt)  \(c.setBy)") }
        })
    }
}

struct ConnectionsDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a Connection (recorded; tasks that use it fail from then on, naming it).")
    @Argument(help: "The connection id.") var id: String
    @Option(name: .long, help: "Why (recorded).") var reason: String?
    @Option(name: .long, help: "Who deletes it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open()
            defer { l.close() }
            try await ConnectionStore(ledger: l).delete(id, reason: reason, by: VariablesCommand.actor(by))
            Terminal.error("deleted \(id)")
        }
    }
}

struct ConnectionsHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Every set and delete of a Connection: when, who, what, why.")
    @Argument(help: "The connection id.") var id: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            let changes = try ConnectionStore(ledger: l).history(id)
            if changes.isEmpty { throw VariableError(.notFound, "connection '\(id)' was never set") }
            return changes
        }, text: { changes in
            for c in changes {
                let what = c.action == "deleted" ? "deleted" : (c.hosts ?? []).joined(separator: ",") + (c.port.map { ":\($0)" } ?? "")
                Terminal.line("\(c.seq)  \(c.time)  \(Show.pad(c.by, 24)) \(what)\(c.reason.map { "  (\($0))" } ?? "")")
            }
        })
    }
}

struct ConnectionsSeen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seen", abstract: "Which Connections a run used: the host each task attempt was given, and the set (who, when) it came from.")
    @Argument(help: "The run: DAG/RUN.") var run: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (dag, id) = try VariablesSeen.split(run)
        try await ledger.show(output, { l in
            try VariablesSeen.requireRun(dag, id, in: l)
            return try ConnectionStore(ledger: l).reads(dag: dag, run: id)
        }, text: { reads in
            if reads.isEmpty { Terminal.error("\(run) used no connections") }
            for r in reads {
                let from = r.setSeq.map { "set at seq \($0)\(r.setAt.map { " \($0)" } ?? "")\(r.setBy.map { " by \($0)" } ?? "")" } ?? "set: unknown"
                Terminal.line("\(Show.pad("\(r.task)#\(r.attempt)", 16)) \(Show.pad(r.id, 20)) \(Show.pad(r.use?.host ?? "?", 24)) \(from)")
            }
        })
    }
}
