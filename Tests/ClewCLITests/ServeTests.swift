import AsyncHTTPClient
import CompressNIO
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import Testing

/// `clew serve` as a user runs it: a real server process on loopback, driven over HTTP.
struct Server {
    let cli: CLI
    let process: Process
    let port: Int
    let adminToken: String
    let stdout: URL
    let stderr: URL

    var base: String { "http://127.0.0.1:\(port)" }

    static func start(_ cli: CLI, extra: [String] = [], environment: [String: String] = [:]) async throws -> Server {
        // No spec option: the server validates with the copy built into the binary, whatever its directory.
        let (process, out, err) = try cli.start(["serve", "--port", "0"] + extra, environment: environment)
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://127.0.0.1:") }),
               let port = Int(line.split(separator: ":").last ?? "") {
                let errText = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
                let token = errText.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix("clew_") }.map(String.init) ?? ""
                return Server(cli: cli, process: process, port: port, adminToken: token, stdout: out, stderr: err)
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw CLIFailure("clew serve did not start: \((try? String(contentsOf: err, encoding: .utf8)) ?? "")")
    }

    /// Stops the server and waits for it to exit.
    func stop() async throws {
        process.terminate()
        try await CLI.wait(for: process, args: ["serve"], limit: .seconds(60))
    }

    /// Asks the server to stop without waiting (for `defer`, which cannot await).
    func terminate() { if process.isRunning { process.terminate() } }

