import ArgumentParser
import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct ValuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "values",
        abstract: "Find recorded values and variables by name and value in the value index.",
        discussion: "Names: a variable's name, `output` (a task's output; `output.FIELD` for a record's fields).")

    @Argument(help: "The variable or output name (omit with --digest).") var name: String?
    @Option(name: .long, help: "Only this task (TASK or DAG/TASK).") var task: String?
    @Option(name: .long, help: "Equal to this number, string or true/false.") var eq: String?
    @Option(name: .long, help: "A number at least this.") var min: Double?
    @Option(name: .long, help: "A number at most this.") var max: Double?
    @Option(name: .long, help: "A string starting with this.") var prefix: String?
    @Option(name: .long, help: "Any value with this SHA-256, under any name.") var digest: String?
    @Option(name: .long, help: "At most this many.") var limit = 100
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        let given = [eq != nil, min != nil || max != nil, prefix != nil, digest != nil].filter { $0 }.count
        if given > 1 { throw ValidationError("give one of --eq, --min/--max, --prefix, --digest") }
        if digest == nil, name == nil { throw ValidationError("give a NAME (or --digest)") }
        if let digest, digest.count != 64 || !digest.allSatisfy(\.isHexDigit) { throw ValidationError("--digest must be 64 hex digits") }
    }

    var match: ValueMatch {
        if let digest { return .digest(digest.lowercased()) }
        if let prefix { return .prefix(prefix) }
        if min != nil || max != nil { return .range(min: min, max: max) }
        if let eq {
            if eq == "true" || eq == "false" { return .equals(.bool(eq == "true")) }
            if let n = Double(eq) { return .equals(.number(n)) }
            return .equals(.string(eq))
        }
        return .any
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try await ledger.openViews()
            defer { l.close() }
            let hits = try views.values(name: name, task: task, match: match, asOf: try asOf.seq(views), limit: limit)
            if output.json { Terminal.line(try JSONOutput.text(hits)); return }
            if hits.isEmpty { Terminal.line("no values"); return }
            for h in hits {
                let at = h.step.map { " step \($0)" } ?? ""
                Terminal.line("seq \(h.seq)  \(h.dag)/\(h.run)  \(h.task)#\(h.attempt)\(at)  \(h.name) = \(h.value ?? h.digest.map { "sha256:\($0.prefix(16))…" } ?? "?")")
            }
        }
    }
}
