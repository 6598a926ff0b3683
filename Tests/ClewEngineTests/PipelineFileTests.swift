import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Testing
@testable import ClewEngine

@Suite("Pipeline files and command tasks")
struct PipelineFileTests {
    @Test("a YAML pipeline of scripts runs with the engine's environment and line protocol, no Swift written")
    func commandPipeline() async throws {
        try await withEngine { engine, ledger, dir in
            let url = try writePipeline(
                """
                dag: csv_to_json
                params:
                  rows: "3"
                  api_token: t0ps3cret
                datasets:
                  orders: {partition: key}
                tasks:
                  extract:
                    run: ./extract.sh
                    produces: [{dataset: orders, key: "{run}", path: orders.csv}]
                  check:
                    after: extract
                    consumes: [{dataset: orders, key: "{run}"}]
                    run: ["/bin/sh", "check.sh"]
                    branch: true
                  load:
                    after: check
                    consumes: [{dataset: orders, key: "{run}"}]
                    run: /bin/sh -c 'echo "::set-output name=loaded::$(cat "$CLEW_INPUT_ORDERS" 2>/dev/null | wc -l)"'
                  alert:
                    after: check
                    run: /bin/true
                """, in: dir,
                scripts: [
                    "extract.sh": """
                    #!/bin/sh
                    set -e
                    echo "starting $CLEW_TASK_ID attempt $CLEW_ATTEMPT of $CLEW_RUN_ID"
                    echo "::set-variable name=params::$CLEW_PARAMS"
                    echo "::set-variable name=api_token::$CLEW_PARAM_API_TOKEN"
                    i=0; while [ $i -lt $CLEW_PARAM_ROWS ]; do echo "order-$i,$((i * 10))" >> "$CLEW_OUTPUT_DIR/orders.csv"; i=$((i+1)); done
                    echo "::expect name=rows_written passed=true::$CLEW_PARAM_ROWS rows"
                    echo "::set-output name=rows::$CLEW_PARAM_ROWS"
                    echo "some diagnostics" >&2
                    """,
                    "check.sh": """
                    echo "input at $(echo $CLEW_INPUTS | head -c 20)"
                    echo "upstream=$CLEW_UPSTREAM"
                    echo "::branch::load"
                    """,
                ])
            let dag = try PipelineFile.load(url)
            #expect(dag.spec.sourceDigest != nil)
            let outcome = try await engine.run(dag, runID: "r1")
            #expect(outcome.status == .succeeded, "\(outcome.errors)")
            #expect(outcome.tasks["alert"] == .skipped)
            #expect(try outcome.outputs["extract"]?.decode([String: Int].self) == ["rows": 3])
            let list = try runEvents(ledger, outcome)
            let extract = try #require(events(list, EventType.taskSucceeded, task: "extract").first)
            #expect(extract["exit_code"] as? Int == 0)
            #expect((extract["stdout"] as? String)?.contains("starting extract attempt 1 of r1") == true)
            #expect((extract["stderr"] as? String) == "some diagnostics\n")
            let files = try #require(extract["files"] as? [[String: Any]])
            #expect(files.first?["path"] as? String == "orders.csv")
            #expect((files.first?["sha256"] as? String)?.count == 64)
            let vars = events(list, EventType.variableRecorded, task: "extract")
            #expect(vars.map { $0["name"] as? String } == ["params", "api_token"])
            #expect(vars[1]["value"] as? String == "[REDACTED]")
            #expect(events(list, EventType.expectationEvaluated, task: "extract").first?["passed"] as? Bool == true)
            #expect(try outcome.outputs["load"]?.decode([String: Int].self) == ["loaded": 3])
            var all = ""
            try ledger.scan { e in all += String(decoding: e.payload, as: UTF8.self); return true }
            #expect(!all.contains("t0ps3cret"))
        }
    }

    @Test("a failing script's exit code and stderr are recorded; a malformed protocol line fails the task")
    func failures() async throws {
        try await withEngine { engine, ledger, dir in
            let url = try writePipeline(
                """
                dag: failing
                tasks:
                  boom: {run: "/bin/sh -c 'echo broken input >&2; exit 3'"}
                  garbled: {run: "/bin/echo ::set-output::no-name"}
                """, in: dir)
            let outcome = try await engine.run(try PipelineFile.load(url))
            let list = try runEvents(ledger, outcome)
            let boom = try #require(events(list, EventType.taskFailed, task: "boom").first)
            #expect(boom["exit_code"] as? Int == 3)
            #expect(boom["error"] as? String == "exit code 3: broken input")
            #expect((events(list, EventType.taskFailed, task: "garbled").first?["error"] as? String)?.contains("needs name=") == true)
        }
    }

