public import ArgumentParser

/// The `clew` command line, as a library so a package that defines its own pipelines can ship the
/// full CLI: `@main struct MyClew { static func main() async { await ClewCommand.main() } }`.
public struct ClewCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "clew",
        abstract: "Clew: an event-sourced provenance ledger for data pipelines.",
        discussion: """
            Every state transition of every run, task and chunk is an append-only, hash-chained event in a \
            ledger directory (default ./clew.ledger). The engine runs DAGs written in Swift or as pipeline files \
            (YAML, any language) and records them there. Start with `clew demo`.
            """,
        version: "0.1.0",
        subcommands: [
            Demo.self, Dags.self, Run.self, Runs.self, Chunks.self, LineageCommand.self, ValuesCommand.self, Rebuild.self, ViewsCommand.self,
            Trace.self, Search.self, Why.self, Culprit.self, Impact.self, Export.self, ReplayCommand.self, Inspect.self, Debug.self, ExportRun.self, ImportRun.self, ReplayCall.self, Resubmit.self, Backfill.self, SchedulerCommand.self, WorkerCommand.self, Init.self, Append.self, Log.self, Tail.self, Verify.self, Checkpoint.self, Keygen.self,
            Proof.self, Stats.self, Migrate.self, Mirror.self, Backup.self, Restore.self, Erase.self, Retention.self, Bench.self, Serve.self, TokenCommand.self, VariablesCommand.self, ConnectionsCommand.self,
            SLACommand.self, AlertsCommand.self, PoolsCommand.self, TaskCommand.self,

        ]
    )

    public init() {}
}
