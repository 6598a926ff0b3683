import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Synchronization
import Testing
@testable import ClewEngine

@Suite("Executor")
struct ExecutorTests {
    @Test("outputs flow along edges: fan-out, several parents, records and values in the ledger")
    func dataFlow() async throws {
        let dag = DAG("flow") {
            Op("numbers") { _ in [1.0, 2.0, 3.0, 4.0] }
            Op("double", after: "numbers") { ctx in try ctx.input("numbers", as: [Double].self).map { $0 * 2 } }
            Op("square", after: "numbers") { ctx in try ctx.input("numbers", as: [Double].self).map { $0 * $0 } }
            Op("sum", after: "double", "square") { ctx in
                let total = try ctx.input("double", as: [Double].self).reduce(0, +) + ctx.input("square", as: [Double].self).reduce(0, +)
                try ctx.record("total", total)
                return total
            }
        }
        try await withEngine([dag]) { engine, ledger, _ in
            let outcome = try await engine.run(dag)
            #expect(outcome.status == .succeeded)
            #expect(try outcome.outputs["sum"]?.decode(Double.self) == 50)
            let list = try runEvents(ledger, outcome)
            #expect(list.first?.type == EventType.runQueued)
            #expect(list.last?.type == EventType.runSucceeded)
            #expect(events(list, EventType.taskSucceeded).count == 4)
            let consumed = events(list, EventType.valueConsumed, task: "sum").compactMap { $0["from_task"] as? String }
            #expect(consumed.sorted() == ["double", "square"])
            let variable = try #require(events(list, EventType.variableRecorded, task: "sum").first)
            #expect(variable["name"] as? String == "total")
            #expect(variable["step"] as? Int == 1)
            #expect((variable["value"] as? NSNumber)?.doubleValue == 50)
            // The registered definition names the exact version the run executed.
            let registered = try ledger.events(inStream: StreamID.dag("flow"))
            #expect(registered.count == 1)
            #expect(String(decoding: registered[0].payload, as: UTF8.self).contains(dag.version))
            // Running again registers nothing new.
            _ = try await engine.run(dag)
            #expect(try ledger.events(inStream: StreamID.dag("flow")).count == 1)
        }
    }

    @Test("branches skip the children they do not choose; a none_failed join still runs")
    func branching() async throws {
        let dag = DAG("branchy", params: ["mode": "fast"]) {
            Op("start") { _ in 1 }
            Branch("route", after: "start") { ctx in [ctx.param("mode") == "fast" ? "fast" : "slow"] }
            Op("fast", after: "route") { _ in "fast" }
            Op("slow", after: "route") { _ in "slow" }
            Op("after_slow", after: "slow") { _ in "x" }
            Op("join", after: "fast", "slow") { _ in "joined" }.rule(.noneFailed)
        }
        try await withEngine([dag]) { engine, ledger, _ in
            let outcome = try await engine.run(dag)
            #expect(outcome.status == .succeeded)
            #expect(outcome.tasks["fast"] == .succeeded)
            #expect(outcome.tasks["slow"] == .skipped)
            #expect(outcome.tasks["after_slow"] == .skipped)
            #expect(outcome.tasks["join"] == .succeeded)
            let list = try runEvents(ledger, outcome)
            #expect(events(list, EventType.taskSucceeded, task: "route").first?["branch"] as? [String] == ["fast"])
            #expect((events(list, EventType.taskSkipped, task: "slow").first?["reason"] as? String)?.contains("branch chose fast") == true)
            let other = try await engine.run(dag, params: ["mode": "slow"])
            #expect(other.tasks["fast"] == .skipped && other.tasks["after_slow"] == .succeeded)
        }
    }

