import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

extension LedgerOptions {
    /// The ledger, its views and the forensic queries over them.
    func openForensics() throws -> (Ledger, Forensics) {
        let (l, views) = try openViews()
        return (l, Forensics(ledger: l, views: views))
    }
}

struct Trace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lineage of a value, chunk, dataset or run: where it came from (--up) or what it reached (--down).",
        discussion: """
            ID: a run (RUN or DAG/RUN), a chunk (DATASET/KEY), a dataset, a value digest (8+ hex digits), or a node \
            id (chunk:…, value:…, run:…, attempt:DAG/RUN/TASK/N, task:DAG/TASK, dataset:…). Across tasks and runs, \
            cumulative or --as-of a seq or time. With --row N: which input rows made row N of a task output \
            (recorded by the DSL's Rows helpers), hop by hop.
            """)

    @Argument(help: "What to trace.") var id: String
    @Flag(name: .long, help: "Where it came from (default).") var up = false
    @Flag(name: .long, help: "What it reached.") var down = false
    @Option(name: .long, help: "How many data-flow steps to follow (default: all).") var depth: Int?
    @Option(name: .long, help: "text, json, dot or mermaid.") var format: String = "text"
    @Option(name: .long, help: "Follow row-level lineage of this row of a task output.") var row: Int?
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions

    func validate() throws {
        if up && down { throw ValidationError("give --up or --down, not both") }
        if let depth, depth < 1 { throw ValidationError("--depth must be at least 1") }
        if TraceFormat(rawValue: format) == nil { throw ValidationError("--format \(format) is not one of text, json, dot, mermaid") }
        if let row, row < 0 { throw ValidationError("--row must be 0 or more") }
        if row != nil, down { throw ValidationError("--row traces upstream only") }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, f) = try ledger.openForensics()
            defer { l.close() }
            let node = try f.node(id)
            if let row {
                let trace = try f.traceRow(node, row: row)
                if format == "json" {
                    Terminal.line(try JSONOutput.text(trace))
                    return
                }
                Terminal.line("row \(row) of \(node)")
                for (i, hop) in trace.hops.enumerated() {
                    let who = hop.producer.map { "output of \($0)" } ?? "chunk file"
                    Terminal.line("\(String(repeating: "  ", count: i))\(i == 0 ? "" : "← ")\(hop.node.prefix(40)) (\(who)) rows \(Show.clip(hop.rows.map(String.init).joined(separator: ", "), 80))\(hop.derivation.map { "   [\($0)]" } ?? "")")
                    for v in hop.values.prefix(5) { Terminal.line("\(String(repeating: "  ", count: i))    \(Show.clip(v, 110))") }
                    if hop.rows.count > 5 { Terminal.line("\(String(repeating: "  ", count: i))    … \(hop.rows.count - min(5, hop.values.count)) more") }
                }
                return
            }
            let graph = try f.trace(node, direction: down ? .down : .up, depth: depth ?? .max, asOf: try asOf.seq(f.views))
            Terminal.line(try graph.rendered(TraceFormat(rawValue: format)!))
        }
    }
}

struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find runs, or tasks by name and by input, output or variable value, across all runs.",
        subcommands: [Runs.self, SearchTasks.self])
}

struct SearchTasks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks", abstract: "Task attempts by name, output, input or variable value.",
        discussion: """
            Conditions: NAME=VALUE, NAME>=X, NAME<=X, NAME>X, NAME<X, NAME=X..Y (numeric range), NAME^=PREFIX \
            (string prefix), or NAME (any value). --output total>100 matches output.total (or a scalar output with \
            --output output>100); --input matches a parent's output that the task read; --var a recorded variable. \
            Conditions combine: all hold for the same attempt.
            """)
    @Option(name: .long, help: "The task (TASK or DAG/TASK).") var task: String?
    @Option(name: .long, help: "Only this DAG.") var dag: String?
    @Option(name: .long, help: "A condition on the task's output.") var output: String?
    @Option(name: .long, help: "A condition on a value the task read.") var input: String?
    @Option(name: [.customLong("var")], help: "A condition on a variable the task recorded.") var variable: String?
    @Option(name: .long, help: "At most this many attempts.") var limit = 100
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var out: OutputOptions

    func validate() throws {
        if task == nil && output == nil && input == nil && variable == nil {
            throw ValidationError("give --task, --output, --input or --var")
        }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
        for (flag, c) in [("--output", output), ("--input", input), ("--var", variable)] {
            if let c {
                do { _ = try ValueCondition(parsing: c) } catch { throw ValidationError("\(flag): \(error)") }
            }
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, f) = try ledger.openForensics()
            defer { l.close() }
            let q = TaskQuery(
                task: task, dag: dag, output: try output.map(ValueCondition.init(parsing:)), input: try input.map(ValueCondition.init(parsing:)),
                variable: try variable.map(ValueCondition.init(parsing:)), asOf: try asOf.seq(f.views), limit: limit)
            let hits = try f.searchTasks(q)
            if out.json {
                Terminal.line(try JSONOutput.text(hits))
                return
            }
            if hits.isEmpty {
                Terminal.line("no task matched")
                return
            }
            Terminal.line("\(Show.pad("DAG/RUN", 48)) \(Show.pad("TASK#ATTEMPT", 24)) \(Show.pad("STATE", 12)) MATCHED")
            for h in hits {
                Terminal.line("\(Show.pad("\(h.dag)/\(h.run)", 48)) \(Show.pad("\(h.task)#\(h.attempt)", 24)) \(Show.pad(h.state ?? "-", 12)) \(Show.clip(h.matched, 80))")
            }
        }
    }
}

