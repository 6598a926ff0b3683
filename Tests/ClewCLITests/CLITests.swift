import ClewCore
import Foundation
import Testing

@Suite("clew command line", .serialized)
struct CLITests {
    @Test("init, append, log, stats and tail round-trip events as JSON")
    func basicFlow() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let input = (0..<5).map { eventLine(payload: #"{"i":\#($0),"rows":\#(10 * $0)}"#) }.joined(separator: "\n") + "\n"
        let appended = try await cli.run(["append", "--json"], input: input)
        #expect(appended.status == 0, "\(appended.stderr)")
        let ack = try jsonObject(appended.stdout)
        #expect(ack["first"] as? Int == 1 && ack["last"] as? Int == 5 && ack["count"] as? Int == 5)

        let log = try await cli.run(["log", "--json", "--from", "2", "--to", "3"])
        #expect(log.status == 0)
        #expect(log.lines.count == 2)
        let second = try jsonObject(log.lines[0])
        #expect(second["seq"] as? Int == 2)
        #expect(second["type"] as? String == "task.started")
        #expect((second["payload"] as? [String: Any])?["i"] as? Int == 1)

        #expect(try await cli.run(["log", "--json", "--stream", "run/etl/1", "--limit", "3"]).lines.count == 3)
        #expect(try await cli.run(["log", "--json", "--type", "nothing.like.this"]).lines.isEmpty)
        #expect(try await cli.eventCount() == 5)
        let tail = try await cli.run(["tail", "-n", "2", "--json"])
        #expect(tail.lines.map { try? jsonObject($0)["seq"] as? Int } == [4, 5])
    }

    @Test("the fixture pipeline history appends with its times, actors and payloads intact")
    func fixture() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        let text = try String(contentsOf: CLI.packageRoot.appendingPathComponent("Fixtures/pipeline-events.jsonl"), encoding: .utf8)
        let r = try await cli.run(["append", "--json"], input: text)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try jsonObject(r.stdout)["count"] as? Int == 12)
        let failed = try await cli.run(["log", "--json", "--type", "run.failed", "--since", "2026-11-03T02:01:00Z"])
        let event = try jsonObject(try #require(failed.lines.first))
        #expect(event["seq"] as? Int == 12)
        #expect(event["time"] as? String == "2026-11-03T02:01:10.020000Z")
        #expect((event["payload"] as? [String: Any])?["failed_tasks"] as? [String] == ["join_customers", "validate_orders"])
        #expect(try await cli.run(["log", "--json", "--until", "2026-11-03T02:00:01Z"]).lines.count == 4)
        #expect(try await cli.run(["log", "--since", "not a time"]).status != 0)
    }