    @Test("retries with backoff, then failure propagates as upstream_failed")
    func retriesAndFailure() async throws {
        let flaky = Counter()
        let dag = DAG("retry") {
            Op("flaky") { _ in
                if flaky.next() < 3 { throw EngineError("transient") }
                return "ok"
            }.retries(3, delay: .milliseconds(20))
            Op("broken", after: "flaky") { _ -> Int in throw EngineError("bad data") }.retries(1, delay: .milliseconds(10))
            Op("downstream", after: "broken") { _ in 1 }
            Op("further", after: "downstream") { _ in 1 }
            Op("cleanup", after: "broken") { _ in 1 }.rule(.allDone)
        }
        try await withEngine([dag]) { engine, ledger, _ in
            let outcome = try await engine.run(dag)
            #expect(outcome.status == .failed)
            #expect(outcome.tasks["flaky"] == .succeeded)
            #expect(outcome.tasks["broken"] == .failed)
            #expect(outcome.tasks["downstream"] == .upstreamFailed && outcome.tasks["further"] == .upstreamFailed)
            #expect(outcome.tasks["cleanup"] == .succeeded)
            let list = try runEvents(ledger, outcome)
            let retrying = events(list, EventType.taskRetrying, task: "flaky")
            #expect(retrying.map { $0["backoff_ms"] as? Int } == [20, 40])
            #expect(events(list, EventType.taskSucceeded, task: "flaky").first?["attempt"] as? Int == 3)
            #expect(events(list, EventType.taskFailed, task: "broken").count == 2)
            #expect((events(list, EventType.runFailed).first?["failed_tasks"] as? [String])?.contains("broken") == true)
        }
    }

