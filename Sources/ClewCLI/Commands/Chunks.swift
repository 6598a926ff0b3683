import ArgumentParser
import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct Chunks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chunk status of a dataset (or a summary of every dataset) from the chunk view.",
        discussion: """
            Without --status: counts per status, then the failed, invalid, stale, missing and in-progress chunks as \
            key ranges. With --status S (a chunk status, stale or missing): the chunks in it.
            """)

    @Argument(help: "The dataset (omit for every dataset).") var dataset: String?
    @Option(name: .long, help: "List the chunks in this status (or stale, or missing).") var status: String?
    @Option(name: .long, help: "At most this many chunks or key ranges per set.") var limit = 20
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let status, status != "stale", status != "missing", ChunkStatus(rawValue: status) == nil {
            throw ValidationError("--status \(status) is not a chunk status; one of \(ChunkStatus.allCases.map(\.rawValue).joined(separator: ", ")), stale, missing")
        }
        if status != nil, dataset == nil { throw ValidationError("--status needs a DATASET") }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try await ledger.openViews()
            defer { l.close() }
            let seq = try asOf.seq(views)
            guard let dataset else {
                let all = try views.datasets(asOf: seq)
                if output.json { Terminal.line(try JSONOutput.text(all)); return }
                if all.isEmpty { Terminal.line("no datasets"); return }
                // Columns as wide as their widest cell: OpenLineage names (`s3://bucket:path/to/table`) run long.
                Terminal.line(Show.table(["DATASET", "PARTITIONING", "CHUNKS", "MISSING", "STALE", "STATUS"], all.map { d in
                    let counts = d.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    return [d.name, d.partitioning, String(d.chunks), String(d.missing), String(d.stale), counts]
                }))
                return
            }
            if let status, status != "missing" {
                let chunks = try views.chunks(dataset: dataset, status: status, limit: limit, asOf: seq)
                if output.json { Terminal.line(try JSONOutput.text(chunks)); return }
                for c in chunks {
                    let by = [c.run.map { "run \($0)" }, c.task.map { "task \($0)" }].compactMap { $0 }.joined(separator: " ")
                    Terminal.line("\(Show.pad(c.key, 28)) \(Show.pad(c.status, 11)) since seq \(c.since)  \(by)\(c.staleBecause.map { "  stale: \($0)" } ?? "")")
                }
                return
            }
            guard var report = try views.chunkStatus(dataset: dataset, ranges: limit, asOf: seq) else {
                throw CLIFailure(message: "no dataset \(dataset) in the chunk view (`clew chunks` lists them)")
            }
            if status == "missing" { report.groups = report.groups.filter { $0.set == "missing" } }
            if output.json { Terminal.line(try JSONOutput.text(report)); return }
            let d = report.dataset
            Terminal.line("dataset   \(d.name)   partitioning \(d.partitioning)\(seq.map { "   (as of seq \($0))" } ?? "")")
            Terminal.line("chunks    \(d.chunks)   missing \(d.missing)   stale \(d.stale)")
            Terminal.line("status    " + d.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            for g in report.groups where !["ready", "consumed"].contains(g.set) || status != nil {
                Terminal.line("")
                Terminal.line("\(g.set) (\(g.count))")
                for r in g.ranges {
                    Terminal.line(r.count == 1 ? "  \(r.first)" : "  \(r.first) .. \(r.last)  (\(r.count))")
                }
                if g.truncated { Terminal.line("  … more ranges (raise --limit)") }
            }
        }
    }
}