    @Test("bad pipeline files get errors naming the file and line")
    func badFiles() throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-yaml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func error(_ yaml: String) throws -> String {
            let url = try writePipeline(yaml, in: dir)
            do {
                _ = try PipelineFile.load(url)
                return "accepted"
            } catch { return "\(error)" }
        }
        let path = dir.appendingPathComponent("pipeline.yaml").path
        let cycle = try error("dag: c\ntasks:\n  a: {run: /bin/true, after: b}\n  b: {run: /bin/true, after: a}\n")
        #expect(cycle.contains("\(path):1") && cycle.contains("cycle"))
        let unknown = try error("dag: u\ntasks:\n  a: {run: /bin/true}\n  b:\n    run: /bin/true\n    after: [a, ghost]\n")
        #expect(unknown.contains("\(path):4: task 'b' depends on unknown task 'ghost'"), "\(unknown)")
        let cron = try error("dag: k\nschedule: '0 25 * * *'\ntasks:\n  a: {run: /bin/true}\n")
        #expect(cron.contains("\(path):2: cron '0 25 * * *': hour field '25'"), "\(cron)")
        let exe = try error("dag: e\ntasks:\n  a:\n    run: no-such-program --flag\n")
        #expect(exe.contains("\(path):4: task a: executable 'no-such-program' was not found on PATH"), "\(exe)")
        let script = try error("dag: s\ntasks:\n  a: {run: ./missing.sh}\n")
        #expect(script.contains("missing.sh does not exist"))
        let typo = try error("dag: t\ntasks:\n  a: {run: /bin/true, retires: 3}\n")
        #expect(typo.contains("\(path):3: task a: unknown key 'retires'"), "\(typo)")
        let syntax = try error("dag: x\ntasks: [a, b\n")
        #expect(syntax.contains("not valid YAML: line"), "\(syntax)")
        let empty = try error("just text")
        #expect(empty.contains("\(path):1"))
    }

    @Test("the line protocol parses commands and escapes, and rejects malformed ones")
    func lineProtocol() throws {
        #expect(try LineCommand.parse("plain output") == nil)
        #expect(try LineCommand.parse("::set-output name=a%3Ab::line1%0Aline2 100%25") == .output(name: "a:b", value: "line1\nline2 100%"))
        #expect(try LineCommand.parse("::expect name=rows,passed=false::0 rows") == .expect(name: "rows", passed: false, message: "0 rows"))
        #expect(try LineCommand.parse("::branch::a, b") == .branch(["a", "b"]))
        #expect(try LineCommand.parse("::chunk dataset=d,key=k::out.csv") == .chunk(dataset: "d", key: "k", path: "out.csv"))
        #expect(throws: LineProtocolError.self) { try LineCommand.parse("::set-output name=x") }
        #expect(throws: LineProtocolError.self) { try LineCommand.parse("::launch-missiles::now") }
    }
}

@Suite("Schedules")
struct ScheduleTests {
    func micros(_ s: String) -> Int64 { PartitionKey.parse(s)! }

    @Test("cron expressions fire when expected")
    func cron() throws {
        let every15 = try ScheduleSpec(parsing: "*/15 * * * *")
        #expect(every15.next(after: micros("2026-11-21T10:07:00Z")) == micros("2026-11-21T10:15:00Z"))
        let weekdays = try ScheduleSpec(parsing: "30 9 * * mon-fri")
        // 2026-11-21 is a Saturday: next is Monday the 23rd.
        #expect(weekdays.next(after: micros("2026-11-21T00:00:00Z")) == micros("2026-11-23T09:30:00Z"))
        let monthly = try ScheduleSpec(parsing: "@monthly")
        #expect(monthly.next(after: micros("2026-11-21T00:00:00Z")) == micros("2026-12-01T00:00:00Z"))
        let feb = try ScheduleSpec(parsing: "0 0 29 2 *")
        #expect(feb.next(after: micros("2026-03-01T00:00:00Z")) == micros("2028-02-29T00:00:00Z"))
        let hourly = try ScheduleSpec(parsing: "every 1h")
        #expect(hourly.partitions(from: micros("2026-11-21T00:00:00Z"), endingBy: micros("2026-11-21T03:30:00Z")).map(\.start)
            == [micros("2026-11-21T00:00:00Z"), micros("2026-11-21T01:00:00Z"), micros("2026-11-21T02:00:00Z")])
        for bad in ["* * * *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *", "every 0s", "every soon"] {
            #expect(throws: ScheduleError.self, "\(bad)") { try ScheduleSpec(parsing: bad) }
        }
    }
}

@Suite("Scheduler")
struct SchedulerTests {
    @Test("catch-up runs every missed partition once, oldest first; without it only the latest; backfill runs a range")
    func catchUp() async throws {
        let hourly = DAG("hourly_job", schedule: "@hourly", start: "2026-11-21T00:00Z", catchup: true) {
            Op("work") { ctx in ctx.partition ?? "none" }
        }
        let latest = DAG("latest_only", schedule: "every 1h", start: "2026-11-21T00:00Z") { Op("work") { _ in 1 } }
        try await withEngine([hourly, latest]) { engine, _, _ in
            let scheduler = Scheduler(engine: engine)
            let now = PartitionKey.parse("2026-11-21T03:30Z")!
            let first = try await scheduler.tick(now: now)
            #expect(first.filter { $0.dag == "hourly_job" }.map(\.runID) == [
                "scheduled__2026-11-21T00:00:00Z", "scheduled__2026-11-21T01:00:00Z", "scheduled__2026-11-21T02:00:00Z",
            ])
            #expect(first.filter { $0.dag == "latest_only" }.map(\.runID) == ["scheduled__2026-11-21T02:00:00Z"])
            #expect(try first.first { $0.dag == "hourly_job" }?.outputs["work"]?.decode(String.self) == "2026-11-21T00:00:00Z")
            #expect(try await scheduler.tick(now: now).isEmpty)  // nothing twice
            #expect(try await scheduler.tick(now: now + 3_600_000_000).map(\.runID) == ["scheduled__2026-11-21T03:00:00Z", "scheduled__2026-11-21T03:00:00Z"])
            let backfill = try await scheduler.backfill(hourly, from: PartitionKey.parse("2026-11-20T22:00Z")!, to: PartitionKey.parse("2026-11-21T01:00Z")!)
            #expect(backfill.map(\.runID) == ["backfill__2026-11-20T22:00:00Z", "backfill__2026-11-20T23:00:00Z", "backfill__2026-11-21T00:00:00Z"])
            await #expect(throws: EngineError.self) { try await scheduler.backfill(DAG("manual") { Op("a") { _ in 1 } }, from: 0, to: 1) }
        }
    }
}