    @Test("a timeout stops a Swift task that ignores cancellation and kills a command's whole process group")
    func timeouts() async throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-pids-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pidFile = dir.appendingPathComponent("pids")
        let dag = DAG("slow") {
            Op("stubborn") { _ in
                // Ignores cancellation (a detached task is not cancelled with its waiter) without holding a thread.
                await Task.detached { try? await Task.sleep(for: .seconds(300)) }.value
                return 1
            }.timeout(.milliseconds(200))
            Command("sleeper", run: ["/bin/sh", "-c", "sleep 300 & echo $! > \(pidFile.path); echo $$ >> \(pidFile.path); wait"])
                .timeout(.milliseconds(500))
        }
        try await withEngine([dag]) { engine, ledger, _ in
            // No wall-clock bound (load on 2 cores stretches any): uncapped, "stubborn" would succeed and
            // "sleeper" exit 0 after 300 s, so the failures below only hold if the timeouts fired.
            let outcome = try await engine.run(dag)
            #expect(outcome.tasks["stubborn"] == .failed && outcome.tasks["sleeper"] == .failed)
            let list = try runEvents(ledger, outcome)
            #expect(events(list, EventType.taskFailed, task: "stubborn").first?["timed_out"] as? Bool == true)
            #expect((events(list, EventType.taskFailed, task: "sleeper").first?["error"] as? String)?.contains("timed out after 500 ms") == true)
            let pids = try String(contentsOf: pidFile, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
            #expect(pids.count == 2)
            for pid in pids { #expect(!isRunning(pid), "process \(pid) survived the timeout") }
        }
    }

    @Test("secrets never reach the ledger: variables, params, outputs and nested keys are redacted")
    func redaction() async throws {
        struct Login: Codable, Sendable { var user: String; var password: String }
        let dag = DAG("secrets", params: ["db_password": "hunter2-param"]) {
            Op("connect") { ctx in
                try ctx.record("api_token", "tok-hunter2")
                try ctx.record("login", Login(user: "ada", password: "hunter2-nested"))
                #expect(ctx.param("db_password") == "hunter2-param")  // the task still gets it
                return ["authorization": "Bearer hunter2-output", "rows": "3"]
            }
        }
        try await withEngine([dag]) { engine, ledger, _ in
            let outcome = try await engine.run(dag)
            #expect(outcome.status == .succeeded)
            var all = ""
            try ledger.scan { e in all += String(decoding: e.payload, as: UTF8.self) + "\n"; return true }
            #expect(!all.contains("hunter2"))
            #expect(all.contains("[REDACTED]"))
            #expect(all.contains("ada"))
        }
    }

    @Test("random is seeded per run, task and attempt; now and side effects are recorded steps")
    func determinism() async throws {
        let dag = DAG("dice") {
            Op("roll") { ctx in
                _ = try ctx.now()
                let rate = try await ctx.sideEffect("exchange_rate") { 1.25 }
                return [ctx.random(in: 0..<1000), ctx.random(in: 0..<1000), Int(rate * 100)]
            }
        }
        try await withEngine([dag]) { engine, ledger, _ in
            let a = try await engine.run(dag, runID: "a")
            let b = try await engine.run(dag, runID: "b")
            let again = TaskContext(
                dag: "dice", runID: "a", taskID: "roll", attempt: 1, params: [:], partition: nil, interval: nil,
                outputPath: "/tmp", seed: RunExecution(engine: engine, dag: dag, runID: "a", params: [:], partition: nil).seed(task: "roll", attempt: 1),
                inputs: [:], consumedChunks: [], sink: LiveSink(execution: RunExecution(engine: engine, dag: dag, runID: "x", params: [:], partition: nil), task: "roll", attempt: 1, feed: nil))
            let first = try a.outputs["roll"]!.decode([Int].self)
            #expect([again.random(in: 0..<1000), again.random(in: 0..<1000)] == Array(first.prefix(2)))
            #expect(try b.outputs["roll"]!.decode([Int].self) != first)
            let steps = events(try runEvents(ledger, a), EventType.variableRecorded).map { "\($0["step"]!) \($0["kind"]!) \($0["name"]!)" }
            #expect(steps == ["1 now now", "2 side_effect exchange_rate"])
            #expect(events(try runEvents(ledger, a), EventType.taskStarted).first?["seed"] as? String != nil)
        }
    }

    @Test("a run is cancelled cleanly: running commands are killed, run.cancelled lists what did not run")
    func cancellation() async throws {
        let dag = DAG("long") {
            Command("wait", run: ["/bin/sleep", "30"])
            Op("after", after: "wait") { _ in 1 }
        }
        try await withEngine([dag]) { engine, ledger, _ in
            let running = Task { try await engine.run(dag, runID: "c1") }
            // Cancel once the command is running (its task.started is durable).
            while try !ledger.events(inStream: StreamID.run(dag: "long", run: "c1")).contains(where: { $0.type == EventType.taskStarted }) {
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .milliseconds(200))
            running.cancel()
            let outcome = try await running.value
            #expect(outcome.status == .cancelled)
            let list = try runEvents(ledger, outcome)
            #expect(list.last?.type == EventType.runCancelled)
            #expect(events(list, EventType.taskFailed, task: "wait").first?["cancelled"] as? Bool == true, "\(events(list, EventType.taskFailed))")
            #expect(events(list, EventType.runCancelled).first?["not_run"] as? [String] == ["after"])
        }
    }

    @Test("resubmit restarts a failed run from its failure point, reusing recorded outputs, no clean-up")
    func resubmit() async throws {
        let calls = Counter()
        let broken = Box(true)
        let dag = DAG("restart") {
            Op("extract") { _ in
                _ = calls.next()
                return [3, 4]
            }.produces("raw", key: "{run}")
            Op("transform", after: "extract") { ctx in
                if broken.value.withLock({ $0 }) { throw EngineError("schema drift") }
                return try ctx.input("extract", as: [Int].self).map { $0 * 10 }
            }.consumes("raw", key: "{run}")
            Op("load", after: "transform") { ctx in try ctx.input("transform", as: [Int].self).reduce(0, +) }
        }
        try await withEngine([dag]) { engine, ledger, _ in
            let first = try await engine.run(dag, runID: "r1")
            #expect(first.status == .failed)
            #expect(first.tasks["load"] == .upstreamFailed)
            broken.value.withLock { $0 = false }
            let second = try await engine.resubmit(dag: "restart", run: "r1")
            #expect(second.status == .succeeded)
            #expect(calls.next() == 2)  // extract ran once; its recorded output was reused
            #expect(try second.outputs["load"]?.decode(Int.self) == 70)
            let list = try runEvents(ledger, second)
            let resubmitted = try #require(events(list, EventType.runResubmitted).first)
            #expect(resubmitted["reused"] as? [String] == ["extract"])
            #expect(events(list, EventType.taskStarted, task: "transform").map { $0["attempt"] as? Int } == [1, 2])
            await #expect(throws: EngineError.self) { try await engine.resubmit(dag: "restart", run: "r1") }
            await #expect(throws: EngineError.self) { try await engine.resubmit(dag: "restart", run: "nope") }
        }
    }

    @Test("a DAG triggers another DAG, conditionally")
    func triggers() async throws {
        let child = DAG("child", params: ["source": "-"]) { Op("work") { ctx in "child got \(ctx.param("source") ?? "-")" } }
        let parent = DAG("parent", params: ["full": "yes"]) {
            Op("prepare") { _ in 1 }
            TriggerDAG("run_child", after: "prepare", dag: "child", params: ["source": "{run}"])
            TriggerDAG("maybe", after: "prepare", dag: "child", when: { ctx in ctx.param("full") == "no" })
        }
        try await withEngine([child, parent]) { engine, ledger, _ in
            let outcome = try await engine.run(parent, runID: "p1")
            #expect(outcome.status == .succeeded)
            #expect(outcome.tasks["maybe"] == .skipped)
            let triggered = try #require(events(try runEvents(ledger, outcome), EventType.dagTriggered).first)
            let childRun = try #require(triggered["child_run"] as? String)
            let childEvents = try ledger.events(inStream: StreamID.run(dag: "child", run: childRun))
            #expect(childEvents.last?.type == EventType.runSucceeded)
            #expect(String(decoding: childEvents[0].payload, as: UTF8.self).contains("dag:parent/p1"))

            // A param the child does not declare (a misspelling) fails the trigger task, naming it.
            let sloppy = DAG("sloppy") { TriggerDAG("go", dag: "child", params: ["sorce": "x"]) }
            let failed = try await engine.run(sloppy, runID: "s1")
            #expect(failed.tasks["go"] == .failed)
            let error = try #require(events(try runEvents(ledger, failed), EventType.taskFailed).first?["error"] as? String)
            #expect(error.contains("params: sorce not declared by DAG 'child' (declared: source)"), "\(error)")
        }
    }


    @Test("bad DAGs are refused with every problem named")
    func validation() throws {
        let cyclic = DAG("cyclic") {
            Op("a", after: "c") { _ in 1 }
            Op("b", after: "a") { _ in 1 }
            Op("c", after: "b") { _ in 1 }
        }
        #expect(throws: DAGValidationError.self) { try cyclic.validate() }
        do { try cyclic.validate() } catch { #expect("\(error)".contains("cycle")) }
        let unknown = DAG("bad name!", schedule: "61 * * * *") { Op("a", after: "ghost") { _ in 1 } }
        do {
            try unknown.validate()
            Issue.record("accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("unknown task 'ghost'"))
            #expect(text.contains("minute"))
            #expect(text.contains("DAG name"))
        }
    }

    @Test("SLAs in the DSL: a slow task and its run miss theirs, recorded once each by the run; a task within its SLA is not; bad alert targets refused")
    func slas() async throws {
        let dag = DAG("sla_flow") {
            Op("slow") { _ in try await Task.sleep(for: .milliseconds(400)) }.sla(.milliseconds(100))
            Op("fast") { _ in 1 }.sla(.seconds(60))
        }.sla(.milliseconds(200)).alerts(email: ["oncall@example.com"], on: [.slaMiss])
        #expect(dag.spec.alerts?.rules == [.slaMiss])
        try await withEngine([dag]) { engine, ledger, _ in
            let outcome = try await engine.run(dag)
            #expect(outcome.status == .succeeded, "an SLA miss does not stop the run")
            let misses = try ledger.events(inStream: outcome.stream).filter { $0.type == EventType.slaMissed }.map {
                try JSONDecoder().decode(SLAMissed.self, from: $0.payload)
            }
            #expect(misses.map(\.scope) == ["task", "dag"], "\(misses)")
            #expect(misses.first?.tasks.map(\.task) == ["slow"] && misses.first?.slaMillis == 100)
            // The tasks not done by the run's deadline: slow surely (fast too, on a machine busy enough).
            #expect(misses.last?.tasks.map(\.task).contains("slow") == true, "\(misses)")
            #expect(misses.allSatisfy { $0.seenBy == "run" })
            // Recorded once: checking again finds nothing new.
            #expect(try await SLA.record(engine, spec: dag.spec, run: outcome.runID, seenBy: "scheduler").isEmpty)
        }
        let bad = DAG("bad_alerts") { Op("t") { _ in 1 }.sla(.zero) }.alerts(webhook: ["ftp://example.com"], email: ["not an address"])
        let error = try #require(throws: DAGValidationError.self) { try bad.validate() }
        for part in ["alert webhook 'ftp://example.com'", "alert e-mail 'not an address'", "task 't': sla must be positive"] {
            #expect(error.description.contains(part), "\(part) in \(error)")
        }
    }
}