struct Why: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The five-question report of a chunk: ready, right, location, validated, safe, each proved by events.",
        discussion: "For every task that asked to read the chunk (or only RUN's): each answer with the events and times behind it, the chunk's history, and the failures behind it.")
    @Argument(help: "The chunk: DATASET/KEY or chunk:DATASET/KEY.") var chunk: String
    @Option(name: .long, help: "Only consumptions by this run.") var run: String?
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, f) = try ledger.openForensics()
            defer { l.close() }
            let node = try f.node(chunk)
            guard node.hasPrefix("chunk:") else { throw CLIFailure(message: "\(chunk) is not a chunk (give DATASET/KEY)") }
            let (dataset, key) = try f.chunkParts(node)
            let report = try f.why(dataset: dataset, chunk: key, run: run)
            if output.json {
                Terminal.line(try JSONOutput.text(report))
                return
            }
            Terminal.line(report.summary)
            Terminal.line("")
            Terminal.line("history of \(report.dataset)/\(report.chunk)")
            for p in report.history { Terminal.line("  seq \(String(p.seq).leftPad(7))  \(p.time)  \(Show.clip(p.says, 400))") }
            if !report.failures.isEmpty {
                Terminal.line("")
                Terminal.line("failures behind it")
                for p in report.failures { Terminal.line("  seq \(String(p.seq).leftPad(7))  \(p.time)  \(Show.clip(p.says, 120))") }
            }
            for c in report.consumptions {
                Terminal.line("")
                Terminal.line("\(c.attempt) asked at seq \(c.asked.seq) (\(c.asked.time)): \(c.allYes ? "all five yes" : "refused") — \(c.outcome)")
                for a in c.answers {
                    Terminal.line("  \(Show.pad(a.question, 10)) \(a.answer ? "yes" : "NO ")  \(Show.clip(a.evidence, 110))")
                    for p in a.proofs { Terminal.line("  \(String(repeating: " ", count: 15))seq \(p.seq) \(p.time) \(p.type): \(Show.clip(p.says, 90))") }
                }
            }
        }
    }
}

struct Culprit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The earliest failing, invalid or anomalous ancestor of a run, chunk or value.",
        discussion: """
            Failures and failed expectations are events; an anomaly is a numeric variable or output outside the \
            range its task produced in earlier runs (at least 3). Exit status 0 when nothing was found, 2 when a \
            culprit was.
            """)
    @Argument(help: "A run, chunk (DATASET/KEY), value digest or node id.") var id: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let found = try await reportingErrors { () -> Bool in
            let (l, f) = try ledger.openForensics()
            defer { l.close() }
            let report = try f.culprit(try f.node(id))
            if output.json {
                Terminal.line(try JSONOutput.text(report))
            } else {
                Terminal.line(report.summary)
                if !report.findings.isEmpty {
                    Terminal.line("")
                    for x in report.findings {
                        let mark = x == report.culprit ? "▶" : " "
                        Terminal.line("\(mark) seq \(String(x.seq).leftPad(7))  \(Show.pad(x.kind, 18)) \(Show.clip(x.detail, 130))\(x.recovered ? "  (recovered)" : "")")
                    }
                }
                Terminal.line("")
                Terminal.line("checked \(report.attemptsChecked) attempts and \(report.valuesChecked) numeric values against their history")
            }
            return report.culprit != nil
        }
        if found { throw ExitCode(2) }
    }
}

