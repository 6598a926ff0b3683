import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewServer
import Foundation

struct Dags: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the DAGs this executable can run (shipped in it, or in the pipeline directory) and those the ledger knows.",
        discussion: """
            DAGs only the ledger knows were registered by earlier runs or by OpenLineage producers (Airflow, dbt) \
            through `clew serve`; they are listed with RUNNABLE no. Without a ledger at --ledger, only runnable DAGs.
            """)

    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (registry, problems) = try pipelines.registry(strict: false)
            var registered: [RegisteredDAG] = []
            if ledger.isShared || FileManager.default.fileExists(atPath: ledger.url.appendingPathComponent("LEDGER").path) {
                let l = try await ledger.open(readOnly: true)
                defer { l.close() }
                registered = try RegisteredDAG.all(in: l)
            }
            let dags = DAGCatalog.merge(registry: registry, registered: registered)
            if output.json {
                struct Row: Encodable {
                    var dag, version, origin: String
                    var tasks: Int
                    var schedule: String?
                    var description: String
                    var runnable: Bool

                    func encode(to encoder: any Encoder) throws {
                        var c = encoder.container(keyedBy: CodingKeys.self)
                        try c.encode(dag, forKey: .dag)
                        try c.encode(version, forKey: .version)
                        try c.encode(origin, forKey: .origin)
                        try c.encode(tasks, forKey: .tasks)
                        try c.encode(schedule, forKey: .schedule)  // null for a DAG run by hand
                        try c.encode(description, forKey: .description)
                        try c.encode(runnable, forKey: .runnable)
                    }

                    enum CodingKeys: String, CodingKey { case dag, version, origin, tasks, schedule, description, runnable }
                }
                let rows = dags.map { d in
                    Row(
                        dag: d.name, version: d.version, origin: d.origin, tasks: d.spec?.tasks.count ?? 0, schedule: d.schedule,
                        description: d.spec?.description ?? "", runnable: d.runnable)
                }
                Terminal.line(String(decoding: try JSON.canonical(rows), as: UTF8.self))
            } else {
                Terminal.line(Show.table(["DAG", "VERSION", "TASKS", "SCHEDULE", "RUNNABLE", "ORIGIN"], dags.map { d in
                    [d.name, d.version, String(d.spec?.tasks.count ?? 0), d.schedule ?? "manual", d.runnable ? "yes" : "no", d.origin]
                }))
            }
            if !problems.isEmpty { throw CLIFailure(message: problems.joined(separator: "\n")) }
        }
    }
}
