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

    struct Row: Encodable {
        var seq: UInt64
        var miss: SLAMissed
        /// How late it ended up (nil: not ended yet).
        var finalLateByMillis: Int64?
    }

    func run() async throws {
        try await ledger.show(output, { l in
            var streams: [String]
            if let run {
                let (d, r) = try VariablesSeen.split(run)
                try VariablesSeen.requireRun(d, r, in: l)
                streams = [StreamID.run(dag: d, run: r)]
            } else {
                streams = try l.streams(prefix: StreamID.run(dag: dag ?? "", run: "").dropLast(dag == nil ? 1 : 0).description).map(\.stream)
            }
            var rows: [Row] = []
            for s in streams {
                let events = try l.events(inStream: s)
                for e in events where e.type == EventType.slaMissed {
                    guard let m = try? JSONDecoder().decode(SLAMissed.self, from: e.payload) else { continue }
                    if let dag, m.dag != dag { continue }
                    rows.append(Row(seq: e.seq, miss: m, finalLateByMillis: SLA.finalLateness(of: m, events: events)))
                }
            }
            return Array(rows.sorted { $0.seq < $1.seq }.suffix(max(0, limit)))
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
