import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

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
            let (l, f) = try await ledger.openForensics()
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
