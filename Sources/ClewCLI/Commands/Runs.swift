import ArgumentParser
import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List runs, newest first, from the runs view.",
        discussion: "Filters combine: --dag, --state (queued, running, resubmitted, succeeded, failed, cancelled), queued time range, and --external-id (the producer's own run id, such as Airflow's run_id).")

    @Option(name: .long, help: "Only runs of this DAG.") var dag: String?
    @Option(name: .long, help: "Only runs in this state.") var state: String?
    @Option(name: .long, help: "Queued at or after this UTC time.") var since: String?
    @Option(name: .long, help: "Queued before this UTC time.") var until: String?
    @Option(name: .long, help: "At most this many runs.") var limit = 50
    @Option(name: .customLong("external-id"), help: "Only the run its producer calls this (Airflow's run_id, e.g. manual__2026-11-03T00:00:00+00:00).")
    var externalID: String?
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    static let states = ["queued", "running", "resubmitted", "succeeded", "failed", "cancelled"]

    func validate() throws {
        if let state, !Self.states.contains(state) {
            throw ValidationError("--state \(state) is not a run state; one of \(Self.states.joined(separator: ", "))")
        }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
        for (flag, value) in [("--since", since), ("--until", until)] {
            if let value, PartitionKey.parse(value) == nil { throw ValidationError("\(flag) \(value) is not a UTC time such as 2026-11-21T10:00Z") }
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try await ledger.openViews()
            defer { l.close() }
            let query = RunQuery(
                dag: dag, state: state, sinceMicros: since.flatMap(PartitionKey.parse), untilMicros: until.flatMap(PartitionKey.parse),
                limit: limit, asOf: try asOf.seq(views), externalID: externalID)
            let runs = try views.runs(query)
            if output.json {
                Terminal.line(try JSONOutput.text(runs))
                return
            }
            if runs.isEmpty {
                Terminal.line("no runs")
                return
            }
            // Columns as wide as their widest cell: DAG and run names have no bound.
            let showExternal = runs.contains { $0.externalID != nil }
            Terminal.line(Show.table(
                ["DAG/RUN", "STATE", "QUEUED", "DURATION", "ATTEMPTS", "VERSION"] + (showExternal ? ["EXTERNAL ID"] : []),
                runs.map { r in
                    [r.key.description, r.state, Show.time(r.queuedMicros), Show.millis(r.durationMillis), String(r.attempts), r.version ?? "-"]
                        + (showExternal ? [r.externalID ?? "-"] : [])
                }))
        }
    }
}

struct RunShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a run and its tasks from the runs view.")

    @Argument(help: "The run: RUN or DAG/RUN.") var run: String
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try await ledger.openViews()
            defer { l.close() }
            let key = try views.oneRun(run)
            let seq = try asOf.seq(views)
            guard let detail = try views.run(key, asOf: seq) else {
                throw CLIFailure(message: "run \(key) had not been queued as of seq \(seq ?? 0)")
            }
            if output.json {
                Terminal.line(try JSONOutput.text(detail))
                return
            }
            let r = detail.run
            Terminal.line("run       \(r.key)\(seq.map { "   (as of seq \($0))" } ?? "")")
            Terminal.line("state     \(r.state)")
            Terminal.line("version   \(r.version ?? "-")   trigger \(r.trigger ?? "-")\(r.partition.map { "   partition \($0)" } ?? "")")
            if let ids = r.externalIDs, !ids.isEmpty { Terminal.line("external  \(ids.joined(separator: ", "))") }
            Terminal.line("queued    \(Show.time(r.queuedMicros))   started \(Show.time(r.startedMicros))   ended \(Show.time(r.endedMicros))   (\(Show.millis(r.durationMillis)))")
            if let p = r.params, !p.isEmpty {
                Terminal.line("params    " + p.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            }
            Terminal.line("attempts  \(r.attempts)   resubmissions \(r.resubmissions)   events seq \(r.firstSeq)...\(r.lastSeq)")
            Terminal.line("")
            Terminal.line(Show.table(["TASK", "STATE", "ATTEMPTS", "DURATION", "DETAIL"], detail.tasks.map { t in
                let detail = t.error ?? t.reason ?? t.branch.map { "branch \($0)" } ?? t.outputDigest.map { "output \($0.prefix(12))" } ?? ""
                return [t.task, t.state, String(t.attempts), Show.millis(t.durationMillis.map(Int64.init)), detail]
            }))
        }
    }
}
