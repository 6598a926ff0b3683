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
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let found = try await reportingErrors { () -> Bool in
            let (l, f) = try await ledger.openForensics()
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
