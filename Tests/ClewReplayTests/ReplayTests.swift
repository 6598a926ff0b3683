import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewTestSupport
import Foundation
import Testing
@testable import ClewReplay

/// Test DAGs with one fault each.
enum FaultDAGs {
    static let clock = DAG("clocky") {
        Op("source") { _ in [3, 1, 2] }
        Op("stamp", after: "source") { ctx in
            let xs = try ctx.input("source", as: [Int].self)
            try ctx.record("count", xs.count)
            try ctx.record("recorded_now", try ctx.now().timeIntervalSince1970)  // through the context: fine
            try ctx.record("loaded_at", Date().timeIntervalSince1970)  // the wall clock, read directly: the fault
            return xs.sorted()
        }
    }

    static func body(factor: Int) -> DAG {
        DAG("body") {
            // Never 0: a changed factor must change every scaled value (0 × 2 == 0 × 3 failed one run in 100).
            Op("source") { ctx in (0..<5).map { _ in ctx.random(in: 1..<100) } }
            Op("scale", after: "source") { ctx in
                let xs = try ctx.input("source", as: [Int].self)
                let scaled = xs.map { $0 * factor }
                try ctx.record("first", scaled.first ?? 0)
                return scaled
            }
            Op("total", after: "scale") { ctx in try ctx.input("scale", as: [Int].self).reduce(0, +) }
        }
    }

    static let files = DAG("files", datasets: [DatasetSpec(name: "raw", partitioning: .key)]) {
        Op("write") { ctx in
            try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
            try "a,b,c\n1,2,3\n".write(to: ctx.outputDirectory.appendingPathComponent("raw"), atomically: true, encoding: .utf8)
            return 2
        }.produces("raw", key: "{run}")
        Op("read", after: "write") { ctx in
            let text = try String(contentsOf: ctx.chunk("raw")!.url!, encoding: .utf8)
            try ctx.record("lines", text.split(separator: "\n").count)
            return text.count
        }.consumes("raw", key: "{run}")
        Op("fetch", after: "read") { ctx in
            try await ctx.sideEffect("GET https://example.invalid/rates") { ["eur": 1.08] }
        }
    }

    static let parent = DAG("parent") {
        Op("a") { _ in 1 }
        TriggerDAG("kick", after: "a", dag: "files")
    }
}

@Suite struct ReplayTests {
    @Test func everyDemoRunReplaysIdentically() async throws {
        try await withEngine(DemoDAGs.all) { engine, ledger, _ in
            let start = PartitionKey.parse("2026-11-01")!
            var outcomes = try await Scheduler(engine: engine).backfill(DemoDAGs.sensorRollup, from: start, to: start + 86_400_000_000)
            outcomes.append(try await engine.run(DemoDAGs.csvOrders, params: ["rows": "40"]))
            outcomes.append(try await engine.run(DemoDAGs.csvOrders, params: ["rows": "60"]))  // the store now has rows from before
            let shards = try await engine.run(DemoDAGs.shardETL)
            #expect(shards.status == .failed)
            outcomes.append(try await engine.resubmit(dag: "shard_etl", run: shards.runID))
            for batch in [4, 7] { outcomes.append(try await engine.run(DemoDAGs.numericFlow, params: ["batch": String(batch)])) }
            for o in outcomes {
                let report = try await replay(ledger, o, with: DemoDAGs.all)
                #expect(report.verdict == "identical", "\(o.dag)/\(o.runID): \(String(describing: report.divergence))")
                #expect(report.notices.isEmpty, "\(report.notices)")
                #expect(report.stepsCompared == (try comparableEvents(ledger, RunKey(dag: o.dag, run: o.runID))), "\(o.dag)")
            }
            // The resubmitted shard run: both executions' attempts, the failed first ones included.
            let shardReport = try await replay(ledger, outcomes[3], with: DemoDAGs.all)
            #expect(shardReport.attemptsReplayed > 201)
        }
    }

    @Test func wallClockReadIsNondeterminism() async throws {
        try await withEngine([FaultDAGs.clock]) { engine, ledger, _ in
            let run = try await engine.run(FaultDAGs.clock)
            let report = try await replay(ledger, run, with: [FaultDAGs.clock])
            let d = try #require(report.divergence)
            #expect(report.verdict == "diverged")
            #expect(d.task == "stamp")
            #expect(d.step == 4)
            #expect(d.variable == "loaded_at")
            #expect(d.event == EventType.variableRecorded)
            #expect(d.cause.kind == "nondeterminism")
            #expect(d.expected != d.actual)
            // steps before it were fed back and matched: the time read through the context included
            #expect(report.stepsCompared == 3 + 1 + 1 + 4)  // source (started, output, outcome); stamp: started, consumed, steps 1-4
        }
    }