    @Test("a batch with a bad line appends nothing and names the line")
    func badLines() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        try await cli.run(["append"], input: eventLine() + "\n")
        let cases: [(String, String)] = [
            ("{not json", "line 3: malformed JSON"),
            (#"{"type":"t","stream":"s"}"#, #"line 3: missing field "payload""#),
            (#"{"type":"t","stream":"s","payload":{},"colour":"red"}"#, #"line 3: unknown field "colour""#),
            (#"{"type":7,"stream":"s","payload":{}}"#, #"line 3: field "type" must be a string"#),
            (#"{"type":"t","stream":"s","payload":{},"time":"yesterday"}"#, #"line 3: field "time" must be an ISO 8601 time"#),
            (#"[1,2]"#, "line 3: expected a JSON object"),
            (#"{"type":"t","stream":"","payload":{}}"#, "line 3: the event's stream is empty"),
        ]
        for (bad, message) in cases {
            let input = [eventLine(), eventLine(), bad, eventLine()].joined(separator: "\n")
            let r = try await cli.run(["append"], input: input)
            #expect(r.status != 0)
            #expect(r.stderr.contains(message), "stderr was: \(r.stderr)")
            #expect(r.stderr.contains("nothing was appended"))
            #expect(try await cli.eventCount() == 1)
        }
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("a directory that is not a ledger gets a clear error and a non-zero exit")
    func notALedger() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try FileManager.default.createDirectory(at: cli.ledger, withIntermediateDirectories: true)
        for args in [["log"], ["verify"], ["stats"], ["append"]] {
            let r = try await cli.run(args, input: eventLine())
            #expect(r.status != 0)
            #expect(r.stderr.contains("is not a Clew ledger"), "\(args): \(r.stderr)")
        }
        let twice = try await cli.run(["init"])
        #expect(twice.status == 0)
        let again = try await cli.run(["init"])
        #expect(again.status != 0 && again.stderr.contains("already holds a Clew ledger"))
    }

    @Test("a read-only ledger can be read and verified but refuses appends, losing nothing")
    func readOnlyDirectory() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        try await cli.run(["append"], input: (0..<3).map { _ in eventLine() }.joined(separator: "\n"))
        let root = getuid() == 0
        if root {
            // Root ignores permissions: run the commands as `nobody`, for whom the ledger is read-only.
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: cli.directory.path)
        } else {
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: cli.ledger.appendingPathComponent("log").path)
        }
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: cli.ledger.appendingPathComponent("log").path) }
        let user: UInt32? = root ? 65534 : nil
        let append = try await cli.run(["append"], input: eventLine(), asUser: user)
        #expect(append.status != 0)
        #expect(append.stderr.contains("permission denied"), "\(append.stderr)")
        let log = try await cli.run(["log", "--json"], asUser: user)
        #expect(log.status == 0, "\(log.stderr)")
        #expect(log.lines.count == 3)
        #expect(try await cli.run(["verify"], asUser: user).status == 0)
        #expect(try await cli.eventCount() == 3)
    }

    @Test("verify exits non-zero and names the seq of a damaged record")
    func verifyNamesSeq() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        let input = (0..<200).map { eventLine(stream: "run/etl/\($0 % 7)", payload: #"{"i":\#($0),"note":"unique-\#($0 * 7919)"}"#) }
        try await cli.run(["append"], input: input.joined(separator: "\n"))
        #expect(try await cli.run(["verify"]).status == 0)
        // Event 77's hash tag, kept beside its block's compressed body, is the first 4 bytes of its leaf
        // hash (which `clew proof` prints): change one of them in the data file.
        let proof = try jsonObject(try await cli.run(["proof", "inclusion", "77", "--json"]).stdout)
        let tag = try #require((proof["leaf_hash"] as? String).flatMap { Hex.bytes(String($0.prefix(8))) })
        let file = cli.ledger.appendingPathComponent("log/data.mdb")
        var bytes = try Data(contentsOf: file)
        let at = try #require(bytes.firstRange(of: Data(tag)))
        #expect(bytes[at.upperBound...].firstRange(of: Data(tag)) == nil, "the tag's bytes are unique in the file")
        bytes[at.lowerBound] ^= 0xff
        try bytes.write(to: file)
        let r = try await cli.run(["verify", "--json"])
        #expect(r.status == 2)
        let report = try jsonObject(r.stdout)
        #expect(report["ok"] as? Bool == false)
        #expect(report["first_bad_seq"] as? Int == 77, "\(r.stdout)")
        let text = try await cli.run(["verify"])
        #expect(text.stdout.contains("first bad seq: 77"))
    }

    @Test("a format 1 ledger is refused with a pointer to migrate; clew migrate converts it, keeping its events")
    func migrate() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/ledger-format1/ledger")
        try FileManager.default.copyItem(at: fixture.standardized, to: cli.ledger)
        let refused = try await cli.run(["log", "--limit", "1"])
        #expect(refused.status != 0 && refused.stderr.contains("clew migrate"), "\(refused.stderr)")
        let keys = cli.directory.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
        #expect(try await cli.run(["keygen", "-o", keys.appendingPathComponent("k").path], ledgerOption: false).status == 0)
        let r = try await cli.run(["migrate", "--json", "--key", keys.appendingPathComponent("k").path])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try jsonObject(r.stdout)
        #expect(report["bridge_seq"] as? Int == 1_203, "\(r.stdout)")
        #expect(try await cli.eventCount() == 1_203)
        let verify = try await cli.run(["verify", "--public-key", keys.appendingPathComponent("k.pub").path])
        #expect(verify.status == 0, "\(verify.stdout)")
        let bridge = try await cli.run(["log", "--type", "ledger.migrated", "--json"])
        #expect(bridge.stdout.contains("5ad16424f54727956caf7a35ad3e5a515e7fd9a163797080494e425d3a1cc38e"), "\(bridge.stdout)")
        let again = try await cli.run(["migrate"])
        #expect(again.status != 0 && again.stderr.contains("nothing to migrate"), "\(again.stderr)")
    }

