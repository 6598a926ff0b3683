import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-execute a recorded run deterministically and compare every event with the record.",
        discussion: """
            Feeds back the run's inputs, params, time, randomness, side-effect results, chunk files and \
            scheduling (start order, attempts, branch choices) and compares each task start, input, step, \
            expectation, output and outcome. Exit 0: identical; exit 2: diverged (the first difference and its \
            cause: dag_changed, input_changed, nondeterminism, code_changed, environment).

            With --set (params NAME=VALUE, or TASK.output=JSON) or --branch, runs today's code as a new run \
            linked to the original (its branch) on the same recorded data, and diffs the two runs value by value.
            """)

    @Argument(help: "The run: RUN or DAG/RUN.")
    var run: String

    @Option(name: .long, help: "Replay this task and what follows it; upstream outputs come from the record.")
    var from: String?

    @Option(name: .customLong("set"), help: "Counterfactual: override a param (NAME=VALUE) or a task's output (TASK.output=JSON). Repeatable.")
    var overrides: [String] = []

    @Flag(name: .long, help: "Counterfactual with no overrides: today's code on the original's recorded data, as a new run.")
    var branch = false

    @Option(name: .long, help: "The branch run's id (default: <run>.branch-<n>).")
    var branchId: String?

    @Flag(name: .long, help: "Keep the replay's scratch files (under <ledger>/data/replays).")
    var keep = false

    @OptionGroup var params: ParamOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (registry, _) = try pipelines.registry(strict: false)
            let counterfactual = branch || !overrides.isEmpty
            if counterfactual, from != nil { throw CLIFailure(message: "--from replays the record; it cannot be combined with --set or --branch") }
            let l = try await ledger.open(readOnly: !counterfactual)
            defer { l.close() }
            let key = try RecordedRun.resolve(run, in: l)
            let recording = try RecordedRun.load(key, from: l)
            let replayer = Replayer(ledger: l, registry: registry)
            if counterfactual {
                guard let dag = registry.dag(named: key.dag) else {
                    throw CLIFailure(message: "DAG \(key.dag) is not known to this executable or pipeline directory; a branch runs today's code")
                }
                let o = try Overrides(parsing: overrides + (try params.dictionary()).map { "\($0.key)=\($0.value)" }, dag: dag.spec)
                let report = try await withInterruption {
                    try await replayer.branch(recording, overrides: o, runID: branchId, dataDirectory: pipelines.dataDir.map { URL(fileURLWithPath: $0) })
                }
                print(output.json ? try JSONOutput.text(report) : Self.text(report))
                return
            }
            var options = ReplayOptions()
            options.from = from
            options.params = try params.dictionary()
            // Scratch files under the ledger's data directory, or the temporary directory for a read-only ledger.
            let base = FileManager.default.isWritableFile(atPath: l.directory.path)
                ? l.directory.appendingPathComponent("data/replays/\(key.dag)/\(key.run)") : FileManager.default.temporaryDirectory
            options.workDirectory = base.appendingPathComponent("clew-replay-\(UInt32.random(in: 0...UInt32.max))")
            let chosen = options
            let report = try await withInterruption { try await replayer.replay(recording, options: chosen) }
            if !keep, let w = options.workDirectory { try? FileManager.default.removeItem(at: w) }
            print(output.json ? try JSONOutput.text(report) : Self.text(report, keptIn: keep ? options.workDirectory : nil))
            if !report.isIdentical { throw ExitCode(2) }
        }
    }

    static func text(_ r: ReplayReport, keptIn: URL? = nil) -> String {
        var lines: [String] = []
        let scope = r.fromRecord.isEmpty ? "" : " (from the record: \(r.fromRecord.joined(separator: ", ")))"
        for n in r.notices { lines.append("note: \(n)") }
        if let d = r.divergence {
            lines.append("replay \(r.run): DIVERGED after \(r.stepsCompared) steps compared over \(r.attemptsReplayed) attempts\(scope)")
            let step = d.step.map { ", step \($0)" } ?? ""
            let seq = d.seq.map { ", recorded at seq \($0)" } ?? ""
            lines.append("  first difference: task \(d.task) attempt \(d.attempt)\(step): \(d.variable) (\(d.event)\(seq))")
            lines.append("    expected: \(Show.clip(d.expected ?? "(nothing)", 200))")
            lines.append("    actual:   \(Show.clip(d.actual ?? "(nothing)", 200))")
            if d.diff.count > 1 || d.diff.first?.path != "$" {
                for v in d.diff.prefix(8) { lines.append("    \(v.path): \(Show.clip(v.expected ?? "absent", 60)) → \(Show.clip(v.actual ?? "absent", 60))") }
                if d.diff.count > 8 { lines.append("    … \(d.diff.count - 8) more") }
            }
            lines.append("  cause: \(d.cause.kind): \(d.cause.explanation)")
            for (k, v) in d.cause.evidence.sorted(by: { $0.key < $1.key }) { lines.append("    \(k): \(v)") }
        } else {
            lines.append("replay \(r.run): identical — \(r.stepsCompared) steps compared over \(r.attemptsReplayed) attempts\(scope) in \(String(format: "%.2f", r.seconds)) s")
        }
        if let keptIn { lines.append("replay files kept in \(keptIn.path)") }
        return lines.joined(separator: "\n")
    }

    static func text(_ r: BranchReport) -> String {
        var lines = ["branch run \(r.branch) of \(r.original): \(r.branchStatus) (original: \(r.originalStatus)); DAG version \(r.dagVersion)"]
        if !r.overrides.isEmpty { lines.append("overrides: " + r.overrides.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")) }
        lines.append("\(r.changed) values changed, \(r.unchanged) unchanged")
        let changed = r.values.filter(\.changed)
        if !changed.isEmpty {
            lines.append(Show.table(
                ["TASK", "VALUE", "ORIGINAL", "BRANCH"],
                changed.map { [$0.task, $0.name, Show.clip($0.original ?? "—", 48), Show.clip($0.branch ?? "—", 48)] }))
        }
        return lines.joined(separator: "\n")
    }
}