    /// Loads `pages` (tools/browser_check.py's spec) in headless Chromium as `token`'s holder: its report,
    /// and whether every check held.
    func browse(_ pages: [[String: Any]], token: String) async throws -> (ok: Bool, report: String) {
        let file = cli.directory.appendingPathComponent("pages-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: pages).write(to: file)
        let check = try await Program.run("/usr/bin/python3", [CLI.packageRoot.appendingPathComponent("tools/browser_check.py").path, base, token, file.path], in: cli.directory)
        return (check.status == 0, check.output)
    }

    struct Reply {
        var status: Int
        var body: String
        var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var array: [[String: Any]] { json as? [[String: Any]] ?? [] }
        var message: String { (object["error"] as? [String: Any])?["message"] as? String ?? "" }
    }

    func call(_ method: HTTPMethod, _ path: String, token: String?, body: String? = nil, gzip: Bool = false, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            var buffer = ByteBuffer(string: body)
            if gzip {
                buffer = try buffer.compress(with: .gzip())
                request.headers.add(name: "Content-Encoding", value: "gzip")
            }
            request.body = .bytes(buffer)
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), body: String(buffer: bytes))
    }

    func get(_ path: String, token: String?) async throws -> Reply { try await call(.GET, path, token: token) }
    func post(_ path: String, token: String?, _ body: String, gzip: Bool = false) async throws -> Reply { try await call(.POST, path, token: token, body: body, gzip: gzip) }

    /// Polls a run until it leaves queued/running.
    func waitForRun(_ dag: String, _ run: String, token: String, limit: TimeInterval = 120) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(limit)
        while Date() < deadline {
            let r = try await get("/api/runs/\(dag)/\(run)", token: token)
            if r.status == 200, let state = (r.object["run"] as? [String: Any])?["state"] as? String, !["queued", "running", "resubmitted"].contains(state),
               r.object["active"] as? Bool == false {
                return r.object
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIFailure("run \(run) of \(dag) did not end within \(Int(limit)) s")
    }

    func mint(_ name: String, _ role: String) async throws -> String {
        let r = try await post("/api/tokens", token: adminToken, #"{"name":"\#(name)","role":"\#(role)"}"#)
        #expect(r.status == 201, "\(r.body)")
        return r.object["token"] as? String ?? ""
    }
}

/// A callback endpoint on loopback that fails the first `failures` posts with 500.
actor CallbackReceiver {
    private(set) var bodies: [String] = []
    private(set) var attempts = 0
    let failures: Int
    init(failures: Int) { self.failures = failures }

    func receive(_ body: String) -> Bool {
        attempts += 1
        bodies.append(body)
        return attempts > failures
    }

    static func start(failures: Int) async throws -> (CallbackReceiver, Int, Task<Void, any Error>) {
        let receiver = CallbackReceiver(failures: failures)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            let ok = await receiver.receive(String(buffer: body))
            return Response(status: ok ? .ok : .internalServerError)
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let task = Task { try await app.runService() }
        var port = 0
        for await p in stream {
            port = p
            break
        }
        return (receiver, port, task)
    }
}

@Suite("clew serve", .serialized)
struct ServeTests {
    @Test("API on loopback: roles, trigger with callback retries, cancel, live stream, forensics, malformed input, audit, and every dashboard page in headless Chromium")
    func apiAndDashboard() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let (_, batches) = try await ForensicsCLITests.demo(cli)
        let pipelines = cli.directory.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        try "dag: slow_wait\ndescription: waits so that a run can be cancelled\ntasks:\n  wait:\n    run: /bin/sleep 60\n".write(
            to: pipelines.appendingPathComponent("slow.yaml"), atomically: true, encoding: .utf8)
        let server = try await Server.start(cli, extra: ["--callback-attempts", "3", "--callback-delay-ms", "50", "--pipelines", pipelines.path])
        defer { server.terminate() }
        #expect(server.adminToken.hasPrefix("clew_"), "the bootstrap admin token is printed on stderr")

        // Authentication and roles.
        let anonymous = try await server.get("/api/runs", token: nil)
        #expect(anonymous.status == 401 && anonymous.message.contains("bearer token"), "\(anonymous.body)")
        let forged = try await server.get("/api/runs", token: "clew_00000000_nope")
        #expect(forged.status == 401 && forged.message.contains("unknown or revoked"))
        let viewer = try await server.mint("portal", "viewer")
        let operatorToken = try await server.mint("scheduler", "operator")
        #expect(try await server.get("/api/runs", token: viewer).array.count >= 10)
        let denied = try await server.post("/api/runs", token: viewer, #"{"dag":"numeric_flow"}"#)
        #expect(denied.status == 403 && denied.message.contains("role viewer"), "\(denied.body)")
        #expect(try await server.post("/api/tokens", token: operatorToken, #"{"name":"x","role":"admin"}"#).status == 403)
        #expect(try await server.get("/api/tokens", token: viewer).status == 403)
        #expect(try await server.get("/api/audit", token: operatorToken).status == 403)

        // Trigger with a callback that fails twice: three posts, then recorded as delivered.
        let (receiver, hookPort, hookTask) = try await CallbackReceiver.start(failures: 2)
        defer { hookTask.cancel() }
        let trigger = try await server.post(
            "/api/runs", token: operatorToken, #"{"dag":"numeric_flow","params":{"batch":"3"},"callback_url":"http://127.0.0.1:\#(hookPort)/hook?secret=abc"}"#)
        #expect(trigger.status == 202, "\(trigger.body)")
        let runID = try #require(trigger.object["run"] as? String)
        let done = try await server.waitForRun("numeric_flow", runID, token: viewer)
        #expect((done["run"] as? [String: Any])?["state"] as? String == "succeeded")
        #expect((done["tasks"] as? [[String: Any]])?.count ?? 0 >= 5)
        try await CLI.waitUntil("three callback posts") { await receiver.attempts >= 3 }
        #expect(await receiver.attempts == 3, "the callback is retried until it succeeds")
        let hook = try jsonObject(await receiver.bodies.last ?? "{}")
        #expect(hook["run"] as? String == runID && hook["status"] as? String == "succeeded")
        var callbackEvent: [String: Any]?
        try await CLI.waitUntil("run.callback to be recorded") {
            let log = try await cli.run(["log", "--type", "run.callback", "--json"])
            callbackEvent = log.lines.compactMap { try? jsonObject($0) }.last?["payload"] as? [String: Any]
            return callbackEvent != nil
        }
        #expect(callbackEvent?["attempts"] as? Int == 3 && callbackEvent?["delivered"] as? Bool == true)
        #expect((callbackEvent?["url"] as? String)?.contains("secret") == false, "the callback URL is recorded without its query")

        // Live stream: a run's task changes arrive as server-sent events.
        // The stream starts after the log's current end, so it sees the run however late it connects.
        let streamFrom = try await cli.eventCount()
        let live = Task { () -> String in
            var request = HTTPClientRequest(url: server.base + "/api/stream?dag=numeric_flow&after=\(streamFrom)")
            request.headers.add(name: "Authorization", value: "Bearer \(viewer)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
            var text = ""
            for try await chunk in response.body {
                text += String(buffer: chunk)
                if text.contains("event: run") && text.contains("\"state\":\"succeeded\"") && text.contains("\"type\":\"run.succeeded\"") { break }
            }
            return text
        }
        let second = try await server.post("/api/runs", token: operatorToken, #"{"dag":"numeric_flow","params":{"batch":"4"}}"#)
        _ = try await server.waitForRun("numeric_flow", try #require(second.object["run"] as? String), token: viewer)
        let streamed = try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { try await live.value }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            live.cancel()
            return first
        }
        #expect(streamed?.contains("id: ") == true && streamed?.contains("\"task\":\"convert_units\"") == true, "\(streamed ?? "no stream")")

        // Cancel a run in flight.
        let slow = try await server.post("/api/runs", token: operatorToken, #"{"dag":"slow_wait"}"#)
        let slowID = try #require(slow.object["run"] as? String)
        try await CLI.waitUntil("slow_wait's command task to be running") {
            let r = try await server.get("/api/runs/slow_wait/\(slowID)", token: viewer)
            return (r.object["tasks"] as? [[String: Any]])?.contains { $0["state"] as? String == "running" } == true
        }
        let cancel = try await server.post("/api/runs/slow_wait/\(slowID)/cancel", token: operatorToken, "{}")
        #expect(cancel.status == 202, "\(cancel.body)")
        let cancelled = try await server.waitForRun("slow_wait", slowID, token: viewer, limit: 30)
        #expect((cancelled["run"] as? [String: Any])?["state"] as? String == "cancelled")
        #expect(try await server.post("/api/runs/slow_wait/\(slowID)/cancel", token: operatorToken, "{}").status == 409)

        // Forensics over HTTP.
        let batch7 = try #require(batches[7])
        let culprit = try await server.get("/api/culprit?node=run:numeric_flow/\(batch7)", token: viewer)
        #expect(((culprit.object["culprit"] as? [String: Any])?["detail"] as? String)?.contains("factor") == true, "\(culprit.body.prefix(400))")
        let search = try await server.get("/api/search/tasks?var=factor%3C0.001", token: viewer)
        #expect(search.array.contains { $0["run"] as? String == batch7 }, "\(search.body.prefix(300))")
        let values = try await server.get("/api/values?name=factor&max=0.0005", token: viewer)
        #expect(values.array.count == 1)
        let trace = try await server.get("/api/lineage?node=run:numeric_flow/\(batch7)&direction=up", token: viewer)
        #expect((trace.object["edges"] as? [Any])?.isEmpty == false)
        let shardRun = try #require(try await server.get("/api/runs?dag=shard_etl", token: viewer).array.first?["run"] as? String)
        let datasets = try await server.get("/api/datasets", token: viewer).array.compactMap { $0["name"] as? String }
        #expect(!datasets.isEmpty)
        let marquez = try await server.get("/api/v1/lineage?nodeId=dataset:clew:\(datasets[0])&depth=3", token: viewer)
        #expect(marquez.status == 200 && ((marquez.object["graph"] as? [[String: Any]])?.count ?? 0) >= 2, "\(marquez.body.prefix(300))")
        let verify = try await server.post("/api/verify", token: viewer, "{}")
        #expect(((verify.object["report"] as? [String: Any])?["problems"] as? [Any])?.isEmpty == true, "\(verify.body.prefix(300))")
        #expect(try await server.get("/api/runs/shard_etl/\(shardRun)", token: viewer).status == 200)

        // Malformed and unknown input: 4xx naming what was wrong, nothing recorded.
        let before = try await cli.eventCount()
        let cases: [(String, String, Int, String)] = [
            ("/api/runs", "{", 400, "not valid JSON"),
            ("/api/runs", #"{"params":{}}"#, 400, "missing field 'dag'"),
            ("/api/runs", #"{"dag":"nope"}"#, 404, "no DAG named 'nope'"),
            ("/api/runs", #"{"dag":"numeric_flow","params":{"colour":"red"}}"#, 400, "colour not declared"),
            ("/api/runs", #"{"dag":"numeric_flow","callback_url":"ftp://x"}"#, 400, "callback_url"),
            ("/api/runs", #"{"dag":5}"#, 400, "'dag' has the wrong type"),
            ("/api/tokens", #"{"name":"x","role":"root"}"#, 400, "'role' must be"),
        ]
        for (path, body, status, text) in cases {
            let token = path == "/api/tokens" ? server.adminToken : operatorToken
            let r = try await server.post(path, token: token, body)
            #expect(r.status == status && r.message.contains(text), "\(path) \(body): \(r.status) \(r.body)")
        }
        for (path, status, text) in [
            ("/api/chunks", 400, "'dataset' is required"), ("/api/lineage?node=run:nope/x", 404, "no lineage node"),
            ("/api/runs?limit=abc", 400, "'limit' must be an integer"), ("/api/lineage?node=x&direction=sideways", 400, "up or down"),
            ("/api/runs/numeric_flow/nope", 404, "no run 'nope'"),
        ] {
            let r = try await server.get(path, token: viewer)
            #expect(r.status == status && r.message.contains(text), "\(path): \(r.status) \(r.body)")
        }
        let gzipJunk = try await server.call(.POST, "/api/runs", token: operatorToken, body: "not gzip", headers: [("Content-Encoding", "gzip")])
        #expect(gzipJunk.status == 400 && gzipJunk.message.contains("gzip"))
        // Only audit events were added by the refused calls.
        let added = try await cli.run(["log", "--json"]).lines.compactMap { try? jsonObject($0) }.filter { ($0["seq"] as? Int ?? 0) > before }
        #expect(added.allSatisfy { $0["type"] as? String == "audit.recorded" }, "\(added.map { $0["type"] ?? "?" })")

        // Audit: who, from where, what — refusals included.
        let audit = try await server.get("/api/audit?limit=500", token: server.adminToken).array.compactMap { $0["entry"] as? [String: Any] }
        #expect(audit.contains { $0["action"] as? String == "run.trigger" && $0["outcome"] as? String == "ok" && $0["name"] as? String == "scheduler" && $0["from"] as? String == "127.0.0.1" })
        #expect(audit.contains { $0["action"] as? String == "run.trigger" && $0["outcome"] as? String == "denied" && $0["name"] as? String == "portal" })
        #expect(audit.contains { $0["action"] as? String == "run.cancel" && $0["target"] as? String == "slow_wait/\(slowID)" })

        // No secret in any response: token lists show ids and roles only.
        let listed = try await server.get("/api/tokens", token: server.adminToken)
        for secret in [server.adminToken, viewer, operatorToken] {
            #expect(!listed.body.contains(secret) && !listed.body.contains(String(secret.suffix(20))))
        }
        #expect(!listed.body.contains("sha256"))

        // Every dashboard page in headless Chromium: content from the DOM, no console errors.
        let sensor = datasets.first { $0.contains("minute") || $0.contains("reading") } ?? datasets[0]
        let spec: [[String: Any]] = [
            ["path": "/", "count": ["#recent-runs tbody tr": 5, "#health-chart[data-drawn]": 1], "text": ["#window-day": "succeeded"], "absent": [server.adminToken]],
            ["path": "/dags", "count": ["#dag-list tbody tr": 5], "text": ["#dag-list": "numeric_flow"]],
            ["path": "/dags/numeric_flow", "count": ["#dag-runs tbody tr": 8], "missing": ["#trigger-form"]],
            ["path": "/runs/numeric_flow/\(batch7)", "count": ["#run-graph svg g.node": 5, "#gantt-chart[data-drawn]": 1, "#durations-chart[data-drawn]": 1, "#run-tasks tbody tr": 5],
             "text": ["#run-state": "succeeded"]],
            ["path": "/chunks?dataset=\(sensor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? sensor)", "count": ["#chunk-grid .cell[data-status]": 1, "#chunk-counts .state": 1]],
            ["path": "/lineage?node=run:numeric_flow/\(batch7)&up=1&down=2", "count": ["#lineage-graph svg g.node": 3, "#lineage-edges tbody tr": 2, "#expand-up": 1]],
            ["path": "/search?name=factor&cond=%3C0.001", "count": ["#value-hits tbody tr": 1], "text": ["#value-hits": "0.0001"]],
            ["path": "/replay/numeric_flow/\(batch7)?i=2", "count": ["#scope tbody tr": 1, "#attempts li": 3], "text": ["#step-title": "step"]],
            ["path": "/integrity", "count": ["#checkpoints tbody tr": 1, "#views tbody tr": 3]],
            ["path": "/", "login": true, "text": [".who span": "portal"]],
        ]
        let specFile = cli.directory.appendingPathComponent("pages.json")
        try JSONSerialization.data(withJSONObject: spec).write(to: specFile)
        let pages = Process()
        pages.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        pages.arguments = [CLI.packageRoot.appendingPathComponent("tools/browser_check.py").path, server.base, viewer, specFile.path]
        let pagesOut = cli.directory.appendingPathComponent("pages.out")
        _ = FileManager.default.createFile(atPath: pagesOut.path, contents: nil)
        pages.standardOutput = try FileHandle(forWritingTo: pagesOut)
        pages.standardError = pages.standardOutput
        try pages.run()
        try await CLI.wait(for: pages, args: ["browser_check.py"], limit: .seconds(240))
        let report = (try? String(contentsOf: pagesOut, encoding: .utf8)) ?? ""
        #expect(pages.terminationStatus == 0, "\(report)")

        // Revoked tokens stop working at once.
        let id = String(operatorToken.split(separator: "_")[1])
        #expect(try await server.call(.DELETE, "/api/tokens/\(id)", token: server.adminToken).status == 204)
        #expect(try await server.get("/api/runs", token: operatorToken).status == 401)
    }

    @Test("OpenLineage: the openlineage-python client's events land in runs, chunks and lineage; retries are idempotent; bad events get 400 naming the field")
    func openLineageIngest() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli)
        defer { server.terminate() }
        let operatorToken = try await server.mint("airflow", "operator")
        let viewer = try await server.mint("auditor", "viewer")

        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", CLI.packageRoot.appendingPathComponent("tools/openlineage_client_check.py").path, server.base, operatorToken]
        let out = cli.directory.appendingPathComponent("ol.out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        client.standardOutput = try FileHandle(forWritingTo: out)
        client.standardError = client.standardOutput
        try client.run()
        try await CLI.wait(for: client, args: ["openlineage_client_check.py"], limit: .seconds(120))
        let printed = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        #expect(client.terminationStatus == 0, "\(printed)")
        let ids = try jsonObject(String(printed.split(separator: "\n").last ?? "{}"))
        let dagRun = try #require(ids["dag_run"] as? String)

        let run = try await server.get("/api/runs/orders_daily/\(dagRun)", token: viewer)
        #expect(run.status == 200, "\(run.body)")
        #expect((run.object["run"] as? [String: Any])?["state"] as? String == "failed")
        let tasks = Dictionary(uniqueKeysWithValues: (run.object["tasks"] as? [[String: Any]] ?? []).map { ($0["task"] as? String ?? "", $0) })
        #expect(tasks["extract"]?["state"] as? String == "succeeded" && tasks["extract"]?["attempts"] as? Int == 1, "the retried COMPLETE is not applied twice")
        #expect(tasks["load"]?["state"] as? String == "failed" && (tasks["load"]?["error"] as? String)?.contains("duplicate key") == true)
        let raw = try await server.get("/api/chunks?dataset=s3://lake:raw/orders&status=ready", token: viewer)
        #expect(raw.array.first?["key"] as? String == "2026-11-20", "partitions from the subset facet are chunks: \(raw.body)")
        let mart = try await server.get("/api/chunks?dataset=postgres://dw:5432:mart.orders_daily&status=failed", token: viewer)
        #expect(mart.array.count == 1)
        let lineage = try await server.get("/api/v1/lineage?nodeId=dataset:s3://lake:raw/orders&depth=5", token: viewer)
        let nodes = (lineage.object["graph"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(Set(nodes) == [
            "dataset:postgres://db:5432:shop.public.orders", "job:airflow-prod:orders_daily.extract", "dataset:s3://lake:raw/orders",
            "job:airflow-prod:orders_daily.load", "dataset:postgres://dw:5432:mart.orders_daily",
        ], "\(lineage.body.prefix(500))")
        let why = try await server.get("/api/why?chunk=s3://lake:raw/orders/2026-11-20", token: viewer)
        #expect(why.status == 200, "\(why.body.prefix(300))")
        let trace = try await server.get("/api/lineage?node=chunk:s3://lake:raw/orders/2026-11-20&direction=up", token: viewer)
        #expect(trace.body.contains("chunk:postgres://db:5432:shop.public.orders/2026-11-20"), "partition-level path back to the source: \(trace.body.prefix(400))")

        // Batch endpoint, gzip: good events are accepted; a batch with one bad event is refused whole.
        func event(_ type: String, run: String, job: String, extra: String = "") -> String {
            #"{"eventType":"\#(type)","eventTime":"2026-11-21T10:00:00.000Z","producer":"https://example.com/p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","run":{"runId":"\#(run)"},"job":{"namespace":"batchns","name":"\#(job)"}\#(extra)}"#
        }
        let r1 = UUID().uuidString.lowercased()
        let good = "[" + event("START", run: r1, job: "nightly") + "," + event("COMPLETE", run: r1, job: "nightly") + "]"
        let accepted = try await server.post("/api/v1/lineage/batch", token: operatorToken, good, gzip: true)
        #expect(accepted.status == 200 && accepted.object["accepted"] as? Int == 2, "\(accepted.body)")
        let again = try await server.post("/api/v1/lineage/batch", token: operatorToken, good, gzip: true)
        #expect(again.object["accepted"] as? Int == 0 && again.object["duplicates"] as? Int == 2, "\(again.body)")
        let before = try await cli.eventCount()
        let badCases: [(String, String)] = [
            ("[" + event("START", run: UUID().uuidString, job: "a") + "," + event("START", run: "not-a-uuid", job: "b") + "]", "events[1].run.runId must be a UUID"),
            ("[" + event("FINISHED", run: UUID().uuidString, job: "a") + "]", "events[0].eventType must be one of"),
            (#"[{"eventTime":"2026-11-21T10:00:00Z","producer":"https://p","schemaURL":"https://s","run":{"runId":"\#(UUID().uuidString)"}}]"#, "job"),
            ("[" + event("START", run: UUID().uuidString, job: "a", extra: #","inputs":[{"namespace":"n"}]"#) + "]", "events[0].inputs[0].name is required"),
            ("[" + event("START", run: UUID().uuidString, job: "a").replacingOccurrences(of: "2026-11-21T10:00:00.000Z", with: "yesterday") + "]", "eventTime must be an RFC 3339 date-time"),
            ("{", "not valid JSON"),
            ("[]", "no events"),
        ]
        for (body, text) in badCases {
            let r = try await server.post("/api/v1/lineage/batch", token: operatorToken, body, gzip: true)
            #expect(r.status == 400 && r.message.contains(text), "\(text): \(r.status) \(r.body)")
        }
        let facetBad = event("START", run: UUID().uuidString, job: "a", extra: "").replacingOccurrences(
            of: #""run":{"runId":"#, with: #""run":{"facets":{"parent":{"_producer":"https://p","_schemaURL":"https://s","job":{"namespace":"n"}}},"runId":"#)
        let r = try await server.post("/api/v1/lineage", token: operatorToken, facetBad)
        #expect(r.status == 400 && r.message.contains("run.facets.parent"), "a standard facet is checked against its own schema: \(r.body)")
        #expect(try await cli.eventCount() == before, "refused events append nothing")
        #expect(try await server.post("/api/v1/lineage", token: viewer, event("START", run: UUID().uuidString, job: "a")).status == 403)
        #expect(try await server.post("/api/v1/lineage", token: nil, event("START", run: UUID().uuidString, job: "a")).status == 401)
        try await server.stop()
        let verify = try await cli.run(["verify"])
        #expect(verify.status == 0, "\(verify.stderr)")
        let views = try await cli.run(["views", "verify"])
        #expect(views.status == 0, "\(views.stdout) \(views.stderr)")
    }
}
