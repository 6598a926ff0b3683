import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

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
            let (l, f) = try await ledger.openForensics()
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
            let (l, f) = try await ledger.openForensics()
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
