import ArgumentParser
import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import Foundation

/// `clew variables`: operator Variables, every change an event with who and why, every read by a task a
/// recorded step (docs/operations.md#variables).
struct VariablesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variables",
        abstract: "Set, read, list and delete Variables (key-value settings tasks read), with their history and which runs saw which value.",
        discussion: """
            A command task reads the Variables it lists (variables: [KEY] in a pipeline file) as CLEW_VAR_<KEY>; a Swift \
            task calls ctx.variable("key"). Each read is recorded with the set it saw, so `clew variables seen DAG/RUN` \
            answers which value a run used and who set it, and a replay gets that value back. A secret-looking key \
            (password, token, secret, key …) is set only by reference (--from-env NAME, --from-file PATH), read where \
            the task runs and never recorded.
            """,
        subcommands: [VariablesSet.self, VariablesGet.self, VariablesList.self, VariablesDelete.self, VariablesHistory.self, VariablesSeen.self])

    /// Who the CLI records as having made a change: `--by`, else `cli:<user>@<host>`.
    static func actor(_ by: String?) -> String {
        by ?? "cli:\(ProcessInfo.processInfo.environment["USER"] ?? NSUserName())@\(ProcessInfo.processInfo.hostName)"
    }
}

struct VariablesSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a Variable to a value, or to a reference (required for secret-looking keys).")
    @Argument(help: "The key (a letter or _, then letters, digits, _ . -).") var key: String
    @Argument(help: "The value (text; JSON for structured settings).") var value: String?
    @Option(name: .customLong("from-env"), help: "Read it from this environment variable where the task runs (never recorded).") var fromEnv: String?
    @Option(name: .customLong("from-file"), help: "Read it from this file (absolute path) where the task runs (never recorded).") var fromFile: String?
    @Option(name: .long, help: "What the Variable is for.") var description: String?
    @Option(name: .long, help: "Why it changes (recorded).") var reason: String?
    @Option(name: .long, help: "Who sets it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        let given = [value != nil, fromEnv != nil, fromFile != nil].filter { $0 }.count
        if given != 1 { throw ValidationError("give exactly one of VALUE, --from-env NAME or --from-file PATH") }
    }

    func run() async throws {
        try await reportingErrors {
            let reference = fromEnv.map { "env:\($0)" } ?? fromFile.map { "file:\($0)" }
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let set = try await VariableStore(ledger: l).set(key, value: value, reference: reference, description: description, reason: reason, by: VariablesCommand.actor(by))
            if output.json { Terminal.line(try JSONOutput.text(set)); return }
            Terminal.error("set \(set.key) (seq \(set.seq)) by \(set.setBy)")
        }
    }
}

struct VariablesGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Print a Variable's value (a secret-looking one's reference, never its value).")
    @Argument(help: "The key.") var key: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            guard let v = try VariableStore(ledger: l).get(key) else { throw VariableError(.notFound, "no variable '\(key)' is set") }
            return v
        }, text: { v in Terminal.line(v.reference ?? v.value ?? "") })
    }
}

struct VariablesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the Variables that are set, with who set them and when.")
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { try VariableStore(ledger: $0).list() }, text: { all in
            if all.isEmpty { Terminal.error("no variables are set (clew variables set KEY VALUE)") }
            for v in all {
                let shown = v.reference.map { "→ \($0)" } ?? Self.short(v.value ?? "")
                Terminal.line("\(Show.pad(v.key, 24)) \(Show.pad(shown, 40)) \(v.setAt)  \(v.setBy)")
            }
        })
    }

    static func short(_ s: String) -> String {
        let line = s.replacingOccurrences(of: "\n", with: "⏎")
        return line.count > 40 ? String(line.prefix(39)) + "…" : line
    }
}

struct VariablesDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a Variable (recorded; tasks that read it fail from then on, naming it).")
    @Argument(help: "The key.") var key: String
    @Option(name: .long, help: "Why (recorded).") var reason: String?
    @Option(name: .long, help: "Who deletes it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open()
            defer { l.close() }
            try await VariableStore(ledger: l).delete(key, reason: reason, by: VariablesCommand.actor(by))
            Terminal.error("deleted \(key)")
        }
    }
}

struct VariablesHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Every set and delete of a Variable: when, who, what, why.")
    @Argument(help: "The key.") var key: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            let changes = try VariableStore(ledger: l).history(key)
            if changes.isEmpty { throw VariableError(.notFound, "variable '\(key)' was never set") }
            return changes
        }, text: { changes in
            for c in changes {
                let what = c.action == "deleted" ? "deleted" : (c.reference.map { "→ \($0)" } ?? VariablesList.short(c.value ?? ""))
                Terminal.line("\(c.seq)  \(c.time)  \(Show.pad(c.by, 24)) \(what)\(c.reason.map { "  (\($0))" } ?? "")")
            }
        })
    }
}

struct VariablesSeen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seen", abstract: "Which Variables a run read: the value each task attempt got, and the set (who, when) it came from.")
    @Argument(help: "The run: DAG/RUN.") var run: String
    @Option(name: .long, help: "Only this key.") var key: String?

    /// DAG and run id of `DAG/RUN`.
    static func split(_ run: String) throws -> (String, String) {
        guard let slash = run.firstIndex(of: "/"), slash != run.startIndex, slash != run.index(before: run.endIndex) else {
            throw ValidationError("'\(run)' is not DAG/RUN")
        }
        return (String(run[..<slash]), String(run[run.index(after: slash)...]))
    }

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (dag, id) = try Self.split(run)
        try await ledger.show(output, { l in
            try Self.requireRun(dag, id, in: l)
            return try VariableStore(ledger: l).reads(dag: dag, run: id).filter { key == nil || $0.key == key }
        }, text: { reads in
            if reads.isEmpty { Terminal.error("\(run) read no variables\(key.map { " named \($0)" } ?? "")") }
            for r in reads {
                let from = r.setSeq.map { "set at seq \($0)\(r.setAt.map { " \($0)" } ?? "")\(r.setBy.map { " by \($0)" } ?? "")" } ?? "set: unknown"
                let shown = r.reference.map { "→ \($0)" } ?? VariablesList.short(r.value ?? "")
                Terminal.line("\(Show.pad("\(r.task)#\(r.attempt)", 16)) \(Show.pad(r.key, 20)) \(Show.pad(shown, 32)) \(from)")
            }
        })
    }

    /// Fails naming the run when the ledger has no such run.
    static func requireRun(_ dag: String, _ run: String, in l: Ledger) throws {
        guard try !l.seqs(inStream: StreamID.run(dag: dag, run: run), limit: 1).isEmpty else { throw CLIFailure(message: "no run \(dag)/\(run) in the ledger") }
    }
}

extension LedgerOptions {
    /// Opens the ledger read-only, computes `body`'s answer and prints it: as JSON with `--json`, else
    /// with `text`. What the read-only `variables` and `connections` subcommands share.
    func show<T: Encodable>(_ output: OutputOptions, _ body: (Ledger) throws -> T, text: (T) throws -> Void) async throws {
        try await reportingErrors {
            let l = try await open(readOnly: true)
            defer { l.close() }
            let answer = try body(l)
            if output.json { Terminal.line(try JSONOutput.text(answer)) } else { try text(answer) }
        }
    }
}