struct Impact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Everything derived from a chunk or value: chunks, values, attempts and runs downstream.",
        discussion: """
            With --quarantine: records them as suspect (a lineage.quarantined event; suspect chunks become invalid \
            so no task reads them) and prints the quarantine id; `clew resubmit --quarantine ID` rebuilds them.
            """)
    @Argument(help: "A chunk (DATASET/KEY), value digest or node id.") var id: String
    @Flag(name: .long, help: "Record what is found as suspect.") var quarantine = false
    @Option(name: .long, help: "Why (recorded with the quarantine).") var reason = "suspect input"
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, f) = try ledger.openForensics()
            defer { l.close() }
            var report = try f.impact(try f.node(id))
            if quarantine {
                report = try await f.quarantine(report, reason: reason, actor: "clew-cli:\(ProcessInfo.processInfo.userName)")
            }
            if output.json {
                Terminal.line(try JSONOutput.text(report))
                return
            }
            Terminal.line("downstream of \(report.source): \(report.chunks.count) chunk(s), \(report.values.count) value(s), \(report.attempts.count) attempt(s), \(report.runs.count) run(s)")
            for c in report.chunks.prefix(50) { Terminal.line("  chunk  \(c)") }
            for v in report.values.prefix(50) { Terminal.line("  value  \(v)") }
            for r in report.runs.prefix(50) { Terminal.line("  run    \(r)") }
            if !report.rebuild.isEmpty {
                Terminal.line("to rebuild: " + report.rebuild.sorted { $0.key < $1.key }.map { "\($0.key) [\($0.value.joined(separator: ", "))]" }.joined(separator: "; "))
            }
            if let q = report.quarantine {
                Terminal.line("quarantined as \(q); rebuild with: clew resubmit --quarantine \(q) --ledger \(ledger.ledger)")
            }
        }
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export lineage for audit: W3C PROV-JSON with Merkle proofs, or OpenLineage run events.",
        subcommands: [ExportProv.self, ExportOpenLineage.self])
}

struct ExportProv: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prov",
        abstract: "W3C PROV-JSON of a run, a dataset or a lineage query, with the Merkle root and inclusion proofs of its events.",
        discussion: """
            ID: a run (RUN or DAG/RUN), a dataset (NAME or dataset:NAME), or with --trace any node, exported as the \
            lineage `clew trace ID` would print (--down for what it reached). Each event behind the document is \
            included with its canonical bytes, leaf hash and inclusion path to the root in entity clew:ledger.
            """)
    @Argument(help: "A run, dataset, or (with --trace) any node.") var id: String
    @Flag(name: .long, help: "Export the lineage of ID rather than a run or dataset.") var trace = false
    @Flag(name: .long, help: "With --trace: what ID reached, not where it came from.") var down = false
    @Option(name: .long, help: "With --trace: how many steps.") var depth: Int?
    @Option(name: [.short, .long], help: "Write to this file (default: standard output).") var output: String?
    @OptionGroup var ledger: LedgerOptions

    func run() async throws {
        try await reportingErrors {
            let (l, f) = try ledger.openForensics()
            defer { l.close() }
            let node = try f.node(id)
            let edges: [LineageEdge]
            if trace {
                edges = try f.trace(node, direction: down ? .down : .up, depth: depth ?? .max).edges
            } else if node.hasPrefix("run:"), let slash = node.dropFirst(4).firstIndex(of: "/") {
                let rest = node.dropFirst(4)
                edges = try ProvExport.edges(ofRun: RunKey(dag: String(rest[..<slash]), run: String(rest[rest.index(after: slash)...])), f)
            } else if node.hasPrefix("dataset:") {
                edges = try ProvExport.edges(ofDataset: String(node.dropFirst(8)), f)
            } else {
                throw CLIFailure(message: "\(id) is a \(node.prefix { $0 != ":" }); export a run or dataset, or give --trace")
            }
            let text = try ProvExport.document(edges, title: "\(trace ? "lineage of " : "")\(node)", f).text
            try write(text, to: output)
        }
    }
}

struct ExportOpenLineage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openlineage",
        abstract: "OpenLineage 2-0-2 run events (one JSON object per line) for a run and its task attempts, or for every run.",
        discussion: "A run is job DAG; each task attempt is job DAG.TASK with a parent facet. Lines can be POSTed to any OpenLineage endpoint.")
    @Argument(help: "The run (RUN or DAG/RUN); omit with --all.") var run: String?
    @Flag(name: .long, help: "Every run in the ledger.") var all = false
    @Option(name: [.short, .long], help: "Write to this file (default: standard output).") var output: String?
    @OptionGroup var ledger: LedgerOptions

    func validate() throws {
        if (run == nil) == !all { throw ValidationError("give a RUN or --all") }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, f) = try ledger.openForensics()
            defer { l.close() }
            let keys = try all ? l.streams(prefix: "run/").compactMap { RunKey(stream: $0.stream) } : [f.views.oneRun(run!)]
            var lines: [String] = []
            for key in keys { lines += try OpenLineageExport.events(of: key, f).map(\.text) }
            try write(lines.joined(separator: "\n"), to: output)
        }
    }
}

/// Writes text to a file, or prints it.
private func write(_ text: String, to path: String?) throws {
    guard let path else {
        Terminal.line(text)
        return
    }
    do {
        try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw CLIFailure(message: "cannot write \(path): \(error.localizedDescription)")
    }
}
