import ArgumentParser
import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct LineageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lineage",
        abstract: "Edges of the lineage view around a node, upstream or downstream.",
        discussion: """
            Nodes: dataset:NAME, task:DAG/TASK, chunk:DATASET/KEY, attempt:DAG/RUN/TASK/N, value:SHA256, run:DAG/RUN, action:DAG/RUN/SEQ (a task action).
            """)

    @Argument(help: "The node to start from.") var node: String
    @Flag(name: .long, help: "Where it came from (default).") var up = false
    @Flag(name: .long, help: "What it reached.") var down = false
    @Option(name: .long, help: "How many steps to follow.") var depth = 10
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if up && down { throw ValidationError("give --up or --down, not both") }
        if depth < 1 { throw ValidationError("--depth must be at least 1") }
        let kinds = ["dataset:", "task:", "chunk:", "attempt:", "value:", "run:"]
        if !kinds.contains(where: node.hasPrefix) {
            throw ValidationError("node \(node) has no kind; start it with one of \(kinds.joined(separator: " "))")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try await ledger.openViews()
            defer { l.close() }
            let edges = try views.lineage(node: node, direction: down ? .down : .up, depth: depth, asOf: try asOf.seq(views))
            if output.json { Terminal.line(try JSONOutput.text(edges)); return }
            if edges.isEmpty { Terminal.line("no lineage \(down ? "downstream" : "upstream") of \(node)"); return }
            for e in edges { Terminal.line("\(e.from) --\(e.kind)--> \(e.to)   (seq \(e.firstSeq))") }
        }
    }
}
