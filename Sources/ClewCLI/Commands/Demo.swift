import ArgumentParser
import ClewEngine
import ClewLedger
import ClewProjections
import ClewReplay
import ClewModel
import Foundation

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the four demo pipelines into a ledger, sign a checkpoint, verify it and say what to look at next.",
        discussion: """
            (a) sensor_rollup: per-second readings → minute → hour → day → per-category averages, backfilled \
            for --days days; (b) csv_orders: a CSV loaded with run params, validated, converted to JSON and \
            upserted into a local store; (c) shard_etl: 100 shards extracted and loaded in parallel, ~1% \
            failing transiently, recovered by resubmitting the run; (d) numeric_flow: --batches numeric \
            batches with branching, where batch 7 silently goes wrong. Creates the ledger if needed; running \
            it again adds new runs. Signs a checkpoint with --key (created if missing, beside the ledger).
            """)

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "Days of sensor_rollup to backfill (from 2026-11-01).")
    var days = 3

    @Option(name: .long, help: "numeric_flow batches to run (batch 7 is the wrong one).")
    var batches = 10

    @Option(name: .long, help: "Checkpoint signing key (default: <ledger>.key beside the ledger directory).")
    var key: String?

    func validate() throws {
        if days < 1 || days > 366 { throw ValidationError("--days must be between 1 and 366") }
        if batches < 1 || batches > 1000 { throw ValidationError("--batches must be between 1 and 1000") }
    }

    struct Summary: Encodable {
        var ledger: String
        var runs: [String: [String: String]]
        var events: UInt64
        var streams: Int
        var rootHash: String
        var checkpointSize: UInt64
        var verified: Bool
        var seconds: Double

        enum CodingKeys: String, CodingKey {
            case ledger, runs, events, streams, rootHash = "root_hash", checkpointSize = "checkpoint_size", verified, seconds
        }
    }

    func run() async throws {
        try await reportingErrors {
            let started = Date()
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let engine = Engine(ledger: l, registry: DAGRegistry(DemoDAGs.all))
            let json = output.json
            var runs: [String: [String: String]] = [:]
            func note(_ o: RunOutcome, _ label: String? = nil) {
                runs[o.dag, default: [:]][o.runID] = o.status.rawValue
                if !json {
                    let failed = o.failedTasks.isEmpty ? "" : " — failed: \(o.failedTasks.prefix(4).joined(separator: ", "))\(o.failedTasks.count > 4 ? " …" : "")"
                    print("  \(label ?? o.dag) \(o.runID): \(o.status.rawValue)\(failed)")
                }
            }
            let days = self.days
            let batches = self.batches
            let sensorOutcomes = try await withInterruption {
                let scheduler = Scheduler(engine: engine)
                let start = PartitionKey.parse("2026-11-01")!
                return try await scheduler.backfill(DemoDAGs.sensorRollup, from: start, to: start + Int64(days) * 86_400_000_000)
            }
            if !json { print("(a) sensor_rollup, backfilled \(days) day(s):") }
            sensorOutcomes.forEach { note($0) }

            if !json { print("(b) csv_orders:") }
            note(try await withInterruption { try await engine.run(DemoDAGs.csvOrders, params: ["rows": "250", "currency": "EUR"]) })

            if !json { print("(c) shard_etl, 100 shards:") }
            let shards = try await withInterruption { try await engine.run(DemoDAGs.shardETL) }
            let shardRun = shards.runID
            note(shards)
            if shards.status == .failed {
                let again = try await withInterruption { try await engine.resubmit(dag: "shard_etl", run: shards.runID) }
                note(again, "shard_etl resubmitted")
            }

            if !json { print("(d) numeric_flow, \(batches) batches:") }
            var heavy: [String] = []
            var published: [String] = []
            var batch7: String?
            for batch in 1...batches {
                let o = try await withInterruption { try await engine.run(DemoDAGs.numericFlow, params: ["batch": String(batch)]) }
                runs[o.dag, default: [:]][o.runID] = o.status.rawValue
                if o.tasks["flag_heavy"] == .succeeded { heavy.append(String(batch)) }
                if let total = try? o.outputs["publish"]?.decode(Double.self) { published.append("\(batch): \(Int(total)) kg") }
                if batch == 7 { batch7 = o.runID }
            }
            if !json {
                print("  \(batches) runs, all succeeded; routed for review as heavy: batches \(heavy.joined(separator: ", "))")
                print("  published totals: \(published.joined(separator: ", ")) — one of them is silently wrong")
            }

            let keyURL = URL(fileURLWithPath: key ?? (l.directory.standardizedFileURL.path + ".key"))
            if !FileManager.default.fileExists(atPath: keyURL.path) {
                try CheckpointSigningKey.generate().write(to: keyURL)
                if !json { print("created checkpoint signing key \(keyURL.path) (and .pub)") }
            }
            let signingKey = try CheckpointSigningKey(contentsOf: keyURL)
            let checkpoint = try await l.checkpoint(signedWith: signingKey)
            let report = try l.verify(trusting: signingKey.publicKey)
            let stats = try l.stats()
            // Fold the new events into the views (built on first use), so `clew runs` and friends answer at once.
            var viewOptions = Views.Options()
            viewOptions.notice = { _ in }
            let views = try Views.open(ledger: l, options: viewOptions)
            let datasets = try views.datasets()
            views.close()
            // Replay two runs: the silently wrong batch and the resubmitted shard run (both executions).
            var replays: [String] = []
            for (dag, run) in [("numeric_flow", batch7), ("shard_etl", Optional(shardRun))] {
                guard let run else { continue }
                let recording = try RecordedRun.load(RunKey(dag: dag, run: run), from: l)
                let r = try await Replayer(ledger: l, registry: engine.registry).replay(recording)
                replays.append("\(dag) \(r.verdict) (\(r.stepsCompared) steps)")
            }
            let summary = Summary(
                ledger: l.location, runs: runs, events: stats.events, streams: stats.streams, rootHash: stats.rootHash,
                checkpointSize: checkpoint.treeSize, verified: report.isValid, seconds: Date().timeIntervalSince(started))
            if json {
                print(try JSONOutput.text(summary))
            } else {
                print("")
                print("ledger \(ledger.ledger): \(stats.events) events in \(stats.streams) streams; signed checkpoint at \(checkpoint.treeSize), key \(checkpoint.keyID)")
                print(report.isValid
                    ? "verify: ok (\(report.events) events, \(report.merkleNodesChecked) Merkle nodes, \(report.checkpointsChecked) checkpoints)"
                    : "verify: FAILED at seq \(report.firstBadSeq.map(String.init) ?? "?")")
                print("replay: \(replays.joined(separator: ", "))")
                print("views: runs, chunks (\(datasets.count) datasets, \(datasets.reduce(0) { $0 + $1.chunks }) chunks), lineage, values folded to seq \(stats.events)")
                let l = ledger.ledger == "./clew.ledger" ? "" : " --ledger \(ledger.ledger)"
                print("")
                print("look next at:")
                let tips: [(String, String)] = [
                    ("clew dags", "the DAGs this executable ships, their versions and schedules"),
                    ("clew runs\(l)", "every run from the runs view: state, duration, attempts, DAG version"),
                    ("clew run show shard_etl/\(shardRun)\(l)", "one run's tasks: the retried shards show two attempts"),
                    ("clew chunks\(l)", "chunk status per dataset; `clew chunks sensor.seconds` for one"),
                    ("clew lineage chunk:sensor.daily/2026-11-01T00:00:00Z --up\(l)", "where a daily rollup came from"),
                    ("clew views verify\(l)", "prove the views equal a fresh fold of the log"),
                    ("clew log\(l) --type task.failed", "what failed: shard_etl's transient errors"),
                    ("clew log\(l) --type run.resubmitted", "the resubmit that recovered them, reusing 196+ succeeded tasks"),
                    ("clew log\(l) --type question.answered --limit 3", "the five questions, with evidence, before each chunk was read"),
                    ("clew log\(l) --stream dataset/sensor.seconds", "a chunk's life cycle: producing, ready, consuming, consumed"),
                    ("clew inspect numeric_flow/\(batch7 ?? "<run>") --task convert_units\(l)",
                     "batch 7's recorded variables: factor 0.0001 where every other batch has 0.001"),
                    ("clew debug numeric_flow/\(batch7 ?? "<run>")\(l)",
                     "step through it: b factor < 0.001, c, vars, nt, where input.convert_units, p, q"),
                    ("clew replay numeric_flow/\(batch7 ?? "<run>")\(l)", "re-execute it and compare every step with the record"),
                    ("clew replay numeric_flow/\(batch7 ?? "<run>") --set threshold_kg=100\(l)",
                     "a counterfactual branch run on the same data, diffed value by value"),
                    ("clew culprit numeric_flow/\(batch7 ?? "<run>")\(l)",
                     "the earliest anomalous ancestor: convert_units' factor, outside the range of earlier runs"),
                    ("clew why shards.extracted/\(shardRun)/37\(l)",
                     "shard 37's five questions, each proved by events, and the failure resubmit recovered"),
                    ("clew search tasks --var \"factor<0.001\"\(l)", "tasks by variable, output or input value, across all runs"),
                    ("clew trace numeric_flow/\(batch7 ?? "<run>") --format mermaid\(l)", "its lineage as a diagram (text, json, dot)"),
                    ("clew run csv_orders --param rows=5000\(l)", "run a demo yourself; Ctrl-C cancels it cleanly"),
                    ("clew verify\(l)", "re-check every event and payload digest, the stream index and the Merkle tree"),
                ]
                for (command, what) in tips { print("  \(command)\n      \(what)") }
            }
            if !report.isValid { throw ExitCode(2) }
        }
    }
}