    @Test("backup copies the ledger; restore verifies the copy, refuses a damaged one (exit 2) and brings a good one back")
    func backupRestore() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        let input = (0..<50).map { eventLine(stream: "run/etl/\($0 % 3)", payload: #"{"i":\#($0)}"#) }
        try await cli.run(["append"], input: input.joined(separator: "\n"))
        let copy = cli.directory.appendingPathComponent("copy")
        let backup = try await cli.run(["backup", copy.path, "--json"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(try jsonObject(backup.stdout)["tree_size"] as? Int == 50)
        let target = cli.directory.appendingPathComponent("restored")
        let restore = try await cli.run(["restore", copy.path, "--ledger", target.path], ledgerOption: false)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(try await cli.run(["verify", "--ledger", target.path], ledgerOption: false).status == 0)
        // One changed byte of the copy's data file (event 17's hash tag): refused, exit status 2, nothing restored.
        let proof = try jsonObject(try await cli.run(["proof", "inclusion", "17", "--json"]).stdout)
        let tag = try #require((proof["leaf_hash"] as? String).flatMap { Hex.bytes(String($0.prefix(8))) })
        let file = copy.appendingPathComponent("log/data.mdb")
        var bytes = try Data(contentsOf: file)
        let at = try #require(bytes.firstRange(of: Data(tag)))
        bytes[at.lowerBound] ^= 0x01
        try bytes.write(to: file)
        let other = cli.directory.appendingPathComponent("other")
        let refused = try await cli.run(["restore", copy.path, "--ledger", other.path], ledgerOption: false)
        #expect(refused.status == 2, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stderr.contains("does not verify"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: other.path))
    }

    @Test("retention removes old payloads but never protected ones, keeps a policy in the ledger, and every proof holds")
    func retention() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        func line(_ type: String, _ time: String, _ i: Int) -> String {
            #"{"type":"\#(type)","stream":"run/etl/\#(i % 2)","actor":"w","time":"\#(time)","payload":{"i":\#(i)}}"#
        }
        let now = ISO8601DateFormatter().string(from: Date())
        let input = (1...5).map { line("task.started", "2026-01-0\($0)T00:00:00Z", $0) } + [
            line("dag.registered", "2026-01-02T00:00:00Z", 6), line("value.consumed", "2026-01-03T00:00:00Z", 7),
            line("task.started", now, 8), line("task.started", now, 9),
        ]
        try await cli.run(["append"], input: input.joined(separator: "\n"))
        let dry = try await cli.run(["retention", "--before", "2026-06-01T00:00:00Z", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(try jsonObject(dry.stdout)["events"] as? [Int] == [1, 2, 3, 4, 5], "\(dry.stdout)")
        let done = try await cli.run(["retention", "--before", "2026-06-01T00:00:00Z"])
        #expect(done.status == 0 && done.stdout.contains("removed the payloads of 5 event(s)"), "\(done.stdout)\(done.stderr)")
        let verify = try jsonObject(try await cli.run(["verify", "--json"]).stdout)
        #expect(verify["ok"] as? Bool == true && verify["erased_payloads"] as? Int == 5, "\(verify)")
        let kept = try await cli.run(["log", "--from", "6", "--to", "9", "--json"])
        #expect(kept.lines.count == 4 && !kept.stdout.contains("payload_erased"), "\(kept.stdout)")
        // A policy is saved in the ledger and applied again by a bare `clew retention`.
        let policy = try await cli.run(["retention", "--keep-days", "30", "--type", "task.started"])
        #expect(policy.status == 0 && policy.stdout.contains("no payloads"), "\(policy.stdout)\(policy.stderr)")
        #expect(FileManager.default.fileExists(atPath: cli.ledger.appendingPathComponent("retention.json").path))
        #expect(try await cli.run(["retention"]).status == 0)
        let protected = try await cli.run(["retention", "--before", "2026-06-01T00:00:00Z", "--type", "dag.registered"])
        #expect(protected.status != 0 && protected.stderr.contains("protected"), "\(protected.stderr)")
        let bad = try await cli.run(["retention", "--before", "last tuesday"])
        #expect(bad.status != 0 && bad.stderr.contains("ISO 8601"), "\(bad.stderr)")
    }

    @Test("an appending process killed at random points loses no acknowledged event (50 runs)")
    func killNine() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        var rng = SystemRandomNumberGenerator()
        var acknowledgedTotal = 0
        var killedMidway = 0
        for iteration in 0..<50 {
            let before = try await cli.eventCount()
            let stream = "crash/\(iteration)"
            let input = (0..<600).map { eventLine(type: "crash.test", stream: stream, payload: #"{"i":\#($0)}"#) }.joined(separator: "\n")
            let (process, out, _) = try cli.start(["append", "--json", "--commit-every", "25"], input: input)
            // Half the kills land at a random time from the start (often before any commit), half at a
            // random time after the first acknowledged commit, so that load on the machine cannot make
            // every kill land before the first commit.
            if iteration % 2 == 1 {
                try await CLI.waitUntil("the first acknowledged commit") {
                    !process.isRunning || ((try? String(contentsOf: out, encoding: .utf8)) ?? "").contains("\n")
                }
            }
            try await Task.sleep(for: .microseconds(Int.random(in: 0...(iteration % 2 == 1 ? 40_000 : 120_000), using: &rng)))
            kill(process.processIdentifier, SIGKILL)
            await CLI.exit(of: process)
            if process.terminationReason == .uncaughtSignal { killedMidway += 1 }
            // Acknowledged ranges: complete lines only (a kill can cut the last one).
            let text = try String(contentsOf: out, encoding: .utf8)
            var acknowledged = 0
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                guard let ack = try? jsonObject(String(line)), let last = ack["last"] as? Int else { continue }
                acknowledged = max(acknowledged, last - before)
            }
            acknowledgedTotal += acknowledged
            let log = try await cli.run(["log", "--json", "--stream", stream])
            #expect(log.status == 0, "\(log.stderr)")
            let events = log.lines.compactMap { try? jsonObject($0) }
            #expect(events.count >= acknowledged, "iteration \(iteration): \(acknowledged) acknowledged, \(events.count) present")
            #expect(events.count % 25 == 0, "only whole commits are visible")
            for (i, e) in events.enumerated() {
                #expect(e["seq"] as? Int == before + i + 1)
                #expect((e["payload"] as? [String: Any])?["i"] as? Int == i)
            }
            #expect(try await cli.eventCount() == before + events.count)
        }
        let verify = try await cli.run(["verify"])
        #expect(verify.status == 0, "\(verify.stdout)")
        #expect(killedMidway > 10, "most runs should be killed before finishing")
        #expect(acknowledgedTotal > 0)
    }

    @Test("tail -f prints events appended by another process")
    func tailFollow() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        try await cli.run(["append"], input: eventLine())
        let (tail, out, _) = try cli.start(["tail", "-f", "-n", "1", "--json"])
        defer { tail.terminate() }
        func printed() throws -> [String] {
            try String(contentsOf: out, encoding: .utf8).split(separator: "\n").map(String.init)
        }
        // tail prints the last event once it is following; append only then.
        try await CLI.waitUntil("tail to print the last event") { try printed().count >= 1 }
        try await cli.run(["append"], input: [eventLine(type: "a.one"), eventLine(type: "a.two")].joined(separator: "\n"))
        try await cli.run(["append"], input: eventLine(type: "a.three"))
        try await CLI.waitUntil("tail to print the three new events") { try printed().count >= 4 }
        let lines = try printed()
        #expect(lines.compactMap { try? jsonObject($0)["type"] as? String } == ["task.started", "a.one", "a.two", "a.three"])
    }

    @Test("proofs print as JSON that an independent verifier (Python, RFC 9162) accepts")
    func proofs() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        try await cli.run(["append"], input: (0..<37).map { eventLine(payload: #"{"i":\#($0)}"#) }.joined(separator: "\n"))
        let inclusion = try await cli.run(["proof", "inclusion", "23", "--json"])
        #expect(inclusion.status == 0)
        let p = try jsonObject(inclusion.stdout)
        #expect(p["tree_size"] as? Int == 37 && p["leaf_index"] as? Int == 22)
        let consistency = try await cli.run(["proof", "consistency", "11", "37", "--json"])
        #expect(consistency.status == 0)
        #expect(try await cli.run(["proof", "inclusion", "99"]).status != 0)
        #expect(try await cli.run(["proof", "consistency", "30", "20"]).status != 0)
        for proof in [inclusion.stdout, consistency.stdout] {
            let py = Process()
            py.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            py.arguments = ["python3", CLI.packageRoot.appendingPathComponent("tools/verify_proof.py").path]
            let stdin = Pipe()
            let stdout = Pipe()
            py.standardInput = stdin
            py.standardOutput = stdout
            try py.run()
            stdin.fileHandleForWriting.write(Data(proof.utf8))
            try stdin.fileHandleForWriting.close()
            let text = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            await CLI.exit(of: py)
            #expect(py.terminationStatus == 0 && text.contains("ok"), "\(text)")
        }
    }

    @Test("checkpoints are signed with a key kept outside the ledger and checked by verify")
    func checkpoints() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await cli.run(["init"])
        try await cli.run(["append"], input: (0..<10).map { _ in eventLine() }.joined(separator: "\n"))
        let key = cli.directory.appendingPathComponent("signing.key").path
        #expect(try await cli.run(["keygen", "-o", key], ledgerOption: false).status == 0)
        let inside = cli.ledger.appendingPathComponent("inner.key").path
        try await cli.run(["keygen", "-o", inside], ledgerOption: false)
        let refused = try await cli.run(["checkpoint", "--key", inside])
        #expect(refused.status != 0 && refused.stderr.contains("inside the ledger directory"))
        let c = try await cli.run(["checkpoint", "--key", key, "--json"])
        #expect(c.status == 0)
        #expect(try jsonObject(c.stdout)["tree_size"] as? Int == 10)
        #expect(try await cli.run(["verify", "--public-key", key + ".pub"]).status == 0)
        let other = cli.directory.appendingPathComponent("other.key").path
        try await cli.run(["keygen", "-o", other], ledgerOption: false)
        let untrusted = try await cli.run(["verify", "--public-key", other + ".pub"])
        #expect(untrusted.status == 2)
        #expect(untrusted.stdout.contains("not the trusted key"))
    }

    @Test("demo runs the four demo pipelines into a verified ledger; bench prints ratios to raw LMDB")
    func demoAndBench() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let demo = try await cli.run(["demo", "--days", "1", "--batches", "7", "--json"])
        #expect(demo.status == 0, "\(demo.stderr)")
        let summary = try jsonObject(demo.stdout)
        #expect(summary["verified"] as? Bool == true)
        let runs = try #require(summary["runs"] as? [String: [String: String]])
        #expect(Set(runs.keys) == ["sensor_rollup", "csv_orders", "shard_etl", "numeric_flow"])
        #expect(runs["shard_etl"]?.values.first == "succeeded")  // failed, then recovered by resubmit
        #expect(runs["numeric_flow"]?.count == 7)
        #expect(FileManager.default.fileExists(atPath: cli.ledger.path + ".key"))
        #expect(try await cli.run(["log", "--type", "run.resubmitted", "--json"]).lines.count == 1)
        let again = try await cli.run(["demo", "--days", "1", "--batches", "1", "--json"])
        #expect(try await jsonObject(again.stdout)["checkpoint_size"] as? Int == (try cli.eventCount()))

        let bench = try await cli.run(["bench", "ledger", "--events", "3000", "--repetitions", "1", "--json"], ledgerOption: false)
        #expect(bench.status == 0, "\(bench.stderr)")
        let figures = try jsonObject(bench.stdout)
        for key in ["append_eps", "raw_append_eps", "append_ratio", "append_cpu_us_per_event", "durable_single_p50_us", "raw_commit_p50_us", "read_by_seq_us_p50", "scan_eps", "raw_scan_eps", "scan_ratio", "decompress_eps", "decompress_ratio", "bytes_per_event", "jsonl_bytes_per_event"] {
            #expect((figures[key] as? Double ?? 0) > 0, "\(key)")
        }
        // Every commit holds at least one batch, and no more than the appenders (2 by default) have waiting.
        let perCommit = figures["batches_per_commit"] as? Double ?? 0
        #expect(perCommit >= 1 && perCommit <= 2, "batches_per_commit \(perCommit)")
        // The writer's time is measured, and it cannot be busy for longer than the appends took.
        #expect((figures["writer_body_us_per_event"] as? Double ?? 0) > 0 && (figures["writer_commit_us_per_event"] as? Double ?? 0) > 0)
        let busy = figures["writer_busy"] as? Double ?? 0
        #expect(busy > 0 && busy <= 1, "writer_busy \(busy)")
        // The views benchmark, catch-up included: it runs this very binary as the other appending process.
        let views = try await cli.run(
            ["bench", "views", "--events", "2000", "--repetitions", "1", "--work-dir", cli.directory.path, "--json"], ledgerOption: false)
        #expect(views.status == 0, "\(views.stderr)")
        let viewFigures = try jsonObject(views.stdout)
        for key in ["rebuild_ratio", "views_bytes_ratio", "rebuild_heap_mb", "catchup_ms", "chunk_status_query_ms"] {
            #expect((viewFigures[key] as? Double ?? 0) > 0, "\(key): \(views.stdout)")
        }
        // A rebuild writes every byte of the views it packs at least once, and more: each commit writes
        // every page it touched.
        let events = Double(viewFigures["events"] as? Int ?? 0)
        let written = viewFigures["rebuild_written_bytes_per_event"] as? Double ?? 0
        #expect(events > 0 && written * events >= Double(viewFigures["view_bytes"] as? Int ?? .max), "\(views.stdout)")
        let asOf = viewFigures["as_of_query_ms"] as? [String: Any] ?? [:]
        for key in ["chunk_status_p50", "runs_p50", "run_p50", "lineage_p50"] {
            #expect((asOf[key] as? Double ?? 0) > 0, "as_of_query_ms \(key): \(views.stdout)")
        }
        // A status query on one dataset of many chunks (3,000 here), live and as of past seqs.
        let chunks = try await cli.run(
            ["bench", "chunks", "--chunks", "3000", "--queries", "20", "--work-dir", cli.directory.path, "--json"], ledgerOption: false)
        #expect(chunks.status == 0, "\(chunks.stderr)")
        let chunkFigures = try jsonObject(chunks.stdout)
        #expect(chunkFigures["chunks"] as? Int == 3000, "\(chunks.stdout)")
        #expect(chunkFigures["events"] as? Int == 6001, "\(chunks.stdout)")
        for key in ["chunk_status_query_ms", "as_of_chunk_status_ms", "rebuild_eps", "chunks_view_bytes_per_chunk"] {
            #expect((chunkFigures[key] as? Double ?? 0) > 0, "\(key): \(chunks.stdout)")
        }
        let tooFew = try await cli.run(["bench", "chunks", "--chunks", "5"], ledgerOption: false)
        #expect(tooFew.status != 0 && tooFew.stderr.contains("--chunks must be at least 100"), "\(tooFew.stderr)")
        let engine = try await cli.run(["bench", "engine", "--tasks", "500", "--repetitions", "1", "--json"], ledgerOption: false)
        #expect(engine.status == 0, "\(engine.stderr)")
        let e = try jsonObject(engine.stdout)
        for key in ["tasks_per_s", "events_per_task", "ledger_append_eps", "engine_ratio"] {
            #expect((e[key] as? Double ?? 0) > 0, "\(key)")
        }
        #expect((3.0..<3.1).contains(e["events_per_task"] as? Double ?? 0))
    }
}

@Suite("Engine CLI")
struct EngineCLITests {
    static let fixtures = CLI.packageRoot.appendingPathComponent("Fixtures/pipelines")

    @Test("clew run FILE runs a pipeline of scripts, prints the run id; dags lists it; backfill and scheduler run partitions")
    func runPipelineFile() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let file = Self.fixtures.appendingPathComponent("orders.yaml").path
        let run = try await cli.run(["run", file, "--partition", "2026-11-01"])
        #expect(run.status == 0, "\(run.stderr)")
        let runID = try #require(run.lines.first)
        #expect(runID.hasPrefix("manual__"))
        #expect(run.stderr.contains("succeeded (3 succeeded)"))
        let events = try await cli.run(["log", "--stream", "run/orders_csv/\(runID)", "--json"]).lines.map(jsonObject)
        #expect(events.map { $0["type"] as? String }.last == "run.succeeded")
        let answered = events.filter { $0["type"] as? String == "question.answered" }
        #expect(answered.count == 2)

        let dags = try await cli.run(["dags", "--pipelines", Self.fixtures.path, "--json"], ledgerOption: false)
        let names = try #require(try JSONSerialization.jsonObject(with: Data(dags.stdout.utf8)) as? [[String: Any]]).compactMap { $0["dag"] as? String }
        #expect(names == ["csv_orders", "numeric_flow", "orders_csv", "sensor_rollup", "shard_etl"])

        let backfill = try await cli.run(["backfill", "orders_csv", "--pipelines", Self.fixtures.path, "--from", "2026-11-02", "--to", "2026-11-04"])
        #expect(backfill.status == 0, "\(backfill.stderr)")
        #expect(backfill.lines == ["backfill__2026-11-02T00:00:00Z", "backfill__2026-11-03T00:00:00Z"])
        // Without catch-up the scheduler runs the latest finished day once, and nothing the second time.
        let once = try await cli.run(["scheduler", "--once", "--pipelines", Self.fixtures.path])
        #expect(once.status == 0, "\(once.stderr)")
        #expect(once.lines.count == 1 && once.lines.first?.hasPrefix("scheduled__") == true, "\(once.stdout)")
        let twice = try await cli.run(["scheduler", "--once", "--pipelines", Self.fixtures.path])
        #expect(twice.status == 0 && twice.lines.isEmpty, "\(twice.stdout)")
        #expect(twice.stderr.contains("1 scheduled DAGs: orders_csv (@daily)"))
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("a failed run exits 3 and resubmit finishes it; bad pipeline files and params exit 1 naming the problem")
    func failuresAndBadInput() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let flag = cli.directory.appendingPathComponent("broken")
        _ = FileManager.default.createFile(atPath: flag.path, contents: Data())
        let file = cli.directory.appendingPathComponent("flaky.yaml")
        try """
        dag: flaky
        tasks:
          first: {run: /bin/true}
          second:
            after: first
            run: /bin/sh -c 'if [ -e \(flag.path) ]; then echo "upstream not ready" >&2; exit 4; fi'
        """.write(to: file, atomically: true, encoding: .utf8)
        let failed = try await cli.run(["run", file.path, "--run-id", "r1"])
        #expect(failed.status == 3)
        #expect(failed.stderr.contains("second: exit code 4: upstream not ready"))
        try FileManager.default.removeItem(at: flag)
        let resubmit = try await cli.run(["resubmit", file.path, "r1"])
        #expect(resubmit.status == 0, "\(resubmit.stderr)")
        #expect(resubmit.lines == ["r1"])
        let again = try await cli.run(["resubmit", file.path, "r1"])
        #expect(again.status == 1 && again.stderr.contains("succeeded; there is nothing to resubmit"))

        let before = try await cli.eventCount()
        let bad = cli.directory.appendingPathComponent("bad.yaml")
        try "dag: bad\ntasks:\n  a: {run: /bin/true, after: b}\n  b: {run: /bin/true, after: a}\n".write(to: bad, atomically: true, encoding: .utf8)
        let cyc = try await cli.run(["run", bad.path])
        #expect(cyc.status == 1 && cyc.stderr.contains("\(bad.path):1: the tasks form a cycle"))
        let unknown = try await cli.run(["run", "no_such_dag"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no DAG named 'no_such_dag'"))
        let param = try await cli.run(["run", "csv_orders", "--param", "oops"])
        #expect(param.status != 0 && param.stderr.contains("name=value"))
        // A param the DAG does not declare (a misspelling) is refused, as the API refuses it.
        let undeclared = try await cli.run(["run", "csv_orders", "--param", "rows=10", "--param", "colour=red"])
        #expect(undeclared.status == 1, "\(undeclared.stdout)")
        #expect(undeclared.stderr.contains("params: colour not declared by DAG 'csv_orders' (declared: "), "\(undeclared.stderr)")

        let partition = try await cli.run(["backfill", "sensor_rollup", "--from", "yesterday", "--to", "2026-11-02"])
        #expect(partition.status == 1 && partition.stderr.contains("--from 'yesterday'"))
        // Times the parser once trapped on (found by the fuzzer): refused by name.
        for bad in ["T", "999999999999999-01-01"] {
            let refused = try await cli.run(["run", "csv_orders", "--partition", bad])
            #expect(refused.status == 1 && refused.stderr.contains("--partition '\(bad)' is not a UTC time"), "\(refused.stderr)")
        }
        let farTime = try await cli.run(["append"], input: #"{"type":"note.added","stream":"notes","time":"20E6-01-01T00:00:00Z","payload":{}}"#)
        #expect(farTime.status != 0 && farTime.stderr.contains("\"time\" must be an ISO 8601 time"), "\(farTime.stderr)")
        #expect(try await cli.eventCount() == before)  // nothing recorded by bad input
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("Ctrl-C cancels a running pipeline: the command is killed and run.cancelled is recorded")
    func interrupt() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let file = cli.directory.appendingPathComponent("slow.yaml")
        try "dag: slow\ntasks:\n  wait: {run: /bin/sleep 60}\n".write(to: file, atomically: true, encoding: .utf8)
        let (process, _, _) = try cli.start(["run", file.path, "--run-id", "s1"])
        // Interrupt once the command task is running (its task.started is durable), not after a guessed delay.
        try await CLI.waitUntil("the sleep task to start") {
            try await cli.run(["log", "--stream", "run/slow/s1", "--type", "task.started", "--json"]).lines.count == 1
        }
        kill(process.processIdentifier, SIGINT)
        await CLI.exit(of: process)
        #expect(process.terminationStatus == 130)
        let last = try await cli.run(["log", "--stream", "run/slow/s1", "--json"]).lines.last.map(jsonObject)
        #expect(last?["type"] as? String == "run.cancelled")
    }
}
