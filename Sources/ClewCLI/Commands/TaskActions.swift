import ArgumentParser
import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import Foundation

/// `clew task`: the task actions of Airflow's task instance menu, each an event with who and why
/// (docs/operations.md#task-actions).
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Clear a task (run it again with every task after it), or mark it succeeded or failed; each recorded with who and why.",
        subcommands: [TaskClear.self, TaskMarkCommand.self])
}

struct TaskClear: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clear", abstract: "Record task.cleared and run the task again with every task after it (a resubmit of the run), now.")
    @Argument(help: "The run: DAG/RUN.") var run: String
    @Argument(help: "The task.") var task: String
    @Option(name: .long, help: "Why (recorded).") var reason: String?
    @Option(name: .long, help: "Who clears it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var params: ParamOptions
    @OptionGroup var dispatch: DispatchOptions
    @OptionGroup var alerting: AlertingOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (dag, id) = try VariablesSeen.split(run)
        try await reportingErrors {
            let (registry, _) = try pipelines.registry(strict: false)
            let l = try await ledger.open()
            defer { l.close() }
            let replication = following(l)
            defer { replication.cancel() }
            let engine = pipelines.engine(l, registry, dispatch: dispatch)
            guard registry.dag(named: dag) != nil else {
                throw CLIFailure(message: "DAG \(dag) is not known to this executable or pipeline directory (--pipelines); it cannot run again")
            }
            let params = try self.params.dictionary()
            let actor = VariablesCommand.actor(by)
            let outcome = try await alerting.around(l, dags: registry.dag(named: dag).map { [$0.spec] } ?? []) {
                try await withInterruption { try await engine.clear(dag: dag, run: id, task: task, reason: reason, by: actor, params: params) }
            }
            try report(outcome, json: output.json)
            if outcome.status != .succeeded { throw ExitCode(outcome.status.exitCode) }
        }
    }
}

struct TaskMarkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mark",
        abstract: "Set a task's state by hand: task.marked_success or task.marked_failed (a resubmit keeps one marked succeeded, runs one marked failed again).")
    @Argument(help: "The run: DAG/RUN.") var run: String
    @Argument(help: "The task.") var task: String
    @Flag(name: .long, help: "Mark it succeeded.") var success = false
    @Flag(name: .long, help: "Mark it failed.") var failed = false
    @Option(name: .long, help: "Why (recorded).") var reason: String?
    @Option(name: .long, help: "Who marks it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions

    func validate() throws {
        if success == failed { throw ValidationError("give exactly one of --success or --failed") }
    }

    func run() async throws {
        let (dag, id) = try VariablesSeen.split(run)
        try await reportingErrors {
            let (registry, _) = try pipelines.registry(strict: false)
            let l = try await ledger.open()
            defer { l.close() }
            let engine = pipelines.engine(l, registry)
            let seq = try await engine.mark(dag: dag, run: id, task: task, as: success ? .success : .failed, reason: reason, by: VariablesCommand.actor(by))
            Terminal.error("marked \(task) of \(dag)/\(id) \(success ? "succeeded" : "failed") (seq \(seq))")
        }
    }
}
