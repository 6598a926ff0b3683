import Foundation
import Testing

@Suite("Forensics CLI")
struct ForensicsCLITests {
    /// A ledger with the four demo pipelines (numeric_flow batches 1-8) and its run ids by DAG and batch.
    static func demo(_ cli: CLI) async throws -> (runs: [String: [String: String]], batches: [Int: String]) {
        let demo = try await cli.run(["demo", "--days", "1", "--batches", "8", "--json"])
        #expect(demo.status == 0, "\(demo.stderr)")
        let runs = try #require(try jsonObject(demo.stdout)["runs"] as? [String: [String: String]])
        var batches: [Int: String] = [:]
        for line in try await cli.run(["log", "--type", "run.queued", "--json"]).lines {
            let e = try jsonObject(line)
            let stream = e["stream"] as? String ?? ""
            guard stream.hasPrefix("run/numeric_flow/"), let p = e["payload"] as? [String: Any],
                let b = (p["params"] as? [String: String])?["batch"], let n = Int(b)
            else { continue }
            batches[n] = String(stream.dropFirst("run/numeric_flow/".count))
        }
        #expect(batches.count == 8)
        return (runs, batches)
    }

    static func jsonArray(_ text: String) async throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "not a JSON array: \(text)")
    }

    @Test("culprit finds batch 7's silent wrong value; why explains the shard demo's failures; trace, search and row trace answer")
    func questions() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let (runs, batches) = try await Self.demo(cli)
        let batch7 = try #require(batches[7])

        // culprit: the factor of batch 7's convert_units, against the history of batches 1-6.
        let culprit = try await cli.run(["culprit", "numeric_flow/\(batch7)", "--json"])
        #expect(culprit.status == 2, "\(culprit.stderr)")
        let c = try #require(try jsonObject(culprit.stdout)["culprit"] as? [String: Any])
        #expect(c["kind"] as? String == "anomaly")
        #expect(c["variable"] as? String == "factor")
        #expect(c["value"] as? Double == 0.0001)
        let attempt = try #require(c["attempt"] as? [String: Any])
        #expect(attempt["task"] as? String == "convert_units" && attempt["run"] as? String == batch7)
        #expect((c["history"] as? [String: Any])?["max"] as? Double == 0.001)
        // A normal batch has no culprit (and too little history to call anything anomalous).
        #expect(try await cli.run(["culprit", "numeric_flow/\(try #require(batches[2]))"]).status == 0)
        // The text form names it.
        #expect(try await cli.run(["culprit", batch7]).stdout.contains("factor = 0.0001 is outside [0.001, 0.001]"))

        // why: the shard that failed on its first attempt.
        let failed = try await jsonObject(try #require(cli.run(["log", "--type", "task.failed", "--json"]).lines.first))
        let shardRun = try #require((failed["stream"] as? String)?.split(separator: "/").last.map(String.init))
        let shard = try #require(((failed["payload"] as? [String: Any])?["task"] as? String)?.replacingOccurrences(of: "extract_", with: ""))
        let why = try await cli.run(["why", "shards.extracted/\(shardRun)/\(shard)", "--json"])
        #expect(why.status == 0, "\(why.stderr)")
        let w = try jsonObject(why.stdout)
        let failures = try #require(w["failures"] as? [[String: Any]])
        #expect(failures.contains { ($0["type"] as? String) == "task.failed" && ($0["says"] as? String ?? "").contains("connection reset") })
        #expect(failures.contains { ($0["type"] as? String) == "run.resubmitted" })
        let consumptions = try #require(w["consumptions"] as? [[String: Any]])
        #expect(consumptions.count == 1)
        #expect(consumptions.first?["allYes"] as? Bool == true)
        let answers = try #require(consumptions.first?["answers"] as? [[String: Any]])
        #expect(answers.map { $0["question"] as? String } == ["ready", "right", "location", "validated", "safe"])
        #expect(answers.filter { !(($0["proofs"] as? [Any]) ?? []).isEmpty }.count >= 4, "answers carry the events that prove them")
        #expect((w["summary"] as? String ?? "").contains("Recovered by resubmission"))
        #expect(try await cli.run(["why", "shards.extracted/\(shardRun)/\(shard)"]).stdout.contains("ready      yes"))

        // trace: a CSV run's JSON chunk, up and down, in every format, and as of before it existed.
        let csv = try #require(runs["csv_orders"]?.keys.first)
        let up = try await jsonObject(cli.run(["trace", "orders.json/\(csv)", "--format", "json"]).stdout)
        let upNodes = Set(try #require(up["nodes"] as? [[String: Any]]).compactMap { $0["id"] as? String })
        #expect(upNodes.contains("attempt:csv_orders/\(csv)/validate_and_convert/1"))
        #expect(upNodes.contains("chunk:orders.csv/\(csv)"))
        #expect(upNodes.contains("attempt:csv_orders/\(csv)/fetch_csv/1"))
        let down = try await jsonObject(cli.run(["trace", "orders.json/\(csv)", "--down", "--format", "json"]).stdout)
        #expect(Set(try #require(down["nodes"] as? [[String: Any]]).compactMap { $0["id"] as? String }).contains("attempt:csv_orders/\(csv)/customer_totals/1"))
        #expect(try await cli.run(["trace", "orders.json/\(csv)", "--format", "dot"]).stdout.hasPrefix("digraph lineage {"))
        #expect(try await cli.run(["trace", "orders.json/\(csv)", "--format", "mermaid"]).stdout.hasPrefix("flowchart LR"))
        let firstEdge = try #require((up["edges"] as? [[String: Any]])?.compactMap { $0["firstSeq"] as? Int }.min())
        let early = try await jsonObject(cli.run(["trace", "orders.json/\(csv)", "--format", "json", "--as-of", String(firstEdge - 1)]).stdout)
        #expect((early["edges"] as? [Any])?.isEmpty == true)
        // Through content-addressed values a trace keeps to the run it came from.
        let b7 = try await jsonObject(cli.run(["trace", "numeric_flow/\(batch7)", "--format", "json"]).stdout)
        let attempts = try #require(b7["nodes"] as? [[String: Any]]).compactMap { $0["id"] as? String }.filter { $0.hasPrefix("attempt:") }
        #expect(!attempts.isEmpty && attempts.allSatisfy { $0.hasPrefix("attempt:numeric_flow/\(batch7)/") }, "\(attempts)")

        // search
        let slow = try await Self.jsonArray(cli.run(["search", "tasks", "--var", "factor<0.001", "--json"]).stdout)
        #expect(slow.count == 1 && slow.first?["run"] as? String == batch7 && slow.first?["task"] as? String == "convert_units")
        let heavy = try await Self.jsonArray(cli.run(["search", "tasks", "--task", "aggregate", "--output", "output>2000", "--json"]).stdout)
        #expect(Set(heavy.compactMap { $0["run"] as? String }) == [batches[4]!, batches[8]!])
        let routes = try await Self.jsonArray(cli.run(["search", "tasks", "--task", "numeric_flow/route", "--json"]).stdout)
        #expect(routes.count == 8 && routes.allSatisfy { $0["state"] as? String == "succeeded" })
        let readers = try await Self.jsonArray(cli.run(["search", "tasks", "--input", "output<500", "--dag", "numeric_flow", "--json"]).stdout)
        #expect(Set(readers.compactMap { $0["task"] as? String }) == ["route", "publish", "report"])
        #expect(readers.allSatisfy { $0["run"] as? String == batch7 })
        let flagged = try await Self.jsonArray(cli.run(["search", "tasks", "--output", "output^=heavy batch", "--json"]).stdout)
        #expect(Set(flagged.compactMap { $0["run"] as? String }) == [batches[4]!, batches[8]!] && flagged.allSatisfy { $0["task"] as? String == "flag_heavy" })
        let recent = try await Self.jsonArray(cli.run(["search", "runs", "--dag", "numeric_flow", "--state", "succeeded", "--json"]).stdout)
        #expect(recent.count == 8)

        // row lineage: which orders made a customer's total.
        let row = try await jsonObject(cli.run(["trace", "attempt:csv_orders/\(csv)/customer_totals/1", "--row", "0", "--format", "json"]).stdout)
        let hops = try #require(row["hops"] as? [[String: Any]])
        #expect(hops.count == 2)
        #expect(hops.last?["node"] as? String == "chunk:orders.json/\(csv)")
        let total = try jsonObject(try #require((hops.first?["values"] as? [String])?.first))
        let sources = try #require(hops.last?["rows"] as? [Int])
        #expect(sources.count == total["orders"] as? Int)
        let members = try #require(hops.last?["values"] as? [String]).map(jsonObject)
        #expect(!members.isEmpty && members.allSatisfy { $0["customer"] as? String == total["customer"] as? String })

        // Bad input: named, non-zero.
        for (args, message) in [
            (["trace", "no-such-thing"], "names no run, chunk, dataset, column or value"),
            (["trace", csv, "--format", "svg"], "--format svg"),
            (["why", "numeric_flow/\(batch7)"], "is not a chunk"),
            (["culprit", "dataset:weights.raw"], "culprit looks above"),
            (["impact", "numeric_flow/\(batch7)"], "impact starts at"),
            (["search", "tasks", "--var", "factor>abc"], "abc is not a number"),
            (["search", "tasks"], "give --task"),
            (["trace", "attempt:csv_orders/\(csv)/customer_totals/1", "--row", "99999"], "out of range"),
        ] {
            let r = try await cli.run(args)
            #expect(r.status != 0 && r.stderr.contains(message), "\(args): \(r.status) \(r.stderr)")
        }
    }

    @Test("impact --quarantine marks what is derived as suspect; resubmit --quarantine rebuilds exactly those")
    func quarantine() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let (runs, _) = try await Self.demo(cli)
        let csv = try #require(runs["csv_orders"]?.keys.first)
        let impact = try await jsonObject(cli.run(["impact", "orders.json/\(csv)", "--json"]).stdout)
        #expect(impact["chunks"] as? [String] == ["orders.json/\(csv)"])
        #expect((impact["runs"] as? [String]) == ["csv_orders/\(csv)"])
        let before = try await cli.eventCount()
        let q = try await cli.run(["impact", "orders.json/\(csv)", "--quarantine", "--reason", "amounts in cents", "--json"])
        #expect(q.status == 0, "\(q.stderr)")
        let report = try jsonObject(q.stdout)
        let id = try #require(report["quarantine"] as? String)
        #expect(Set((report["rebuild"] as? [String: [String]])?["csv_orders/\(csv)"] ?? []) == ["validate_and_convert", "load_store", "customer_totals"])
        #expect(try await cli.eventCount() == before + 2, "one lineage.quarantined and one chunk made invalid")
        let status = try await jsonObject(cli.run(["chunks", "orders.json", "--json"]).stdout)
        #expect(((status["dataset"] as? [String: Any])?["counts"] as? [String: Int])?["invalid"] == 1)
        // The five questions now refuse it: `why` shows the quarantine in its history.
        #expect(try await cli.run(["why", "orders.json/\(csv)"]).stdout.contains("quarantined by \(id)"))

        let rebuilt = try await cli.run(["resubmit", "--quarantine", id, "--json"])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        let show = try await jsonObject(cli.run(["run", "show", "csv_orders/\(csv)", "--json"]).stdout)
        let attempts = Dictionary(uniqueKeysWithValues: try #require(show["tasks"] as? [[String: Any]]).map { ($0["task"] as! String, $0["attempts"] as! Int) })
        #expect(attempts == ["fetch_csv": 1, "validate_and_convert": 2, "load_store": 2, "customer_totals": 2])
        let after = try await jsonObject(cli.run(["chunks", "orders.json", "--json"]).stdout)
        #expect(((after["dataset"] as? [String: Any])?["counts"] as? [String: Int])?["invalid"] == nil)
        #expect(try await cli.run(["views", "verify"]).status == 0)
        #expect(try await cli.run(["verify"]).status == 0)
        #expect(try await cli.run(["resubmit", "--quarantine", "q-nope"]).stderr.contains("no quarantine q-nope"))
    }

    @Test("OpenLineage and PROV-JSON exports validate against their schemas; tampering is caught")
    func exports() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let (_, batches) = try await Self.demo(cli)
        let validator = CLI.packageRoot.appendingPathComponent("tools/validate_exports.py").path
        func validate(_ kind: String, _ file: URL) async throws -> CLI.Result {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            p.arguments = [validator, kind, file.path]
            let out = cli.directory.appendingPathComponent("validate-out")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            p.standardOutput = try FileHandle(forWritingTo: out)
            p.standardError = p.standardOutput
            try p.run()
            try await CLI.wait(for: p, args: ["validate_exports.py", kind])
            return CLI.Result(status: p.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8), stderr: "")
        }
        let ol = cli.directory.appendingPathComponent("ol.jsonl")
        #expect(try await cli.run(["export", "openlineage", "--all", "-o", ol.path]).status == 0)
        let lines = try String(contentsOf: ol, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count > 100)
        let ok = try await validate("openlineage", ol)
        #expect(ok.status == 0 && ok.stdout.contains("ok: \(lines.count) OpenLineage run events"), "\(ok.stdout)")
        let events = try lines.map(jsonObject)
        #expect(events.contains { ($0["eventType"] as? String) == "FAIL" && (($0["run"] as? [String: Any])?["facets"] as? [String: Any])?["errorMessage"] != nil })
        #expect(events.contains { (($0["run"] as? [String: Any])?["facets"] as? [String: Any])?["parent"] != nil })
        // A broken event is named.
        var broken = events[0]
        broken.removeValue(forKey: "job")
        let bad = cli.directory.appendingPathComponent("bad.jsonl")
        try JSONSerialization.data(withJSONObject: broken).write(to: bad)
        let refused = try await validate("openlineage", bad)
        #expect(refused.status == 1 && refused.stdout.contains("line 1") && refused.stdout.contains("job"), "\(refused.stdout)")

        let prov = cli.directory.appendingPathComponent("prov.json")
        #expect(try await cli.run(["export", "prov", "numeric_flow/\(try #require(batches[7]))", "-o", prov.path]).status == 0)
        let good = try await validate("prov", prov)
        #expect(good.status == 0 && good.stdout.contains("events proved into root"), "\(good.stdout)")
        var doc = try jsonObject(String(contentsOf: prov, encoding: .utf8))
        for key in ["entity", "activity", "agent", "used", "wasGeneratedBy", "wasDerivedFrom", "wasAssociatedWith", "wasInformedBy"] {
            #expect(doc[key] != nil, "PROV-JSON has \(key)")
        }
        // The root matches a signed checkpoint's tree: the ledger's own root at that size.
        let ledgerEntity = try #require((doc["entity"] as? [String: Any])?["clew:ledger"] as? [String: Any])
        let stats = try await cli.stats()
        #expect(ledgerEntity["clew:treeSize"] as? Int == stats["events"] as? Int)
        // A changed event is caught.
        var entities = try #require(doc["entity"] as? [String: Any])
        let key = try #require(entities.keys.first { $0.hasPrefix("clew:event/") })
        var event = try #require(entities[key] as? [String: Any])
        var bytes = try #require(Data(base64Encoded: event["clew:canonical"] as? String ?? ""))
        bytes[bytes.count - 1] ^= 1
        event["clew:canonical"] = bytes.base64EncodedString()
        entities[key] = event
        doc["entity"] = entities
        try JSONSerialization.data(withJSONObject: doc).write(to: prov)
        let tampered = try await validate("prov", prov)
        #expect(tampered.status == 1 && tampered.stdout.contains("do not hash to the leaf hash"), "\(tampered.stdout)")
        let dataset = cli.directory.appendingPathComponent("ds.json")
        #expect(try await cli.run(["export", "prov", "dataset:weights.kg", "-o", dataset.path]).status == 0)
        #expect(try await validate("prov", dataset).status == 0)
        #expect(try await cli.run(["export", "prov", "weights.kg", "--trace", "--down", "-o", dataset.path]).status == 0)
        #expect(try await validate("prov", dataset).status == 0)

        let bench = try await cli.run(["bench", "forensics", "--nodes", "3000", "--queries", "20", "--rows", "2000", "--json"], ledgerOption: false)
        #expect(bench.status == 0, "\(bench.stderr)")
        let b = try jsonObject(bench.stdout)
        for k in ["trace_ms_p50", "search_ms_p50"] { #expect((b[k] as? Double ?? 0) > 0, "\(k)") }
        #expect(b["rowlineage_overhead"] is Double)
        #expect(((b["graph"] as? [String: Any])?["nodes"] as? Int ?? 0) >= 3000)
    }
}
