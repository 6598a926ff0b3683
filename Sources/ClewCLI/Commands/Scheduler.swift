import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewServer
import Foundation
import Synchronization

struct Backfill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a scheduled DAG for every partition starting in [--from, --to), oldest first.")

    @Argument(help: "The DAG name (or pipeline file).")
    var dag: String

    @Option(name: .long, help: "First partition start (UTC), e.g. 2026-11-01.")
    var from: String

    @Option(name: .long, help: "End of the range (exclusive, UTC).")
    var to: String

    @OptionGroup var params: ParamOptions
    @OptionGroup var dispatch: DispatchOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            guard let f = PartitionKey.parse(from) else { throw CLIFailure(message: "--from '\(from)' is not a UTC date (2026-11-01 or 2026-11-01T00:00Z)") }
            guard let t = PartitionKey.parse(to) else { throw CLIFailure(message: "--to '\(to)' is not a UTC date (2026-11-01 or 2026-11-01T00:00Z)") }
            let (registry, _) = try pipelines.registry(strict: false)
            let target = try pipelines.resolve(dag, in: registry)
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let replication = following(l)
            defer { replication.cancel() }
            let scheduler = Scheduler(engine: pipelines.engine(l, registry, dispatch: dispatch))
            let params = try self.params.dictionary()
            let json = output.json
            let outcomes = try await withInterruption {
                try await scheduler.backfill(target, from: f, to: t, params: params) { try? report($0, json: json) }
            }
            if let bad = outcomes.first(where: { $0.status != .succeeded }) { throw ExitCode(bad.status.exitCode) }
        }
    }
}

struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Run scheduled DAGs as their partitions come due (with catch-up) until stopped (Ctrl-C or SIGTERM).",
        discussion: "By default it schedules the pipeline files and the DAGs a package registered, not the shipped demos; name DAGs with --dag to choose.")

    @Option(name: .customLong("dag"), help: "Schedule only this DAG (repeatable).")
    var dags: [String] = []

    @Flag(name: .long, help: "Run what is due now, then exit.")
    var once = false

    @Option(name: .long, help: "Longest sleep between checks, in seconds.")
    var poll = 30

    @OptionGroup var dispatch: DispatchOptions
    @OptionGroup var alerting: AlertingOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (registry, _) = try pipelines.registry(strict: true)
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let replication = following(l)
            defer { replication.cancel() }
            for name in dags where registry.dag(named: name) == nil {
                throw CLIFailure(message: "--dag \(name): no such DAG (known: \(registry.all.map(\.name).joined(separator: ", ")))")
            }
            let demos = Set(DemoDAGs.all.map(\.name))
            let chosen = dags.isEmpty ? Set(registry.all.map(\.name).filter { !demos.contains($0) }) : Set(dags)
            let scheduler = Scheduler(engine: pipelines.engine(l, registry, dispatch: dispatch), only: chosen)
            let json = output.json
            let scheduled = scheduler.scheduledDAGs.map { "\($0.name) (\($0.spec.schedule!.description))" }
            FileHandle.standardError.write(Data("scheduler: \(scheduled.count) scheduled DAGs: \(scheduled.joined(separator: ", "))\n".utf8))
            if once {
                let outcomes = try await alerting.around(l, dags: registry.all.map(\.spec)) {
                    let misses = try await scheduler.checkSLAs()
                    for m in misses { Self.tell(m) }
                    return try await withInterruption { try await scheduler.tick(now: Int64(Date().timeIntervalSince1970 * 1_000_000)) }
                }
                for o in outcomes { try report(o, json: json) }
                return
            }
            // One scheduler of a ledger leads (all hosts, over a shared log); the others wait to take over.
            // Alerts have their own lead: this process sends them whenever no other one does.
            let alerts = alerting.background(l)
            defer { alerts?.cancel() }
            let poll = self.poll
            let failure = FailureBox()
            try await withInterruption {
                while !Task.isCancelled {
                    Terminal.error("scheduler: waiting to lead (one scheduler of \(l.location) runs the due partitions)")
                    let lost = try await l.lead("scheduler", poll: .seconds(1)) {
                        Terminal.error("scheduler: leading")
                        do {
                            try await scheduler.run(
                                poll: .seconds(max(1, poll)), onRun: { try? report($0, json: json) }, onProblem: { Terminal.error("scheduler: \($0)") },
                                onMiss: Self.tell)
                        } catch {
                            failure.error.withLock { $0 = error }
                        }
                    }
                    if !lost { break }
                    Terminal.error("scheduler: lost the lead (the server stopped answering); its runs were stopped")
                }
                if let error = failure.error.withLock({ $0 }) { throw error }
            }
        }
    }
}

extension SchedulerCommand {
    @Sendable static func tell(_ m: SLAMissed) {
        Terminal.error("scheduler: SLA missed by run \(m.run) of \(m.dag): \(m.scope == "dag" ? "the run" : m.tasks.map(\.task).joined(separator: ", "))")
    }
}

/// The error a leading scheduler stopped with, rethrown once it has let go of the lead.
final class FailureBox: Sendable {
    let error = Mutex<(any Error)?>(nil)
}
