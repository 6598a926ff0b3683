import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// Real OpenLineage producers from PyPI (installed by tools/producers.sh) against a real `clew serve`.
/// A producer that is not installed fails its test and says how to install it.
@Suite("OpenLineage producers")
struct ProducerTests {
    /// Airflow's environment for a test: its own home and SQLite metadata database, the fixture DAGs, and
    /// the OpenLineage provider's HTTP transport pointed at the server with an operator token.
    static func airflowEnvironment(_ cli: CLI, _ server: Server, token: String) -> [String: String] {
        let home = cli.directory.appendingPathComponent("airflow").path
        let work = cli.directory.appendingPathComponent("work").path
        return [
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": CLI.packageRoot.appendingPathComponent("Fixtures/airflow/dags").path,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:///\(home)/airflow.db",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow_test",
            "AIRFLOW__OPENLINEAGE__TRANSPORT":
                #"{"type":"http","url":"\#(server.base)","endpoint":"api/v1/lineage","auth":{"type":"api_key","apiKey":"\#(token)"}}"#,
            "AIRFLOW_CONN_CLEW_SQLITE": #"{"conn_type":"sqlite","host":"\#(work)/warehouse.db"}"#,
            "CLEW_AIRFLOW_WORK": work,
            // Clew's Python package in the DAG's tasks sends their traced steps here.
            "CLEW_URL": server.base, "CLEW_TOKEN": token,
        ]
    }

