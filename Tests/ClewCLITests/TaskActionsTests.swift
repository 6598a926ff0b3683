import ClewTestSupport
import Foundation
import NIOHTTP1
import Testing

/// Task actions (docs/operations.md#task-actions): clear, mark success, mark failed, from the CLI, the
/// API and the dashboard, each an event with who and why, audited over HTTP, visible in lineage.
@Suite("Operations: task actions", .serialized)
struct TaskActionsTests {
    static var pipelines: String { OperationsTests.pipelines }

    static func events(_ cli: CLI, _ type: String) async throws -> [[String: Any]] {
        try await cli.run(["log", "--type", type, "--json"]).stdout.split(separator: "\n").map { try jsonObject(String($0)) }
    }

    @Test("CLI: mark success with who and why; clear runs the task and what follows it again (not what came before); mark failed makes a resubmit run it; lineage shows each; bad input refused")
    func cli() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let fixed = cli.directory.appendingPathComponent("fixed").path
        let env = ["CLEW_TEST_FIXED": fixed]
        let first = try await cli.run(["run", "ops_actions", "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(first.status == 3, "transform fails until fixed: \(first.stdout)")
        let runID = try #require(try jsonObject(first.stdout)["run"] as? String)
        let run = "ops_actions/\(runID)"

        // Bad input: each refused naming it, nothing recorded.
        let before = try await cli.eventCount()
        let unknownTask = try await cli.run(["task", "mark", run, "nope", "--success", "--pipelines", Self.pipelines])
        #expect(unknownTask.status == 1 && unknownTask.stderr.contains("DAG ops_actions has no task nope (tasks: extract, transform, load)"), "\(unknownTask.stderr)")
        let unknownRun = try await cli.run(["task", "mark", "ops_actions/nope", "load", "--failed", "--pipelines", Self.pipelines])
        #expect(unknownRun.status == 1 && unknownRun.stderr.contains("no run nope of DAG ops_actions"), "\(unknownRun.stderr)")
        let already = try await cli.run(["task", "mark", run, "extract", "--success", "--pipelines", Self.pipelines])
        #expect(already.status != 0 && already.stderr.contains("task extract of run \(runID) is already succeeded"), "\(already.stderr)")
        let neither = try await cli.run(["task", "mark", run, "load", "--pipelines", Self.pipelines])
        #expect(neither.status != 0 && neither.stderr.contains("exactly one of --success or --failed"), "\(neither.stderr)")
        #expect(try await cli.eventCount() == before)

        // Mark success: the view shows it, with who and why.
        let mark = try await cli.run(["task", "mark", run, "transform", "--success", "--reason", "loaded by hand", "--by", "alice", "--pipelines", Self.pipelines])
        #expect(mark.status == 0, "\(mark.stderr)")
        let marked = try #require(try await Self.events(cli, "task.marked_success").first)
        #expect(marked["actor"] as? String == "alice")
        #expect((marked["payload"] as? [String: Any])?["by"] as? String == "alice")
        let shown = try jsonObject(try await cli.run(["run", "show", run, "--json"]).stdout)
        let transform = try #require((shown["tasks"] as? [[String: Any]])?.first { $0["task"] as? String == "transform" })
        #expect(transform["state"] as? String == "succeeded" && (transform["reason"] as? String)?.contains("marked succeeded by alice: loaded by hand") == true, "\(transform)")

        // Clear transform once it is fixed: it and load run again, extract does not.
        #expect(FileManager.default.createFile(atPath: fixed, contents: Data()))
        let clear = try await cli.run(["task", "clear", run, "transform", "--reason", "source fixed", "--by", "bob", "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(clear.status == 0, "\(clear.stdout)\(clear.stderr)")
        let cleared = try #require(try await Self.events(cli, "task.cleared").first)
        #expect((cleared["payload"] as? [String: Any])?["cleared"] as? [String] == ["transform", "load"] && cleared["actor"] as? String == "bob", "\(cleared)")
        let after = try jsonObject(try await cli.run(["run", "show", run, "--json"]).stdout)
        #expect((after["run"] as? [String: Any])?["state"] as? String == "succeeded")
        let attempts = Dictionary(uniqueKeysWithValues: (after["tasks"] as? [[String: Any]] ?? []).map { ($0["task"] as? String ?? "?", $0["attempts"] as? Int ?? 0) })
        #expect(attempts == ["extract": 1, "transform": 2, "load": 1], "\(attempts)")

        // Mark extract failed: a resubmit runs it (and what follows) again.
        #expect(try await cli.run(["task", "mark", run, "extract", "--failed", "--reason", "bad source file", "--pipelines", Self.pipelines]).status == 0)
        let resubmit = try await cli.run(["resubmit", "ops_actions", runID, "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(resubmit.status == 0, "\(resubmit.stdout)\(resubmit.stderr)")
        let again = try jsonObject(try await cli.run(["run", "show", run, "--json"]).stdout)
        #expect((again["tasks"] as? [[String: Any]])?.first { $0["task"] as? String == "extract" }?["attempts"] as? Int == 2, "\(again)")

        // Lineage: each action is a node acting on the run and its tasks.
        let lineage = try await cli.run(["lineage", "task:ops_actions/transform", "--json"])
        #expect(lineage.status == 0, "\(lineage.stderr)")
        #expect(lineage.stdout.contains("action:ops_actions/\(runID)/") && lineage.stdout.contains("acted_on"), "\(lineage.stdout)")
    }

    @Test("dashboard: the DAG page's grid (runs × tasks by state) and the code view (the pipeline file and its script as the version ran them, secrets redacted) in headless Chromium")
    func gridAndCode() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli, extra: ["--pipelines", Self.pipelines, "--no-alerts"])
        defer { server.terminate() }
        let viewer = try await server.mint("auditor", "viewer")
        let operatorToken = try await server.mint("oncall", "operator")
        var runs: [String] = []
        for dag in ["ops_actions", "ops_actions", "ops_code"] {
            let run = try #require(try await server.post("/api/runs", token: operatorToken, #"{"dag":"\#(dag)"}"#).object["run"] as? String)
            _ = try await server.waitForRun(dag, run, token: viewer)
            runs.append(run)
        }
        #expect(try await server.get("/dags/ops_code/code?version=ffff", token: viewer).status == 404)
        #expect(try await server.get("/dags/nope/code", token: viewer).status == 404)
        let spec: [[String: Any]] = [
            ["path": "/dags/ops_actions", "count": ["#dag-grid tbody tr[data-task]": 3, "#dag-grid tbody a.sq.succeeded": 2, "#dag-grid tbody a.sq.failed": 2, "#dag-grid tbody a.sq.upstream_failed": 2],
             "attr": ["#dag-grid tbody tr[data-task=load] a.sq": ["data-state", "upstream_failed"]]],
            ["path": "/dags/ops_code/code", "count": ["pre.source": 2], "text": ["pre.source[data-path='ops_code.yaml']": "DB_PASSWORD: [REDACTED]",
              "pre.source[data-path='./scripts/ops_code.sh']": "API_TOKEN=[REDACTED]", "#code-definition": "ops_code"],
             "absent": ["never-recorded"]],
            ["path": "/runs/ops_code/\(runs[2])", "count": ["#run-code": 1]],
        ]
        let check = try await server.browse(spec, token: viewer)
        #expect(check.ok, "\(check.report)")
        // The secrets are nowhere in the ledger.
        let log = try await cli.run(["log", "--json"])
        #expect(log.status == 0 && !log.stdout.contains("never-recorded"))
    }

    @Test("API and dashboard: mark and clear over the API, then clear, mark success and mark failed with the run page's forms in headless Chromium as an operator (a viewer sees none); each audited")
    func serve() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let fixed = cli.directory.appendingPathComponent("fixed").path
        let server = try await Server.start(cli, extra: ["--pipelines", Self.pipelines], environment: ["CLEW_TEST_FIXED": fixed])
        defer { server.terminate() }
        let viewer = try await server.mint("auditor", "viewer")
        let operatorToken = try await server.mint("oncall", "operator")
        let trigger = try await server.post("/api/runs", token: operatorToken, #"{"dag":"ops_actions"}"#)
        let runID = try #require(trigger.object["run"] as? String)
        let done = try await server.waitForRun("ops_actions", runID, token: viewer)
        #expect((done["run"] as? [String: Any])?["state"] as? String == "failed")
        let base = "/api/runs/ops_actions/\(runID)/tasks"

        #expect(try await server.post("\(base)/transform/mark", token: viewer, #"{"state":"success"}"#).status == 403)
        let unknown = try await server.post("\(base)/nope/mark", token: operatorToken, #"{"state":"success"}"#)
        #expect(unknown.status == 404 && unknown.message.contains("has no task nope"), "\(unknown.body)")
        let badState = try await server.post("\(base)/transform/mark", token: operatorToken, #"{"state":"maybe"}"#)
        #expect(badState.status == 400 && badState.message.contains("'maybe' is not success or failed"), "\(badState.body)")

        // The API: marks and clears as the dashboard does (a clear is a 202 and a run in the background).
        let markAPI = try await server.post("\(base)/extract/mark", token: operatorToken, #"{"state":"failed","reason":"bad source"}"#)
        #expect(markAPI.status == 200 && markAPI.object["task"] as? String == "extract", "\(markAPI.body)")
        let clearAPI = try await server.post("\(base)/extract/clear", token: operatorToken, #"{"reason":"source fixed"}"#)
        #expect(clearAPI.status == 202, "\(clearAPI.body)")
        // Ended again once resubmitted (extract runs again; transform still fails: not fixed yet).
        func ended(resubmissions n: Int) async throws -> String? {
            let run = try await server.get("/api/runs/ops_actions/\(runID)", token: viewer).object["run"] as? [String: Any]
            guard run?["resubmissions"] as? Int == n, let state = run?["state"] as? String, ["failed", "succeeded"].contains(state) else { return nil }
            return state
        }
        try await CLI.waitUntil("the cleared run to end") { try await ended(resubmissions: 1) != nil }

        // The dashboard: a viewer sees no action forms; an operator takes all three with the forms.
        let page = "/runs/ops_actions/\(runID)"
        let viewerCheck = try await server.browse([["path": page, "count": ["#run-tasks tbody tr": 3], "missing": ["#action-load", ".task-action"]]], token: viewer)
        #expect(viewerCheck.ok, "\(viewerCheck.report)")
        func act(_ task: String, _ button: String, _ reason: String, expect text: String) async throws {
            let check = try await server.browse(
                [["path": page, "submit": ["form": "#action-\(task)", "fields": ["reason": reason], "button": "button[value=\(button)]"],
                  "text": ["#run-tasks tr[data-task=\(task)]": text]]],
                token: operatorToken)
            #expect(check.ok, "\(task) \(button): \(check.report)")
        }
        // transform still fails (not fixed yet): mark it succeeded by hand.
        try await act("transform", "success", "loaded by hand", expect: "marked succeeded by token:oncall")
        // Fixed: clear it from the page, and the run succeeds (transform and load run again).
        #expect(FileManager.default.createFile(atPath: fixed, contents: Data()))
        try await act("transform", "clear", "source fixed", expect: "")
        try await CLI.waitUntil("the cleared run to end") { try await ended(resubmissions: 2) != nil }
        #expect(try await ended(resubmissions: 2) == "succeeded")
        try await act("load", "failed", "wrong rows loaded", expect: "marked failed by token:oncall")
        let cleared = try await cli.run(["log", "--type", "task.cleared", "--json"]).stdout.split(separator: "\n").count
        #expect(cleared == 2, "one clear over the API, one from the page")
        let audit = try await server.get("/api/audit?limit=50", token: server.adminToken).array.compactMap { $0["entry"] as? [String: Any] }
        let actions = audit.filter { ($0["action"] as? String)?.hasPrefix("task.") == true }.map { "\($0["action"] as? String ?? "") \($0["outcome"] as? String ?? "")" }
        #expect(
            actions == ["task.mark ok", "task.clear ok", "task.mark ok", "task.clear ok", "task.mark ok", "task.mark refused", "task.mark refused", "task.mark denied"],
            "newest first: \(actions)")
    }
}