    @Test func changedBodyIsCodeChangedOrEnvironment() async throws {
        try await withEngine([FaultDAGs.body(factor: 2)]) { engine, ledger, _ in
            let run = try await engine.run(FaultDAGs.body(factor: 2))
            #expect(try await replay(ledger, run, with: [FaultDAGs.body(factor: 2)]).isIdentical)
            // Same definition, other code: a different build recorded it.
            let other = RunEnvironment(buildID: "0123456789abcdef", os: RunEnvironment.current.os, arch: RunEnvironment.current.arch)
            let report = try await replay(ledger, run, with: [FaultDAGs.body(factor: 3)], environment: other)
            let d = try #require(report.divergence)
            #expect(d.task == "scale" && d.variable == "first" && d.step == 1)
            #expect(d.cause.kind == "code_changed")
            #expect(d.cause.evidence["current_build"] == "0123456789abcdef")
            // Same build, repeatable, different result: something outside the declared inputs changed.
            let same = try await replay(ledger, run, with: [FaultDAGs.body(factor: 3)])
            #expect(same.divergence?.cause.kind == "environment")
            // The structured diff names the path inside the value.
            var options = ReplayOptions()
            options.from = "total"
            let fromTotal = try await replay(ledger, run, with: [FaultDAGs.body(factor: 3)], options: options)
            #expect(fromTotal.isIdentical)  // upstream outputs came from the record
            #expect(fromTotal.fromRecord == ["scale", "source"])
            #expect(fromTotal.attemptsReplayed == 1)
        }
    }

    @Test func changedInputFileIsInputChanged() async throws {
        try await withEngine([FaultDAGs.files, FaultDAGs.parent]) { engine, ledger, _ in
            let run = try await engine.run(FaultDAGs.files)
            #expect(run.status == .succeeded)
            #expect(try await replay(ledger, run, with: [FaultDAGs.files]).isIdentical)
            let key = RunKey(dag: "files", run: run.runID)
            let recording = try RecordedRun.load(key, from: ledger)
            let chunk = try #require(recording.attempts.first { $0.task == "read" }?.chunks.first)
            let path = try #require(chunk.location)
            try "a,b,c\n1,2,99\n".write(toFile: path, atomically: true, encoding: .utf8)
            let report = try await replay(ledger, run, with: [FaultDAGs.files])
            let d = try #require(report.divergence)
            #expect(d.task == "read" && d.event == EventType.valueConsumed && d.variable == "raw/\(run.runID)")
            #expect(d.cause.kind == "input_changed")
            #expect(d.cause.evidence["recorded_digest"] == chunk.digest)
            #expect(d.cause.evidence["current_digest"] == ContentDigest.sha256(file: URL(fileURLWithPath: path)))
            try FileManager.default.removeItem(atPath: path)
            #expect(try await replay(ledger, run, with: [FaultDAGs.files]).divergence?.cause.evidence["current_digest"] == "missing")

            // A trigger task replays without starting a child run.
            let parent = try await engine.run(FaultDAGs.parent)
            let runsBefore = try ledger.streams(prefix: "run/files/").count
            #expect(try await replay(ledger, parent, with: [FaultDAGs.parent, FaultDAGs.files]).isIdentical)
            #expect(try ledger.streams(prefix: "run/files/").count == runsBefore)
        }
    }

    @Test func commandTasksRerunAndChangedScriptIsDAGChanged() async throws {
        try await withEngine([]) { engine, ledger, dir in
            let pipelines = try copyFixturePipelines(to: dir)
            let dag = try PipelineFile.load(pipelines.appendingPathComponent("orders.yaml"))
            let run = try await engine.run(dag, partition: Partition(start: PartitionKey.parse("2026-11-02")!, end: PartitionKey.parse("2026-11-03")!))
            #expect(run.status == .succeeded)
            let report = try await replay(ledger, run, with: [dag])
            #expect(report.isIdentical, "\(String(describing: report.divergence))")
            #expect(report.stepsCompared == (try comparableEvents(ledger, RunKey(dag: dag.name, run: run.runID))) + 3)  // + files of 3 commands
            // Without the DAG in the registry, its recorded definition (commands) is replayed.
            let recorded = try await replay(ledger, run, with: [])
            #expect(recorded.isIdentical)
            #expect(recorded.notices.contains { $0.contains("recorded definition") })

            // The extract script changes: the definition hash (which covers the scripts) changes.
            let script = pipelines.appendingPathComponent("scripts/extract.sh")
            let text = try String(contentsOf: script, encoding: .utf8).replacingOccurrences(of: "13 % 97", with: "17 % 97")
            try installExecutable(text, at: script)
            let changed = try PipelineFile.load(pipelines.appendingPathComponent("orders.yaml"))
            #expect(changed.version != dag.version)
            let diverged = try await replay(ledger, run, with: [changed])
            let d = try #require(diverged.divergence)
            #expect(d.task == "extract" && d.variable == "files")
            #expect(d.cause.kind == "dag_changed")
            #expect(d.cause.evidence["recorded_version"] == dag.version)
            #expect(d.diff.first?.path == "$[\"orders.csv\"]")
        }
    }

