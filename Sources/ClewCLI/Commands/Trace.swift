import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

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
            let (l, f) = try await ledger.openForensics()
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
