import ArgumentParser
import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import Foundation

/// `clew sla`: the SLA misses recorded, with how late each ended up (docs/operations.md#slas).
struct SLACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sla",
        abstract: "List SLA misses (sla.missed): which tasks or runs, the deadline, how late when seen and in the end.",
        discussion: "SLAs are set with sla: on a DAG or task of a pipeline file (.sla(…) in Swift), counted from a run's first start.")

    @Option(name: .long, help: "Only this DAG.") var dag: String?
    @Option(name: .long, help: "Only this run (DAG/RUN).") var run: String?
    @Option(name: .long, help: "At most this many (the newest).") var limit = 100
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        var target: (String, String)?
        if let run { target = try VariablesSeen.split(run) }
        try await ledger.show(output, { l in
            try SLA.recorded(in: l, dag: target?.0 ?? dag, run: target?.1, limit: limit)
        }, text: { rows in
            if rows.isEmpty { Terminal.error("no SLA misses recorded\(dag.map { " for \($0)" } ?? "")"); return }
            Terminal.line(Show.table(
                ["SEQ", "DEADLINE", "DAG", "RUN", "MISSED BY", "SLA", "LATE WHEN SEEN", "LATE IN THE END", "SEEN BY"],
                rows.map { r in
                    let m = r.miss
                    let what = m.scope == "dag" ? "the run" : m.tasks.map { "\($0.task) (\($0.state))" }.joined(separator: ", ")
                    return [
                        String(r.seq), PartitionKey.string(micros: m.deadlineMicros), m.dag, m.run, what, Show.millis(Int64(m.slaMillis)),
                        Show.millis(m.lateByMillis), r.finalLateByMillis.map { Show.millis($0) } ?? "not done yet", m.seenBy,
                    ]
                }))
        })
    }
}
