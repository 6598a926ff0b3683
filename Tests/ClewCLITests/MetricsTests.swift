import ClewTestSupport
import Foundation
import NIOHTTP1
import Testing

/// `/metrics` (docs/server.md#metrics): scraped from a real server and parsed by the Prometheus client's
/// own parser (prometheus-client from PyPI, in the ops venv).
@Suite("clew serve: metrics")
struct MetricsTests {
    @Test("/metrics needs a token; parsed in the exposition format: runs by state, events by type, SLA misses, the append histogram, pools, views' lag")
    func scrape() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let python = Program.venvs.appendingPathComponent("ops/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw CLIFailure("\(python) is not installed; run tools/setup.sh (tools/producers.sh installs prometheus-client into the ops venv)")
        }
        let server = try await Server.start(cli, extra: ["--pipelines", OperationsTests.pipelines, "--no-alerts"])
        defer { server.terminate() }
        let viewer = try await server.mint("prometheus", "viewer")
        let operatorToken = try await server.mint("oncall", "operator")
        #expect(try await server.get("/metrics", token: nil).status == 401)
        #expect(try await server.call(.PUT, "/api/pools/db", token: operatorToken, body: #"{"slots":2}"#).status == 200)
        for dag in ["ops_sla", "ops_pool"] {
            let run = try #require(try await server.post("/api/runs", token: operatorToken, #"{"dag":"\#(dag)"}"#).object["run"] as? String)
            _ = try await server.waitForRun(dag, run, token: viewer)
        }

        let text = try await server.get("/metrics", token: viewer)
        #expect(text.status == 200)
        let input = cli.directory.appendingPathComponent("metrics.txt")
        try Data(text.body.utf8).write(to: input)
        let parsed = try await Program.run("/bin/sh", ["-c", "\"$0\" \"$1\" < \"$2\"", python, CLI.packageRoot.appendingPathComponent("tools/metrics_check.py").path, input.path], in: cli.directory)
        #expect(parsed.status == 0, "\(parsed.output)")
        let families = try #require(try jsonObject(parsed.output)["families"] as? [String: [String: Any]])
        func samples(_ family: String) -> [[String: Any]] { families[family]?["samples"] as? [[String: Any]] ?? [] }
        func value(_ family: String, _ labels: [String: String] = [:], sample: String? = nil) -> Double? {
            samples(family).first { s in
                (sample == nil || s["name"] as? String == sample) && labels.allSatisfy { (s["labels"] as? [String: String])?[$0.key] == $0.value }
            }?["value"] as? Double
        }
        #expect(families["clew_runs"]?["type"] as? String == "gauge")
        #expect(value("clew_runs", ["state": "failed"]) == 1 && value("clew_runs", ["state": "succeeded"]) == 1, "\(samples("clew_runs"))")
        // ops_sla: slow succeeded, boom failed; ops_pool: three succeeded.
        #expect(value("clew_tasks", ["state": "succeeded"]) == 4 && value("clew_tasks", ["state": "failed"]) == 1, "\(samples("clew_tasks"))")
        #expect(families["clew_events_appended"]?["type"] as? String == "counter", "the parser names a counter without _total: \(families.keys.sorted())")
        #expect((value("clew_events_appended", ["type": "run.failed"], sample: "clew_events_appended_total") ?? 0) >= 1)
        #expect((value("clew_events_appended", ["type": "pool.acquired"], sample: "clew_events_appended_total") ?? 0) >= 3)
        #expect(value("clew_sla_misses", sample: "clew_sla_misses_total") == 1)
        #expect(families["clew_ledger_append_seconds"]?["type"] as? String == "histogram")
        let count = value("clew_ledger_append_seconds", sample: "clew_ledger_append_seconds_count") ?? 0
        #expect(count >= 10, "every append is timed: \(count)")
        let buckets = samples("clew_ledger_append_seconds").filter { $0["name"] as? String == "clew_ledger_append_seconds_bucket" }.compactMap { $0["value"] as? Double }
        #expect(buckets.count >= 10 && buckets == buckets.sorted() && buckets.last == count, "cumulative buckets ending at the count: \(buckets)")
        #expect(value("clew_pool_slots", ["pool": "db"]) == 2 && value("clew_pool_used_slots", ["pool": "db"]) == 0)
        #expect(Set(samples("clew_view_lag_events").compactMap { ($0["labels"] as? [String: String])?["view"] }) == ["runs", "chunks", "lineage", "values"])
        #expect((value("clew_ledger_events") ?? 0) >= 30)
        #expect(value("clew_runs_in_flight") == 0)
    }
}