    static func runs(_ cli: CLI, externalID: String) async throws -> [[String: Any]] {
        let r = try await cli.run(["runs", "--external-id", externalID, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
    }

    static func tasks(_ cli: CLI, _ dag: String, _ run: String) async throws -> [String: [String: Any]] {
        let show = try jsonObject(try await cli.run(["run", "show", "\(dag)/\(run)", "--json"]).stdout)
        var out: [String: [String: Any]] = [:]
        for t in show["tasks"] as? [[String: Any]] ?? [] { out[t["task"] as? String ?? "?"] = t }
        return out
    }

    @Test("Airflow 2.10 with its OpenLineage provider: a failure, a re-run of the same logical date, a success; ids, attempts, datasets, verify")
    func airflow2() async throws {
        try await Self.airflowEndToEnd(venv: "airflow2", newRunIDPerTest: false, schedule: "@daily")
    }

    @Test("Airflow 3 with its OpenLineage provider: a failure, a re-run of the same logical date, a success; ids, attempts, datasets, verify")
    func airflow3() async throws {
        try await Self.airflowEndToEnd(venv: "airflow3", newRunIDPerTest: true, schedule: "0 0 * * *")
    }

    /// The fixture DAG run three times with `airflow dags test` against a real server: 2026-11-03 failing
    /// in `clean`, 2026-11-03 again succeeding (Airflow reuses the OpenLineage run ids), 2026-11-04.
    /// - Parameter newRunIDPerTest: Airflow 3 gives each `dags test` a new `run_id` (from the wall clock);
    ///   Airflow 2 derives it from the logical date.
    /// - Parameter schedule: the DAG's `@daily` as the provider reports it (Airflow 3 reports the cron line).
    static func airflowEndToEnd(venv: String, newRunIDPerTest: Bool, schedule: String) async throws {
        let airflow = Program.venvs.appendingPathComponent("\(venv)/bin/airflow").path
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let token = try await server.mint("airflow", "operator")
        let env = Self.airflowEnvironment(cli, server, token: token)
        let migrate = try await Program.run(airflow, ["db", "migrate"], environment: env, in: cli.directory)
        try #require(migrate.status == 0, "airflow db migrate failed:\n\(migrate.output.suffix(3000))")
        func runsOfDAG() async throws -> [[String: Any]] {
            try jsonArray(try await cli.run(["runs", "--dag", "clew_orders", "--json"]).stdout)
        }

        // 1. The clean step fails (conf), so the DAG run fails.
        let failing = try await Program.run(
            airflow, ["dags", "test", "clew_orders", "2026-11-03", "-c", #"{"fail_clean": true}"#], environment: env, in: cli.directory)
        #expect(failing.status != 0, "the run was meant to fail")
        #expect(!failing.output.contains("Failed to emit"), "every OpenLineage event reached clew:\n\(failing.output.suffix(3000))")
        let first = try await runsOfDAG()
        try #require(first.count == 1, "\(first)")
        let run = try #require(first[0]["run"] as? String)
        let firstID = try #require(first[0]["externalID"] as? String, "Airflow's run_id is recorded: \(first[0])")
        if !newRunIDPerTest { #expect(firstID == "manual__2026-11-03T00:00:00+00:00") }
        #expect(try await Self.runs(cli, externalID: firstID).first?["run"] as? String == run, "Airflow's run_id finds the run")
        #expect(first[0]["state"] as? String == "failed")
        var tasks = try await Self.tasks(cli, "clew_orders", run)
        #expect(tasks["extract"]?["state"] as? String == "succeeded")
        #expect(tasks["clean"]?["state"] as? String == "failed")
        #expect((tasks["clean"]?["error"] as? String)?.contains("negative amounts") == true, "the errorMessage facet: \(tasks["clean"] ?? [:])")
        #expect(tasks["load"] == nil, "load never ran")

        // 2. The same logical date again: Airflow reuses the OpenLineage run ids. Each task is a new attempt
        // and the run's state follows its latest attempts.
        let rerun = try await Program.run(airflow, ["dags", "test", "clew_orders", "2026-11-03"], environment: env, in: cli.directory)
        #expect(rerun.status == 0, "\(rerun.output.suffix(3000))")
        let again = try await runsOfDAG()
        try #require(again.count == 1, "the re-run is the same run: \(again)")
        #expect(again[0]["run"] as? String == run)
        #expect(again[0]["state"] as? String == "succeeded", "\(again[0])")
        #expect(again[0]["resubmissions"] as? Int == 1)
        let ids = again[0]["externalIDs"] as? [String] ?? []
        #expect(ids.count == (newRunIDPerTest ? 2 : 1) && ids.first == firstID, "\(ids)")
        for id in ids { #expect(try await Self.runs(cli, externalID: id).first?["run"] as? String == run, "\(id) finds the run") }
        tasks = try await Self.tasks(cli, "clew_orders", run)
        for name in ["extract", "clean", "load", "report"] {
            #expect(tasks[name]?["state"] as? String == "succeeded", "\(name): \(tasks[name] ?? [:])")
        }
        #expect(tasks["extract"]?["attempts"] as? Int == 2 && tasks["clean"]?["attempts"] as? Int == 2)
        #expect(tasks["load"]?["attempts"] as? Int == 1 && tasks["report"]?["attempts"] as? Int == 1)
        // The clean step's traced filter: its variables, by line, under the task's second attempt.
        let steps = try jsonArray(try await cli.run(["inspect", "clew_orders/\(run)", "--task", "clean", "--attempt", "2", "--json"]).stdout)
        let amounts = steps.filter { $0["name"] as? String == "amount" }
        #expect(amounts.map { $0["value"] as? String } == ["12.5", "-3", "7.25"], "\(steps)")
        #expect(amounts.allSatisfy { ($0["source"] as? String ?? "").hasPrefix("clew_orders.py:") }, "\(amounts)")
        #expect(steps.contains { $0["name"] as? String == "dropped" && $0["value"] as? String == "1" }, "\(steps)")
        // Clew runs that function again, on this host, on its recorded arguments: the same steps; and a
        // counterfactual with bob's amount no longer negative drops nothing.
        func replayCall(_ extra: [String]) async throws -> CLI.Result {
            let args = ["replay-call", "clew_orders/\(run)", "--task", "clean", "--python", Program.venvs.appendingPathComponent("\(venv)/bin/python3").path, "--json"] + extra
            return try await cli.run(args, environment: env)
        }
        let same = try await replayCall([])
        #expect(same.status == 0, "\(same.stdout)\(same.stderr)")
        #expect((try? jsonObject(same.stdout))?["verdict"] as? String == "identical", "\(same.stdout)")
        #expect((try? jsonObject(same.stdout))?["steps_compared"] as? Int ?? 0 >= 8, "\(same.stdout)")
        let fixed = try await replayCall(["--set", #"rows=[["id","customer","amount"],["1","ada","12.5"],["2","bob","3"],["3","cy","7.25"]]"#])
        #expect(fixed.status == 0, "\(fixed.stdout)\(fixed.stderr)")
        let changed = (try? jsonObject(fixed.stdout))?["changed"] as? [[String: Any]] ?? []
        #expect(changed.contains { $0["name"] as? String == "dropped" && $0["original"] as? String == "1" && $0["replayed"] as? String == "0" }, "\(fixed.stdout)")
        let unknown = try await replayCall(["--set", "nope=1"])
        #expect(unknown.status == 1 && unknown.stderr.contains("has no argument nope (it has rows)"), "\(unknown.stderr)")
        let show = try await cli.run(["run", "show", "clew_orders/\(run)"])
        #expect(show.stdout.contains("external  \(firstID)"), "\(show.stdout)")

        // 3. Another logical date: a run of its own, with the nominal interval Airflow gave it.
        let next = try await Program.run(airflow, ["dags", "test", "clew_orders", "2026-11-04"], environment: env, in: cli.directory)
        #expect(next.status == 0, "\(next.output.suffix(3000))")
        let all = try await runsOfDAG()
        #expect(all.count == 2 && all.allSatisfy { $0["state"] as? String == "succeeded" }, "\(all)")
        #expect(all.contains { ($0["intervalEnd"] as? String)?.hasPrefix("2026-11-04T00:00:00") == true }, "nominalTime is the run's interval: \(all)")

        // The DAG is known from the ledger: listed by `clew dags` and the API, not runnable here, with the
        // schedule as Airflow declares it.
        let dags = try jsonArray(try await cli.run(["dags", "--json"]).stdout)
        let listed = try #require(dags.first { $0["dag"] as? String == "clew_orders" }, "\(dags)")
        #expect(listed["runnable"] as? Bool == false && listed["origin"] as? String == "openlineage:airflow_test", "\(listed)")
        #expect(listed["schedule"] as? String == schedule && listed["tasks"] as? Int ?? 0 >= 4, "\(listed)")
        let viewer = try await server.mint("auditor", "viewer")
        let api = try await server.get("/api/dags", token: viewer).array.first { $0["name"] as? String == "clew_orders" }
        #expect(api?["schedule"] as? String == schedule && api?["runnable"] as? Bool == false, "\(api ?? [:])")
        #expect((api?["lastRun"] as? [String: Any])?["dag"] as? String == "clew_orders")
        let page = try await server.get("/api/dags/clew_orders", token: viewer)
        #expect(page.status == 200 && (page.object["runs"] as? [Any])?.count == 2, "\(page.body.prefix(300))")

        // Datasets: the SQLite table has a version per write, both ready; the clean file a version per
        // write too: the failed first try's is failed, and the two good ones stay ready beside it.
        let chunks = try jsonArray(try await cli.run(["chunks", "--json"]).stdout)
        let byName = Dictionary(chunks.map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        let orders = try #require(byName["sqlite:warehouse.orders"], "datasets: \(byName.keys.sorted())")
        #expect((orders["counts"] as? [String: Int])?["ready"] == 2, "\(orders)")
        let clean = try #require(byName.first { $0.key.hasSuffix("work/clean_orders.csv") }?.value, "datasets: \(byName.keys.sorted())")
        #expect((clean["counts"] as? [String: Int])?["ready"] == 2 && (clean["counts"] as? [String: Int])?["failed"] == 1, "\(clean)")

        // Columns from the schema facets (the Table's Columns, the OpenLineage dataset's fields).
        let columns = (orders["fields"] as? [[String: Any]] ?? []).map { "\($0["name"] as? String ?? "?"):\($0["type"] as? String ?? "?")" }
        #expect(columns == ["id:INTEGER", "customer:TEXT", "amount:REAL"], "\(orders)")
        let cleanName = try #require(byName.first { $0.key.hasSuffix("work/clean_orders.csv") }?.key)
        #expect((clean["fields"] as? [[String: Any]])?.count == 3, "\(clean)")
        // Column lineage: the clean file's amount comes from the raw file's amount.
        let column = try jsonObject(try await cli.run(["trace", "\(cleanName)#amount", "--format", "json"]).stdout)
        let sources = (column["edges"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "derived" }.compactMap { $0["from"] as? String }
        #expect(sources.count == 1 && sources.first?.hasSuffix("raw_orders.csv#amount") == true, "\(column)")

        // Lineage: the table's data goes back through load and clean to the raw file.
        let trace = try jsonObject(try await cli.run(["trace", "sqlite:warehouse.orders", "--format", "json"]).stdout)
        let nodes = (trace["nodes"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(nodes.contains { $0.contains("raw_orders.csv") }, "\(nodes)")

        try await server.stop()
        let verify = try await cli.run(["verify"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }

    @Test("dbt with openlineage-dbt (dbt-ol build) on DuckDB: models are tasks, tests are expectations, tables are datasets with columns, column lineage reaches the seed")
    func dbt() async throws {
        let bin = Program.venvs.appendingPathComponent("dbt/bin")
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let token = try await server.mint("dbt", "operator")
        // dbt writes target/ and logs/ into its project: run a copy.
        let project = cli.directory.appendingPathComponent("clew_shop")
        try FileManager.default.copyItem(at: CLI.packageRoot.appendingPathComponent("Fixtures/dbt/clew_shop"), to: project)
        let database = cli.directory.appendingPathComponent("shop.duckdb").path
        let env = [
            "PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),  // dbt-ol runs `dbt`
            "DBT_PROFILES_DIR": project.path, "CLEW_DBT_DATABASE": database, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "OPENLINEAGE_URL": server.base, "OPENLINEAGE_API_KEY": token, "OPENLINEAGE_NAMESPACE": "dbt_test",
        ]
        let seed = try await Program.run(bin.appendingPathComponent("dbt").path, ["seed"], environment: env, in: project)
        try #require(seed.status == 0, "dbt seed failed:\n\(seed.output.suffix(3000))")
        // `build`: the models, then their tests (which openlineage-dbt reports as dataQualityAssertions).
        let run = try await Program.run(bin.appendingPathComponent("dbt-ol").path, ["build"], environment: env, in: project)
        try #require(run.status == 0, "dbt-ol build failed:\n\(run.output.suffix(3000))")
        #expect(run.output.contains("Emitted 10 OpenLineage events"), "\(run.output.suffix(2000))")

        // The dbt run is a run; its models are its tasks.
        let runs = try jsonArray(try await cli.run(["runs", "--dag", "dbt-run-clew_shop", "--json"]).stdout)
        try #require(runs.count == 1, "\(runs)")
        #expect(runs[0]["state"] as? String == "succeeded")
        let tasks = try await Self.tasks(cli, "dbt-run-clew_shop", try #require(runs[0]["run"] as? String))
        // `dbt build` names its jobs <model>.build.run and <model>.build.test.
        let models = ["customer_totals", "stg_orders"].flatMap { m in ["run", "test"].map { "shop.main.clew_shop.\(m).build.\($0)" } }
        #expect(tasks.keys.sorted() == models.sorted(), "\(tasks.keys.sorted())")
        #expect(tasks.values.allSatisfy { $0["state"] as? String == "succeeded" })
        #expect((tasks["shop.main.clew_shop.stg_orders.build.run"]?["sql"] as? String)?.contains("where amount >= 0") == true, "the sql facet")
        // dbt's tests are expectations of the run, all passed.
        let expectations = try await cli.run(["log", "--type", "expectation.evaluated", "--json"]).lines.compactMap { try? jsonObject($0)["payload"] as? [String: Any] }
        let names = expectations.compactMap { $0["name"] as? String }
        #expect(names.contains { $0.hasSuffix("stg_orders: unique on order_id") } && names.contains { $0.hasSuffix("customer_totals: unique on customer") }, "\(names)")
        #expect(expectations.allSatisfy { $0["passed"] as? Bool == true })

        // Tables are datasets with their columns.
        let prefix = "duckdb://\(database):shop.main."
        let chunks = try jsonArray(try await cli.run(["chunks", "--json"]).stdout)
        let byName = Dictionary(chunks.map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        let totals = try #require(byName[prefix + "customer_totals"], "\(byName.keys.sorted())")
        #expect((totals["fields"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["customer", "orders", "total_amount"], "\(totals)")
        #expect((byName[prefix + "stg_orders"]?["counts"] as? [String: Int])?["ready"] == 1, "one version of stg_orders, read by customer_totals in the same run")

        // Column lineage: total_amount ← stg_orders.amount ← the seed's amount.
        let trace = try jsonObject(try await cli.run(["trace", prefix + "customer_totals#total_amount", "--format", "json"]).stdout)
        let nodes = (trace["nodes"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(nodes.contains("field:\(prefix)stg_orders#amount") && nodes.contains("field:\(prefix)raw_orders#amount"), "\(nodes)")
        // Marquez's read API over the same facts.
        let viewer = try await server.mint("auditor", "viewer")
        let ns = "duckdb://\(database)"
        let enc = { (s: String) in s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s }
        let namespaces = (try await server.get("/api/v1/namespaces", token: viewer).object["namespaces"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(namespaces.contains("dbt_test") && namespaces.contains(ns), "\(namespaces)")
        let jobs = try await server.get("/api/v1/namespaces/dbt_test/jobs", token: viewer)
        let job = (jobs.object["jobs"] as? [[String: Any]])?.first { $0["name"] as? String == "dbt-run-clew_shop" }
        #expect(((job?["latestRun"] as? [String: Any])?["state"] as? String) == "COMPLETED", "\(jobs.body.prefix(500))")
        let dataset = try await server.get("/api/v1/namespaces/\(enc(ns))/datasets/shop.main.customer_totals", token: viewer)
        #expect((dataset.object["fields"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["customer", "orders", "total_amount"], "\(dataset.body.prefix(500))")
        let versions = try await server.get("/api/v1/namespaces/\(enc(ns))/datasets/shop.main.stg_orders/versions", token: viewer)
        #expect(versions.object["totalCount"] as? Int == 1, "\(versions.body.prefix(500))")
        let columns = try await server.get("/api/v1/column-lineage?nodeId=\(enc("datasetField:\(ns):shop.main.customer_totals:total_amount"))", token: viewer)
        let ids = (columns.object["graph"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(ids.contains("datasetField:\(ns):shop.main.raw_orders:amount"), "\(columns.body.prefix(800))")
        let search = try await server.get("/api/v1/search?q=customer_totals&filter=DATASET", token: viewer)
        #expect((search.object["results"] as? [[String: Any]])?.first?["nodeId"] as? String == "dataset:\(ns):shop.main.customer_totals", "\(search.body)")
        let byID = try await server.get("/api/v1/jobs/runs/\(try #require(runs[0]["run"] as? String))", token: viewer)
        #expect(byID.object["state"] as? String == "COMPLETED", "\(byID.body)")
        #expect(try await server.get("/api/v1/search?q=x&filter=TABLE", token: viewer).status == 400)
        #expect(try await server.get("/api/v1/namespaces/nowhere/datasets/none", token: viewer).status == 404)

        // And the table lineage from the model down to what read it.
        let down = try jsonObject(try await cli.run(["trace", prefix + "stg_orders", "--down", "--format", "json"]).stdout)
        #expect((down["nodes"] as? [[String: Any]] ?? []).contains { ($0["id"] as? String)?.hasSuffix("customer_totals") == true }, "\(down)")
        try await server.stop()
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("data-quality facets become expectations and metrics: culprit names a failed assertion and an out-of-range row count")
    func dataQuality() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let token = try await server.mint("producer", "operator")
        var runs: [String] = []
        for (day, rows) in [(1, 1000), (2, 1012), (3, 990), (4, 12)] {
            let run = UUID().uuidString.lowercased()
            runs.append(run)
            let nulls = day == 4 ? 7 : 0
            let input = #"{"namespace":"pg","name":"shop.orders","inputFacets":{"dataQualityMetrics":{"_producer":"https://p","_schemaURL":"https://openlineage.io/spec/facets/1-0-2/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet","rowCount":\#(rows),"columnMetrics":{"id":{"nullCount":\#(nulls),"distinctCount":\#(rows)}}},"dataQualityAssertions":{"_producer":"https://p","_schemaURL":"https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet","assertions":[{"assertion":"not_null","success":\#(nulls == 0),"column":"id"}]}}}"#
            func event(_ type: String, _ second: Int) -> String {
                #"{"eventType":"\#(type)","eventTime":"2026-11-0\#(day)T00:00:0\#(second)Z","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","run":{"runId":"\#(run)"},"job":{"namespace":"ns","name":"quality"},"inputs":[\#(input)],"outputs":[]}"#
            }
            let r = try await server.post("/api/v1/lineage/batch", token: token, "[\(event("START", 0)),\(event("COMPLETE", 5))]")
            #expect(r.status == 200 && r.object["applied"] as? Int == 2, "\(r.body)")
        }
        let metrics = try await cli.run(["search", "tasks", "--var", "pg:shop.orders.rowCount<100", "--json"])
        #expect(try jsonArray(metrics.stdout).count == 1, "\(metrics.stdout)")
        let culprit = try await cli.run(["culprit", "run:quality/\(runs[3])", "--json"])
        #expect(culprit.status == 2, "a culprit is found: \(culprit.stdout)\(culprit.stderr)")
        let findings = (try jsonObject(culprit.stdout)["findings"] as? [[String: Any]] ?? []).compactMap { $0["detail"] as? String }
        #expect(findings.contains { $0.contains("not_null on id") }, "\(findings)")
        #expect(findings.contains { $0.contains("pg:shop.orders.rowCount") && $0.contains("12") }, "\(findings)")
    }

    @Test("events replayed into a fresh server give the same run and task times (eventTime, not arrival)")
    func eventTimes() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let token = try await server.mint("producer", "operator")
        func event(_ type: String, _ id: String, job: String, at time: String, parent run: String?) -> String {
            let facets = run.map {
                #","facets":{"parent":{"_producer":"https://p","_schemaURL":"https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet","job":{"namespace":"ns","name":"daily"},"run":{"runId":"\#($0)"}}}"#
            } ?? ""
            return #"{"eventType":"\#(type)","eventTime":"\#(time)","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","run":{"runId":"\#(id)"\#(facets)},"job":{"namespace":"ns","name":"\#(job)"},"inputs":[],"outputs":[]}"#
        }
        func show(_ run: String) async throws -> (run: [String: Any], extract: [String: Any]) {
            let show = try jsonObject(try await cli.run(["run", "show", "daily/\(run)", "--json"]).stdout)
            let extract = (show["tasks"] as? [[String: Any]])?.first { $0["task"] as? String == "extract" }
            return (show["run"] as? [String: Any] ?? [:], extract ?? [:])
        }

        // In order, sent long after they happened: times are the producer's, not the arrival's.
        let (run, task) = (UUID().uuidString.lowercased(), UUID().uuidString.lowercased())
        let inOrder = [
            event("START", run, job: "daily", at: "2026-11-03T00:00:00Z", parent: nil),
            event("START", task, job: "daily.extract", at: "2026-11-03T00:00:00Z", parent: run),
            event("COMPLETE", task, job: "daily.extract", at: "2026-11-03T00:00:26.3Z", parent: run),
            event("COMPLETE", run, job: "daily", at: "2026-11-03T00:00:30Z", parent: nil),
        ]
        let sent = try await server.post("/api/v1/lineage/batch", token: token, "[\(inOrder.joined(separator: ","))]")
        #expect(sent.status == 200 && sent.object["applied"] as? Int == 4, "\(sent.body)")
        let a = try await show(run)
        #expect(a.run["state"] as? String == "succeeded" && a.run["queuedMicros"] as? Int == 1_793_664_000_000_000, "\(a.run)")
        #expect(a.run["endedMicros"] as? Int == 1_793_664_030_000_000, "\(a.run)")
        #expect(a.extract["durationMillis"] as? Int == 26_300, "26.3 s between the task's START and COMPLETE: \(a.extract)")

        // Out of order: the DAG's COMPLETE first, the task's COMPLETE before its START. Late events are
        // stored, not applied, and the answer says why.
        let (late, lateTask) = (UUID().uuidString.lowercased(), UUID().uuidString.lowercased())
        let shuffled = [
            event("COMPLETE", late, job: "daily", at: "2026-11-03T00:00:30Z", parent: nil),
            event("COMPLETE", lateTask, job: "daily.extract", at: "2026-11-03T00:00:26.3Z", parent: late),
            event("START", late, job: "daily", at: "2026-11-03T00:00:00Z", parent: nil),
            event("START", lateTask, job: "daily.extract", at: "2026-11-03T00:00:00Z", parent: late),
        ]
        let batch = try await server.post("/api/v1/lineage/batch", token: token, "[\(shuffled.joined(separator: ","))]")
        #expect(batch.status == 200 && batch.object["accepted"] as? Int == 4, "\(batch.body)")
        let outcomes = batch.object["events"] as? [[String: Any]] ?? []
        #expect(outcomes.map { $0["status"] as? String ?? "?" } == ["applied", "applied", "ignored", "ignored"], "\(batch.body)")
        #expect((outcomes.last?["reason"] as? String)?.contains("already ended") == true, "a late START is named: \(outcomes)")
        let b = try await show(late)
        #expect(b.run["state"] as? String == "succeeded")
        #expect(b.extract["state"] as? String == "succeeded" && b.extract["attempts"] as? Int == 1, "\(b.extract)")
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("the OpenLineage spec is built into the binary (and matches Fixtures); a wrong --openlineage-spec is named")
    func builtInSpec() async throws {
        let check = try await Program.run(
            "/usr/bin/python3", [CLI.packageRoot.appendingPathComponent("tools/embed_openlineage_spec.py").path, "--check"],
            in: CLI.packageRoot)
        #expect(check.status == 0, "\(check.output)")
        let cli = CLI()
        defer { cli.cleanUp() }
        // Every other server test starts the binary in a temporary directory with no spec option: the
        // built-in copy validates. An override that is not a spec directory stops the server at once.
        let bad = try await cli.run(["serve", "--port", "0", "--openlineage-spec", "/nonexistent/spec"])
        #expect(bad.status != 0 && bad.stderr.contains("/nonexistent/spec/OpenLineage.json"), "\(bad.stderr)")
    }

    @Test("a DatasetEvent describes columns and a JobEvent records static lineage; repeating them changes nothing")
    func staticEvents() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let token = try await server.mint("catalog", "operator")
        let dataset = #"{"eventTime":"2026-11-03T00:00:00Z","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent","dataset":{"namespace":"pg","name":"shop.orders","facets":{"schema":{"_producer":"https://p","_schemaURL":"https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet","fields":[{"name":"id","type":"BIGINT"},{"name":"amount","type":"NUMERIC"}]}}}}"#
        let job = #"{"eventTime":"2026-11-03T00:00:00Z","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent","job":{"namespace":"catalog","name":"nightly_totals"},"inputs":[{"namespace":"pg","name":"shop.orders"}],"outputs":[{"namespace":"pg","name":"shop.totals","facets":{"columnLineage":{"_producer":"https://p","_schemaURL":"https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet","fields":{"total":{"inputFields":[{"namespace":"pg","name":"shop.orders","field":"amount","transformations":[{"type":"INDIRECT","subtype":"AGGREGATION"}]}]}}}}}]}"#
        let first = try await server.post("/api/v1/lineage/batch", token: token, "[\(dataset),\(job)]")
        #expect(first.status == 200 && first.object["applied"] as? Int == 2, "\(first.body)")
        let orders = try jsonArray(try await cli.run(["chunks", "--json"]).stdout).first { $0["name"] as? String == "pg:shop.orders" }
        #expect((orders?["fields"] as? [[String: Any]])?.compactMap { $0["type"] as? String } == ["BIGINT", "NUMERIC"], "\(orders ?? [:])")
        let dags = try jsonArray(try await cli.run(["dags", "--json"]).stdout)
        #expect(dags.contains { $0["dag"] as? String == "nightly_totals" && $0["origin"] as? String == "openlineage:catalog" }, "\(dags)")
        let trace = try await cli.run(["trace", "pg:shop.totals#total"])
        #expect(trace.stdout.contains("field:pg:shop.orders#amount"), "\(trace.stdout)\(trace.stderr)")
        // The same facts again (new events, new eventTime): stored, nothing new applied.
        let again = try await server.post(
            "/api/v1/lineage/batch", token: token,
            "[\(dataset.replacingOccurrences(of: "00:00:00Z", with: "01:00:00Z")),\(job.replacingOccurrences(of: "00:00:00Z", with: "01:00:00Z"))]")
        #expect(again.object["accepted"] as? Int == 2 && again.object["ignored"] as? Int == 2, "\(again.body)")
    }

    @Test("concurrent copies of one event (a client's retries racing the original) are applied exactly once")
    func concurrentDuplicates() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let token = try await server.mint("producer", "operator")
        let run = UUID().uuidString.lowercased()
        let body = #"{"eventType":"START","eventTime":"2026-11-03T00:00:00Z","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","run":{"runId":"\#(run)"},"job":{"namespace":"ns","name":"racy"},"inputs":[],"outputs":[{"namespace":"ns","name":"out"}]}"#
        let replies = try await withThrowingTaskGroup(of: Server.Reply.self) { group in
            for _ in 0..<24 { group.addTask { try await server.post("/api/v1/lineage", token: token, body) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(replies.allSatisfy { $0.status == 200 || $0.status == 201 }, "\(replies.map(\.body))")
        #expect(replies.filter { $0.object["accepted"] as? Int == 1 }.count == 1, "exactly one copy is stored")
        #expect(replies.filter { $0.object["duplicates"] as? Int == 1 }.count == 23)
        let received = try await cli.run(["log", "--stream", "openlineage/\(run)", "--json"])
        #expect(received.lines.count == 1)
        let started = try await cli.run(["log", "--stream", "run/racy/\(run)", "--type", "task.started", "--json"])
        #expect(started.lines.count == 1, "one attempt: \(started.stdout)")
    }
}

func jsonArray(_ text: String) throws -> [[String: Any]] {
    guard let a = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else {
        throw CLIFailure("not a JSON array: \(text.prefix(300))")
    }
    return a
}
