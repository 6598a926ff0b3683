import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewServer
import Foundation

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a DAG (`clew run DAG`), or show a recorded run (`clew run show RUN`).",
        subcommands: [RunStart.self, RunShow.self],
        defaultSubcommand: RunStart.self)
}

struct RunStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Run a DAG (by name, or a pipeline file) once and print its run id (the default of `clew run`).",
        discussion: "Exit status: 0 succeeded, 3 failed, 130 cancelled (Ctrl-C stops running tasks and records it).")

    @Argument(help: "A DAG name from `clew dags`, or a pipeline file (*.yaml).")
    var target: String

    @OptionGroup var params: ParamOptions

    @Option(name: .long, help: "Run for the partition starting at this UTC time (scheduled DAGs), e.g. 2026-11-21.")
    var partition: String?

    @Option(name: .long, help: "Run id (default: manual__<time>_<random>).")
    var runId: String?

    @OptionGroup var dispatch: DispatchOptions
    @OptionGroup var alerting: AlertingOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (registry, _) = try pipelines.registry(strict: false)
            let dag = try pipelines.resolve(target, in: registry)
            let params = try self.params.dictionary()
            var part: Partition?
            if let partition {
                guard let start = PartitionKey.parse(partition) else { throw CLIFailure(message: "--partition '\(partition)' is not a UTC time (2026-11-21 or 2026-11-21T10:00Z)") }
                guard let end = dag.spec.schedule?.next(after: start) else { throw CLIFailure(message: "DAG \(dag.name) has no schedule, so --partition has no interval") }
                part = Partition(start: start, end: end)
            }
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let replication = following(l)
            defer { replication.cancel() }
            let engine = pipelines.engine(l, registry, dispatch: dispatch)
            let runID = self.runId
            let chosen = part
            let outcome = try await alerting.around(l, dags: [dag.spec]) {
                try await withInterruption { try await engine.run(dag, params: params, partition: chosen, runID: runID) }
            }
            try report(outcome, json: output.json)
            if outcome.status != .succeeded { throw ExitCode(outcome.status.exitCode) }
        }
    }
}

struct Resubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restart a failed, cancelled or interrupted run from its failure point; no manual clean-up.",
        discussion: """
            Succeeded tasks keep their recorded outputs; the others run again with the next attempt number. \
            With --quarantine ID (from `clew impact --quarantine`): every run holding suspect chunks or values runs \
            again exactly the tasks that made them (and what follows them), oldest run first.
            """)

    @Argument(help: "The DAG name (or pipeline file).")
    var dag: String?

    @Argument(help: "The run id.")
    var runId: String?

    @Option(name: .long, help: "Rebuild what this quarantine marked suspect.")
    var quarantine: String?

    @OptionGroup var params: ParamOptions
    @OptionGroup var dispatch: DispatchOptions
    @OptionGroup var alerting: AlertingOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if quarantine == nil, dag == nil || runId == nil { throw ValidationError("give DAG and RUN, or --quarantine ID") }
        if quarantine != nil, dag != nil { throw ValidationError("--quarantine rebuilds every run it lists; give no DAG or RUN with it") }
    }

    func run() async throws {
        try await reportingErrors {
            let (registry, _) = try pipelines.registry(strict: false)
            let l = try await ledger.open()
            defer { l.close() }
            let replication = following(l)
            defer { replication.cancel() }
            let engine = pipelines.engine(l, registry, dispatch: dispatch)
            let params = try self.params.dictionary()
            if let quarantine {
                let plan = try Self.quarantinePlan(quarantine, l)
                var failed = false
                for (dag, run, tasks) in plan {
                    let outcome = try await withInterruption { try await engine.resubmit(dag: dag, run: run, params: params, rerun: Set(tasks)) }
                    if !output.json { Terminal.line("\(dag)/\(run): ran again \(tasks.joined(separator: ", ")) and what follows them") }
                    try report(outcome, json: output.json)
                    if outcome.status != .succeeded { failed = true }
                }
                if failed { throw ExitCode(3) }
                return
            }
            let name = try pipelines.resolve(dag!, in: registry).name
            let id = runId!
            let outcome = try await alerting.around(l, dags: registry.dag(named: name).map { [$0.spec] } ?? []) {
                try await withInterruption { try await engine.resubmit(dag: name, run: id, params: params) }
            }
            try report(outcome, json: output.json)
            if outcome.status != .succeeded { throw ExitCode(outcome.status.exitCode) }
        }
    }

    /// The runs (DAG, run, tasks) a quarantine says to rebuild, oldest run first.
    static func quarantinePlan(_ id: String, _ ledger: Ledger) throws -> [(String, String, [String])] {
        guard let event = try ledger.events(inStream: "quarantine/\(id)", limit: 1).first,
            let quarantine = try? JSONDecoder().decode(LineageQuarantined.self, from: event.payload)
        else {
            throw CLIFailure(message: "no quarantine \(id) in the ledger (`clew log --type lineage.quarantined` lists them)")
        }
        let rebuild = quarantine.rebuild ?? [:]
        var plan: [(UInt64, String, String, [String])] = []
        for (key, tasks) in rebuild {
            guard let slash = key.firstIndex(of: "/") else { continue }
            let dag = String(key[..<slash]), run = String(key[key.index(after: slash)...])
            let first = try ledger.seqs(inStream: StreamID.run(dag: dag, run: run), limit: 1).first ?? .max
            plan.append((first, dag, run, tasks))
        }
        if plan.isEmpty { throw CLIFailure(message: "quarantine \(id) lists nothing to rebuild") }
        return plan.sorted { $0.0 < $1.0 }.map { ($0.1, $0.2, $0.3) }
    }
}
