import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct Culprit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The earliest failing, invalid or anomalous ancestor of a run, chunk or value.",
        discussion: """
            Failures and failed expectations are events; an anomaly is a numeric variable or output outside the \
            range its task produced in earlier runs (at least 3). Exit status 0 when nothing was found, 2 when a \
            culprit was.
            """)
    @Argument(help: "A run, chunk (DATASET/KEY), value digest or node id.") var id: String
    @Flag(name: .long, help: "Record the culprit found as culprit.found, which alerts the DAG it is in (rule culprit).") var record = false
    @Option(name: .long, help: "Why (recorded with --record).") var reason: String?
    @Option(name: .long, help: "Who looked (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let found = try await reportingErrors { () -> Bool in
            let (l, f) = try await ledger.openForensics()
            defer { l.close() }
            let report = try f.culprit(try f.node(id))
            if record, let c = report.culprit {
                let found = CulpritFound(
                    target: id, kind: c.kind, dag: c.attempt?.dag, run: c.attempt?.run, task: c.attempt?.task, attempt: c.attempt?.attempt, chunk: c.chunk,
                    findingSeq: c.seq, detail: String(c.detail.prefix(2_000)), variable: c.variable, value: c.value, reason: reason)
                let seq = try await l.append(NewEvent(
                    type: EventType.culpritFound, stream: StreamID.culprits, actor: VariablesCommand.actor(by),
                    timestampMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), payload: found.payloadData))
                Terminal.error("recorded the culprit as culprit.found (seq \(seq))")
            }
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
