import ClewTestSupport
import Foundation
import Testing

/// Python tasks using Clew's package (python/, installed by tools/producers.sh into the `clew-python`
/// venv): its `python3` is first on the PATH of every `clew` these tests start.
@Suite("Python tasks: clew.trace, replay, culprit")
struct PythonTaskTests {
    static var pipelines: String { CLI.packageRoot.appendingPathComponent("Fixtures/python/pipelines").path }

    /// `clew args…` with the venv's python3 first on PATH.
    static func clew(_ cli: CLI, _ args: [String]) async throws -> CLI.Result {
        let bin = Program.venvs.appendingPathComponent("clew-python/bin")
        guard FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent("python3").path) else {
            throw CLIFailure("the clew-python venv is missing at \(bin.path): run tools/producers.sh (tools/setup.sh does)")
        }
        let path = bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        return try await cli.run(args, environment: ["PATH": path])
    }

    static func run(_ cli: CLI, _ dag: String, _ params: [String] = []) async throws -> String {
        let r = try await clew(cli, ["run", dag, "--pipelines", pipelines, "--json"] + params.flatMap { ["--param", $0] })
        try #require(r.status == 0, "\(r.stdout)\(r.stderr)")
        return try #require(try jsonObject(r.stdout)["run"] as? String)
    }

    @Test("a traced Python function's assignments are steps with their lines, a loop summarized; replay is identical; --set changes values")
    func tracedTask() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let run = try await Self.run(cli, "py_orders")
        let inspect = try await cli.run(["inspect", run, "--task", "totals", "--json"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let all = try jsonArray(inspect.stdout)
        func steps(_ name: String) -> [[String: Any]] { all.filter { $0["name"] as? String == name } }
        // The time and the outside call come first, recorded as such.
        #expect(all.first?["kind"] as? String == "now")
        #expect(steps("exchange_rate").first?["kind"] as? String == "side_effect")
        // The function's argument, at its definition; each assignment at its line.
        #expect(steps("factor").first?["value"] as? String == "0.99", "\(steps("factor"))")
        let amounts = steps("amount")
        #expect(amounts.count == 4, "3 samples and the last: \(amounts)")
        #expect(amounts.allSatisfy { ($0["source"] as? String ?? "").hasPrefix("totals.py:") })
        #expect(amounts.last?["count"] as? Int == 30)
        #expect(amounts.last?["value"] as? String == "38.61")
        // A dict changed in place (`totals[region] = …`) is recorded as it changes.
        #expect(steps("totals").count >= 4, "\(steps("totals"))")
        #expect(steps("grand").first?["value"] as? String == "727.65")
        let text = try await cli.run(["inspect", run, "--task", "totals"])
        #expect(text.stdout.contains("amount (last of 30)") && text.stdout.contains("AT"), "\(text.stdout)")
        // The debugger says where a step was made.
        let step = try #require(amounts.first?["step"] as? Int)
        let debug = try await cli.run(["debug", run, "--exec", "j totals#1:\(step)"], input: "q\n")
        #expect(debug.stdout.contains("amount = 9.9   at totals.py:12"), "\(debug.stdout)\(debug.stderr)")

        let replay = try await Self.clew(cli, ["replay", run, "--pipelines", Self.pipelines, "--json"])
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
        #expect(try jsonObject(replay.stdout)["verdict"] as? String == "identical", "\(replay.stdout)")
        let branch = try await Self.clew(cli, ["replay", run, "--pipelines", Self.pipelines, "--set", "factor=2"])
        #expect(branch.status == 0, "\(branch.stderr)")
        #expect(branch.stdout.contains("grand") && branch.stdout.contains("727.65") && branch.stdout.contains("1323"), "\(branch.stdout)")
        // The API and the dashboard's replay inspector say where each step was made.
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let viewer = try await server.mint("py", "viewer")
        let api = try await server.get("/api/runs/py_orders/\(run)/tasks/totals", token: viewer)
        #expect(api.status == 200 && api.body.contains(#""source":"totals.py:12""#) && api.body.contains(#""count":30"#), "\(api.body.prefix(400))")
        let page = try await server.get("/replay/py_orders/\(run)?i=\(step - 1)", token: viewer)
        #expect(page.status == 200 && page.body.contains(#"<code id="step-source">totals.py:12</code>"#), "\(page.body.prefix(2000))")
        // And as a browser shows it (headless Chromium, no console errors).
        let spec: [[String: Any]] = [["path": "/replay/py_orders/\(run)?i=\(step - 1)", "count": ["#step-source": 1], "text": ["#step-source": "totals.py:12", "#step-title": "amount"]]]
        let browser = try await server.browse(spec, token: viewer)
        #expect(browser.ok, "\(browser.report.suffix(2000))")
        try await server.stop()
        // Variables are searchable like any task's.
        let found = try await cli.run(["search", "tasks", "--var", "grand>700", "--json"])
        #expect(found.status == 0 && found.stdout.contains("totals"), "\(found.stdout)\(found.stderr)")
    }

    @Test("a Python task that reads the wall clock itself replays as nondeterminism, naming the variable")
    func clockTask() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let run = try await Self.run(cli, "py_clock")
        let replay = try await Self.clew(cli, ["replay", run, "--pipelines", Self.pipelines, "--json"])
        #expect(replay.status == 2, "\(replay.stdout)\(replay.stderr)")
        let d = try #require(try jsonObject(replay.stdout)["divergence"] as? [String: Any])
        #expect(d["variable"] as? String == "started", "\(d)")
        #expect((d["cause"] as? [String: Any])?["kind"] as? String == "nondeterminism", "\(d)")
    }

    @Test("culprit finds a wrong factor injected into a run by the traced function's own variable")
    func culprit() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        for _ in 0..<3 { _ = try await Self.run(cli, "py_orders", ["factor=1.1"]) }
        let wrong = try await Self.run(cli, "py_orders", ["factor=11"])
        let found = try await cli.run(["culprit", "py_orders/\(wrong)", "--json"])
        #expect(found.status == 2, "\(found.stdout)\(found.stderr)")
        let c = try #require(try jsonObject(found.stdout)["culprit"] as? [String: Any])
        #expect(c["kind"] as? String == "anomaly")
        #expect(c["variable"] as? String == "factor", "\(c)")
        #expect(c["value"] as? Double == 9.9)
    }

    @Test("bench python measures capture off and on in the venv's Python and prints every figure; a Python that cannot run it is named")
    func bench() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let python = Program.venvs.appendingPathComponent("clew-python/bin/python3").path
        let r = try await cli.run(["bench", "python", "--python", python, "--rows", "2000", "--repetitions", "1", "--json"], ledgerOption: false)
        #expect(r.status == 0, "\(r.stderr)")
        let j = try jsonObject(r.stdout)
        for key in ["capture_off_s", "capture_on_s", "fallback_overhead", "swift_capture_off_s", "swift_capture_on_s"] {
            #expect((j[key] as? Double ?? 0) > 0, "\(key)")
        }
        #expect(j["swift_capture_overhead"] is Double)
        #expect((j["swift_steps"] as? Int ?? 0) > 10 && (j["swift_steps"] as? Int ?? 1000) < 100, "\(j)")
        #expect(j["capture_overhead"] is Double)
        #expect(j["fallback_backend"] as? String == "sys.settrace", "\(j)")  // the venv is Debian's Python 3.11
        // A handful of steps, not one per row: the loop is summarized.
        #expect((j["steps"] as? Int ?? 0) > 10 && (j["steps"] as? Int ?? 1000) < 100, "\(j)")
        let missing = try await cli.run(["bench", "python", "--python", "/nonexistent/python3", "--rows", "200"], ledgerOption: false)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/nonexistent/python3"), "\(missing.stderr)")
    }

    @Test("steps posted in the clew_steps facet land under the task's attempt, a large value by digest; a malformed facet is refused with 400 and nothing recorded")
    func stepsFacet() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let token = try await server.mint("producer", "operator")
        let producer = "https://github.com/clew/clew/tree/main/python"
        let parent = #"{"_producer":"\#(producer)","_schemaURL":"https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet","run":{"runId":"0190a8f2-1c2d-7a00-8000-000000000001"},"job":{"namespace":"ns","name":"etl"}}"#
        func event(_ type: String, _ facets: String) -> String {
            #"{"eventType":"\#(type)","eventTime":"2026-11-21T10:00:0\#(type == "START" ? 1 : 2).000Z","producer":"\#(producer)","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","run":{"runId":"0190a8f2-1c2d-7a00-8000-0000000000aa","facets":{"parent":\#(parent)\#(facets)}},"job":{"namespace":"ns","name":"etl.clean"},"inputs":[],"outputs":[]}"#
        }
        #expect(try await server.post("/api/v1/lineage", token: token, event("START", "")).status < 300)
        let big = String(repeating: "x", count: 900)
        let steps = #","clew_steps":{"_producer":"\#(producer)","_schemaURL":"https://clew/python.md#clew_steps","call":{"file":"/dags/etl.py","function":"clean","arguments":{"n":3}},"steps":[{"name":"n","value":3,"source":"etl.py:4"},{"name":"note","value":"\#(big)","source":"etl.py:5","count":7}]}"#
        let bad = steps.replacingOccurrences(of: #""count":7"#, with: #""count":-1"#)
        let refused = try await server.post("/api/v1/lineage", token: token, event("RUNNING", bad))
        #expect(refused.status == 400 && refused.body.contains("run.facets.clew_steps.steps[1].count must be a whole number of at least 1, got -1"), "\(refused.body)")
        let posted = try await server.post("/api/v1/lineage", token: token, event("RUNNING", steps))
        #expect(posted.status < 300, "\(posted.body)")
        try await server.stop()
        let runs = try jsonArray(try await cli.run(["runs", "--dag", "etl", "--json"]).stdout)
        let run = try #require(runs.first?["run"] as? String, "\(runs)")
        let inspect = try await cli.run(["inspect", "etl/\(run)", "--task", "clean", "--json"])
        let recorded = try jsonArray(inspect.stdout)
        #expect(recorded.map { $0["kind"] as? String ?? "?" } == ["call", "variable", "variable"], "\(inspect.stdout)\(inspect.stderr)")
        let note = try #require(recorded.last)
        #expect(note["value"] as? String == "\"\(big)\"" && note["count"] as? Int == 7 && note["source"] as? String == "etl.py:5")
        #expect(try await cli.run(["verify"]).status == 0)
    }
}
