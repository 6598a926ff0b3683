import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

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
            let (l, f) = try await ledger.openForensics()
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
