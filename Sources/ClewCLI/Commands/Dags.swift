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
            if FileManager.default.fileExists(atPath: ledger.url.appendingPathComponent("LEDGER").path) {
                let l = try ledger.open(readOnly: true)
                defer { l.close() }
                registered = try RegisteredDAG.all(in: l)
            }
            let dags = DAGCatalog.merge(registry: registry, registered: registered)
            if output.json {
                let list: [[String: Any]] = dags.map { d in
                    [
                        "dag": d.name, "version": d.version, "origin": d.origin, "tasks": d.spec?.tasks.count ?? 0,
                        "schedule": d.schedule ?? NSNull(), "description": d.spec?.description ?? "", "runnable": d.runnable,
                    ]
                }
                Terminal.line(String(decoding: try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys]), as: UTF8.self))
            } else {
                Terminal.line(Show.table(["DAG", "VERSION", "TASKS", "SCHEDULE", "RUNNABLE", "ORIGIN"], dags.map { d in
                    [d.name, d.version, String(d.spec?.tasks.count ?? 0), d.schedule ?? "manual", d.runnable ? "yes" : "no", d.origin]
                }))
            }
            if !problems.isEmpty { throw CLIFailure(message: problems.joined(separator: "\n")) }
        }
    }
}