    @Test func counterfactualIsABranchRunAndLeavesTheOriginal() async throws {
        try await withEngine(DemoDAGs.all) { engine, ledger, _ in
            let blocked = try await engine.run(DemoDAGs.numericFlow, params: ["batch": "7"])  // blocked: batches 1-6 missing
            #expect(blocked.tasks["convert_units"] == .blocked)
            let run = try await engine.run(DemoDAGs.numericFlow, params: ["batch": "1"])
            let key = RunKey(dag: "numeric_flow", run: run.runID)
            let before = try ledger.events(inStream: key.stream)
            let recording = try RecordedRun.load(key, from: ledger)
            let replayer = Replayer(ledger: ledger, registry: DAGRegistry(DemoDAGs.all))
            var o = Overrides()
            o.params["threshold_kg"] = "100"
            let report = try await replayer.branch(recording, overrides: o)
            #expect(report.branch == "numeric_flow/\(run.runID).branch-1")
            #expect(report.branchStatus == "succeeded")
            let changed = Set(report.values.filter(\.changed).map { "\($0.task).\($0.name)" })
            #expect(changed.contains("route.output") && changed.contains("flag_heavy.state") && changed.contains("publish.state"))
            #expect(!changed.contains("convert_units.kg"), "\(report.values.filter { $0.task == "convert_units" })")  // same data, same code: same values
            #expect(try ledger.events(inStream: key.stream) == before)  // the original is untouched
            let branch = try RecordedRun.load(RunKey(dag: "numeric_flow", run: "\(run.runID).branch-1"), from: ledger)
            #expect(branch.branchOf == run.runID)
            #expect(branch.trigger == "branch")
            // No chunk was published by the branch.
            for e in try ledger.events(inStream: StreamID.dataset("weights.kg")) {
                #expect(!String(decoding: e.payload, as: UTF8.self).contains(".branch-1"))
            }
            // A branch run is itself replayable, identically.
            let again = try await Replayer(ledger: ledger, registry: DAGRegistry(DemoDAGs.all)).replay(branch)
            #expect(again.isIdentical, "\(String(describing: again.divergence))")
            // An output override: the task does not run; its children get the value.
            var given = Overrides()
            given.outputs["convert_units"] = RecordedValue(text: "[1000, 2000]")
            let second = try await replayer.branch(recording, overrides: given)
            #expect(second.values.contains { $0.task == "aggregate" && $0.name == "total_kg" && $0.branch == "3000" })
            // What the five questions said in the original holds in the branch: a blocked task stays blocked.
            let blockedBranch = try await replayer.branch(try RecordedRun.load(RunKey(dag: "numeric_flow", run: blocked.runID), from: ledger), overrides: o)
            #expect(blockedBranch.values.contains { $0.task == "convert_units" && $0.name == "state" && $0.branch == "blocked" && !$0.changed })
        }
    }

    @Test func badInputIsNamed() async throws {
        try await withEngine(DemoDAGs.all) { engine, ledger, _ in
            #expect(throws: ReplayError.self) { try RecordedRun.resolve("nope", in: ledger) }
            let run = try await engine.run(DemoDAGs.numericFlow, params: ["batch": "2"])
            var options = ReplayOptions()
            options.from = "no_such_task"
            await #expect(throws: ReplayError.self) { try await replay(ledger, run, with: DemoDAGs.all, options: options) }
            await #expect(throws: ReplayError.self) { try await replay(ledger, run, with: []) }  // Swift DAG unknown here
            let secret = DAG("secretive", params: ["api_token": "s3cret"]) { Op("use") { ctx in ctx.param("api_token")?.count ?? 0 } }
            let s = try await engine.run(secret)
            do {
                _ = try await replay(ledger, s, with: [secret])
                Issue.record("a redacted param must be given again")
            } catch let e as ReplayError {
                #expect(e.description.contains("api_token"))
            }
            var given = ReplayOptions()
            given.params = ["api_token": "s3cret"]
            #expect(try await replay(ledger, s, with: [secret], options: given).isIdentical)
            #expect(throws: ReplayError.self) { try Overrides(parsing: ["novalue"], dag: DemoDAGs.numericFlow.spec) }
            #expect(throws: ReplayError.self) { try Overrides(parsing: ["ghost.output=1"], dag: DemoDAGs.numericFlow.spec) }
        }
    }
}
