import ClewTestSupport
import Foundation
import NIOHTTP1
import Testing

/// SLAs and alerts (docs/operations.md#slas, #alerts): misses recorded the moment they are known, alerts
/// sent to a webhook and over SMTP (a real aiosmtpd with STARTTLS and AUTH), each delivery an event.
@Suite("Operations: SLAs and alerts", .serialized)
struct AlertsTests {
    static var pipelines: String { OperationsTests.pipelines }
    static let password = "mail-pw-\(UInt32.random(in: 0...UInt32.max))"

    /// aiosmtpd on loopback (tools/producers.sh installs it into the `ops` venv): STARTTLS before anything,
    /// AUTH before MAIL, one user; each message it takes is a JSON file in `out`.
    struct MailServer {
        var process: Process
        var port: Int
        var out: URL
        var caFile: String

        static func start(_ cli: CLI, failFirst: Int = 0) async throws -> MailServer {
            let python = Program.venvs.appendingPathComponent("ops/bin/python").path
            guard FileManager.default.isExecutableFile(atPath: python) else {
                throw CLIFailure("\(python) is not installed; run tools/setup.sh (tools/producers.sh installs aiosmtpd into the ops venv)")
            }
            let dir = cli.directory.appendingPathComponent("smtp")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
            let openssl = try await Program.run(
                "/usr/bin/openssl",
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                in: dir)
            #expect(openssl.status == 0, "\(openssl.output)")
            let out = dir.appendingPathComponent("mail")
            let log = dir.appendingPathComponent("server.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: python)
            p.arguments = [
                CLI.packageRoot.appendingPathComponent("Fixtures/operations/smtp_server.py").path, "--cert", cert, "--key", key, "--user", "alerts",
                "--password", AlertsTests.password, "--out", out.path, "--fail-first", String(failFirst),
            ]
            p.standardOutput = try FileHandle(forWritingTo: log)
            p.standardError = p.standardOutput
            try p.run()
            var port = 0
            try await CLI.waitUntil("the SMTP server to be ready") {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) { port = Int(line.dropFirst(6)) ?? 0 }
                if port == 0, !p.isRunning { throw CLIFailure("the SMTP server stopped: \(text)") }
                return port != 0
            }
            return MailServer(process: p, port: port, out: out, caFile: cert)
        }

        func stop() {
            process.terminate()
        }

        /// The messages it took, in order.
        func messages() throws -> [[String: Any]] {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
            return try files.filter { $0.hasSuffix(".json") }.sorted { Int($0.dropLast(5))! < Int($1.dropLast(5))! }.map {
                try jsonObject(String(contentsOf: out.appendingPathComponent($0), encoding: .utf8))
            }
        }

        /// Sets Connection smtp_default to this server (the password by reference).
        func connect(_ cli: CLI, security: String = "starttls") async throws {
            let set = try await cli.run([
                "connections", "set", "smtp_default", "--host", "localhost", "--port", String(port), "--login", "alerts", "--password-env", "CLEW_TEST_SMTP_PASSWORD",
                "--extra", "security=\(security)", "--extra", "ca_file=\(caFile)", "--extra", "from=clew@example.com",
            ])
            #expect(set.status == 0, "\(set.stderr)")
        }
    }

    @Test("a task past its SLA: sla.missed recorded by the run, then webhook and e-mail (STARTTLS, AUTH) received and retried, each delivery an event; the password never in the ledger")
    func slaAndAlerts() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let mail = try await MailServer.start(cli, failFirst: 1)
        defer { mail.stop() }
        let (hooks, hookPort, hookTask) = try await CallbackReceiver.start(failures: 1)
        defer { hookTask.cancel() }
        try await mail.connect(cli)
        // Defaults: a webhook for failures and SLA misses; the DAG adds its own e-mail (with retries).
        let defaults = try await cli.run(["alerts", "defaults", "--webhook", "http://127.0.0.1:\(hookPort)/hook", "--on", "failure,sla_miss", "--reason", "on-call hook"])
        #expect(defaults.status == 0, "\(defaults.stderr)")

        let env = ["CLEW_TEST_SMTP_PASSWORD": Self.password]
        let run = try await cli.run(["run", "ops_sla", "--pipelines", Self.pipelines, "--alert-delay-ms", "50", "--json"], environment: env)
        #expect(run.status == 3, "the run fails (boom): \(run.stdout)\(run.stderr)")
        let runID = try #require(try jsonObject(run.stdout)["run"] as? String)

        // The miss: task slow, seen by the run itself, deadline one second after the start.
        let sla = try await cli.run(["sla", "--dag", "ops_sla", "--json"])
        let misses = try jsonArray(sla.stdout)
        #expect(misses.count == 1, "\(sla.stdout)\(sla.stderr)")
        let miss = try #require(misses.first?["miss"] as? [String: Any])
        #expect(miss["run"] as? String == runID && miss["scope"] as? String == "task" && miss["seen_by"] as? String == "run")
        #expect((miss["tasks"] as? [[String: Any]])?.map { $0["task"] as? String } == ["slow"])
        #expect(miss["sla_ms"] as? Int == 1000)
        // slow sleeps 2 s: it ended about a second late.
        let late = try #require(misses.first?["finalLateByMillis"] as? Int)
        #expect(late >= 900 && late < 20_000, "\(late)")

        // Deliveries: the webhook (sla_miss, failure; its first post answered 500, so retried), the
        // e-mail (sla_miss, retry, failure; the server's first answer 451, so retried). No webhook for
        // the retry: the defaults do not take that rule.
        let list = try await cli.run(["alerts", "list", "--json"])
        let rows = try jsonArray(list.stdout)
        let deliveries = rows.compactMap { $0["delivery"] as? [String: Any] }
        let pairs = deliveries.map { "\($0["rule"] as? String ?? "?") \($0["channel"] as? String ?? "?")" }
        #expect(pairs == ["sla_miss webhook", "sla_miss email", "retry email", "failure webhook", "failure email"], "\(pairs)")
        #expect(rows.allSatisfy { $0["delivered"] as? Bool == true }, "\(list.stdout)")
        #expect(deliveries.map { $0["attempts"] as? Int } == [2, 2, 1, 1, 1], "\(list.stdout)")
        #expect(deliveries.first?["target"] as? String == "http://127.0.0.1:\(hookPort)/hook")
        #expect(deliveries[1]["host"] as? String == "localhost:\(mail.port)" && deliveries[1]["status_code"] as? Int == 250)

        let posts = try await hooks.bodies.map { try jsonObject($0) }
        #expect(posts.count == 3, "one refused, then two delivered: \(posts.count)")
        #expect(posts.last?["rule"] as? String == "failure" && posts.last?["run"] as? String == runID)
        #expect((posts[1]["payload"] as? [String: Any])?["seen_by"] as? String == "run")
        #expect((posts[1]["subject"] as? String)?.contains("slow of ops_sla missed the SLA of 1.0 s") == true, "\(posts[1])")

        let messages = try mail.messages()
        #expect(messages.count == 3, "\(messages)")
        for m in messages {
            #expect(m["tls"] as? Bool == true, "sent only after STARTTLS")
            #expect(m["login"] as? String == "alerts")
            #expect(m["rcpt_tos"] as? [String] == ["oncall@example.com"] && m["mail_from"] as? String == "clew@example.com")
        }
        let subjects = messages.compactMap { ($0["content"] as? String)?.split(whereSeparator: \.isNewline).first { $0.hasPrefix("Subject: ") } }
        #expect(subjects.count == 3 && subjects[0].contains("missed the SLA") && subjects[1].contains("retrying") && subjects[2].contains("failed: boom"), "\(subjects)")
        let body = messages.last?["content"] as? String ?? ""
        #expect(body.contains("Failed:") && body.contains("boom") && body.contains("exit code 1") && body.contains("clew why --dag ops_sla"), "\(body)")

        // Nothing twice: a later drain finds nothing to send.
        let again = try await cli.run(["alerts", "deliver", "--json"], environment: env)
        #expect(again.status == 0 && again.stdout.isEmpty, "\(again.stdout)\(again.stderr)")
        #expect(try mail.messages().count == 3)

        // The SMTP password is nowhere in the ledger.
        let log = try await cli.run(["log", "--json"])
        #expect(!log.stdout.contains(Self.password))
        #expect(try Data(contentsOf: cli.ledger.appendingPathComponent("log/data.mdb")).range(of: Data(Self.password.utf8)) == nil)
    }

    @Test("bad alert settings refused naming what is wrong, nothing recorded; a login never sent unencrypted; a server that is down is retried then recorded as alert.failed")
    func badInput() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let before = try await cli.eventCount()
        let ftp = try await cli.run(["alerts", "defaults", "--webhook", "ftp://example.com/x"])
        #expect(ftp.status == 1 && ftp.stderr.contains("'ftp://example.com/x' is not an http:// or https:// URL"), "\(ftp.stderr)")
        let address = try await cli.run(["alerts", "defaults", "--email", "oncall at example"])
        #expect(address.status == 1 && address.stderr.contains("'oncall at example' is not an address"), "\(address.stderr)")
        let rule = try await cli.run(["alerts", "defaults", "--email", "a@example.com", "--on", "failure,sometimes"])
        #expect(rule.status == 1 && rule.stderr.contains("alert rule 'sometimes' is not one of"), "\(rule.stderr)")
        #expect(try await cli.eventCount() == before, "nothing recorded")

        // A pipeline file with a bad alert target, an unknown alerts key and a bad SLA: refused, each named with its line.
        let bad = cli.directory.appendingPathComponent("bad.yaml")
        try "dag: bad_alerts\nsla: soon\nalerts:\n  webhook: example.com/hook\n  pager: x\ntasks:\n  t:\n    run: /bin/true\n    sla: 0s\n".write(to: bad, atomically: true, encoding: .utf8)
        let refused = try await cli.run(["run", bad.path])
        #expect(refused.status == 1, "\(refused.stderr)")
        for part in ["bad.yaml:2: sla 'soon' is not a duration", "alerts: unknown key 'pager'", "alert webhook 'example.com/hook' is not an http", "task t: sla must be positive"] {
            #expect(refused.stderr.contains(part), "\(part) in \(refused.stderr)")
        }
        #expect(try await cli.eventCount() == before, "nothing recorded")

        // A login over a connection with no TLS: refused before the password is sent, recorded as failed.
        let mail = try await MailServer.start(cli)
        defer { mail.stop() }
        try await mail.connect(cli, security: "none")
        #expect(try await cli.run(["alerts", "defaults", "--email", "oncall@example.com"]).status == 0)
        let env = ["CLEW_TEST_SMTP_PASSWORD": Self.password]
        let run = try await cli.run(["run", "ops_sla", "--pipelines", Self.pipelines, "--alert-attempts", "2", "--alert-delay-ms", "10", "--json"], environment: env)
        #expect(run.status == 3)
        let failed = try jsonArray(try await cli.run(["alerts", "list", "--failed", "--json"]).stdout)
        #expect(failed.count == 3, "\(failed)")
        let why = (failed.first?["delivery"] as? [String: Any])?["error"] as? String ?? ""
        #expect(why.contains("will not send the login for alerts over an unencrypted connection"), "\(why)")
        #expect(try mail.messages().isEmpty)

        // A webhook on a port nobody listens on: tried --alert-attempts times, then alert.failed.
        #expect(try await cli.run(["alerts", "defaults", "--clear"]).status == 0)
        #expect(try await cli.run(["alerts", "defaults", "--webhook", "http://127.0.0.1:9/down", "--on", "failure"]).status == 0)
        #expect(try await cli.run(["connections", "delete", "smtp_default"]).status == 0)
        let down = try await cli.run(["run", "ops_sla", "--pipelines", Self.pipelines, "--alert-attempts", "3", "--alert-delay-ms", "10"], environment: env)
        #expect(down.status == 3)
        let all = try jsonArray(try await cli.run(["alerts", "list", "--json"]).stdout).compactMap { $0["delivery"] as? [String: Any] }
        let hook = try #require(all.last { $0["channel"] as? String == "webhook" })
        #expect(hook["attempts"] as? Int == 3 && (hook["error"] as? String)?.isEmpty == false, "\(hook)")
        let mailRow = try #require(all.last { $0["channel"] as? String == "email" })
        #expect((mailRow["error"] as? String)?.contains("no SMTP Connection 'smtp_default' is set") == true, "\(mailRow)")
    }

    @Test("clew serve: alert defaults over the API (operator, audited, bad input 400), its runs' misses and failures alerted by the server, listed by the API and the SLA page in headless Chromium")
    func serve() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let (hooks, hookPort, hookTask) = try await CallbackReceiver.start(failures: 0)
        defer { hookTask.cancel() }
        let server = try await Server.start(cli, extra: ["--pipelines", Self.pipelines, "--alert-delay-ms", "50"])
        defer { server.terminate() }
        let viewer = try await server.mint("auditor", "viewer")
        let operatorToken = try await server.mint("oncall", "operator")
        let body = #"{"webhooks":["http://127.0.0.1:\#(hookPort)/hook"],"emails":[],"on":["failure","sla_miss"],"reason":"pager"}"#
        #expect(try await server.call(.PUT, "/api/alerts/defaults", token: viewer, body: body).status == 403)
        let bad = try await server.call(.PUT, "/api/alerts/defaults", token: operatorToken, body: #"{"webhooks":["gopher://x"],"emails":["@"],"on":["never"]}"#)
        #expect(bad.status == 400 && bad.message.contains("'gopher://x' is not an http") && bad.message.contains("'@' is not an address") && bad.message.contains("'never'"), "\(bad.body)")
        let set = try await server.call(.PUT, "/api/alerts/defaults", token: operatorToken, body: body)
        #expect(set.status == 200 && (set.object["webhooks"] as? [String])?.count == 1, "\(set.body)")
        #expect((try await server.get("/api/alerts/defaults", token: viewer)).object["on"] as? [String] == ["failure", "sla_miss"])

        // A run triggered over the API: the server's alerter sends its SLA miss and its failure.
        let trigger = try await server.post("/api/runs", token: operatorToken, #"{"dag":"ops_sla"}"#)
        #expect(trigger.status == 202, "\(trigger.body)")
        let runID = try #require(trigger.object["run"] as? String)
        _ = try await server.waitForRun("ops_sla", runID, token: viewer)
        try await CLI.waitUntil("the webhook to get the miss and the failure") { await hooks.bodies.count >= 2 }
        let rules = try await hooks.bodies.map { try jsonObject($0)["rule"] as? String }
        #expect(rules == ["sla_miss", "failure"], "\(rules)")
        try await CLI.waitUntil("both deliveries to be recorded") { try await server.get("/api/alerts", token: viewer).array.count >= 2 }
        let deliveries = try await server.get("/api/alerts?rule=sla_miss", token: viewer).array
        #expect(deliveries.count == 2, "the webhook and the DAG's e-mail (no SMTP Connection: failed): \(deliveries)")
        #expect(try await server.get("/api/alerts?rule=sometimes", token: viewer).status == 400)
        let misses = try await server.get("/api/sla?dag=ops_sla", token: viewer).array
        #expect(misses.count == 1 && (misses.first?["miss"] as? [String: Any])?["run"] as? String == runID, "\(misses)")
        #expect(try await server.get("/api/sla?dag=ops_sla&run=nope", token: viewer).status == 404)
        let audit = try await server.get("/api/audit?limit=50", token: server.adminToken).array.compactMap { $0["entry"] as? [String: Any] }
        #expect(audit.filter { $0["action"] as? String == "alerts.configure" }.map { $0["outcome"] as? String } == ["ok", "refused", "denied"], "newest first: \(audit)")

        // Pools over the API: operators set them (audited), viewers read who holds and waits.
        #expect(try await server.call(.PUT, "/api/pools/db", token: viewer, body: #"{"slots":2}"#).status == 403)
        let badPool = try await server.call(.PUT, "/api/pools/db", token: operatorToken, body: #"{"slots":-1}"#)
        #expect(badPool.status == 400 && badPool.message.contains("slots must be 1-100000"), "\(badPool.body)")
        #expect(try await server.call(.PUT, "/api/pools/db", token: operatorToken, body: #"{"slots":2,"reason":"two loads"}"#).status == 200)
        let pools = try await server.get("/api/pools", token: viewer).array
        #expect(pools.map { $0["pool"] as? String } == ["db"] && pools.first?["slots"] as? Int == 2, "\(pools)")
        #expect(try await server.get("/api/pools/nope", token: viewer).status == 404)

        let spec: [[String: Any]] = [
            ["path": "/sla", "count": ["#sla-misses tbody tr": 1, "#alert-deliveries tbody tr": 4, "#pools tbody tr": 1], "text": ["#sla-misses": "slow (running)", "#alert-defaults": "127.0.0.1:\(hookPort)"]],
            ["path": "/sla?dag=nothing", "count": ["#no-misses": 1]],
        ]
        let check = try await server.browse(spec, token: viewer)
        #expect(check.ok, "\(check.report)")
    }

    @Test("clew culprit --record records culprit.found, and the culprit's DAG is alerted (rule culprit), as is the failure")
    func culprit() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let (hooks, hookPort, hookTask) = try await CallbackReceiver.start(failures: 0)
        defer { hookTask.cancel() }
        #expect(try await cli.run(["alerts", "defaults", "--webhook", "http://127.0.0.1:\(hookPort)/hook"]).status == 0)
        let run = try await cli.run(["run", "ops_actions", "--pipelines", Self.pipelines, "--no-alerts", "--json"])
        #expect(run.status == 3)
        let runID = try #require(try jsonObject(run.stdout)["run"] as? String)
        // Without --record it is a query: nothing is written.
        let before = try await cli.eventCount()
        #expect(try await cli.run(["culprit", "run:ops_actions/\(runID)"]).status == 2)
        #expect(try await cli.eventCount() == before)
        let recorded = try await cli.run(["culprit", "run:ops_actions/\(runID)", "--record", "--reason", "nightly check", "--by", "auditor"])
        #expect(recorded.status == 2 && recorded.stderr.contains("recorded the culprit as culprit.found"), "\(recorded.stderr)")
        let found = try #require(try await cli.run(["log", "--type", "culprit.found", "--json"]).stdout.split(separator: "\n").first.map { try jsonObject(String($0)) })
        let payload = found["payload"] as? [String: Any] ?? [:]
        #expect(payload["task"] as? String == "transform" && payload["kind"] as? String == "failed" && payload["reason"] as? String == "nightly check", "\(payload)")
        #expect(found["actor"] as? String == "auditor")
        // clew alerts deliver sends what no process sent: the failure (the run had --no-alerts) and the culprit.
        let deliver = try await cli.run(["alerts", "deliver", "--json"])
        #expect(deliver.status == 0, "\(deliver.stdout)\(deliver.stderr)")
        let rules = try await hooks.bodies.map { try jsonObject($0)["rule"] as? String }
        #expect(rules == ["failure", "culprit"], "\(rules)")
        let culprit = try jsonObject(await hooks.bodies.last ?? "{}")
        #expect(culprit["task"] as? String == "transform" && (culprit["subject"] as? String)?.contains("culprit of run:ops_actions/\(runID): failed at task transform") == true, "\(culprit)")
    }

    @Test("the scheduler records the SLA miss of a run whose process was killed, once, and alerts it")
    func schedulerSeesOrphans() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let (hooks, hookPort, hookTask) = try await CallbackReceiver.start(failures: 0)
        defer { hookTask.cancel() }
        #expect(try await cli.run(["alerts", "defaults", "--webhook", "http://127.0.0.1:\(hookPort)/hook"]).status == 0)
        let (process, _, _) = try cli.start(["run", "ops_sla_stuck", "--pipelines", Self.pipelines, "--no-alerts"])
        // Killed as soon as its run has started: long before the 8 s deadline, so its own watch cannot see it.
        try await CLI.waitUntil("the stuck run to start") {
            try await cli.run(["log", "--type", "run.started", "--json"]).stdout.contains("ops_sla_stuck")
        }
        kill(process.processIdentifier, SIGKILL)
        _ = await CLI.exit(of: process)
        // Its sleep (own process group) outlives it; stop it too.
        _ = try? await Program.run("/usr/bin/pkill", ["-f", "sleep 37"], in: cli.directory)

        // No miss before the deadline; then the scheduler sees it.
        try await CLI.waitUntil("the scheduler to record the miss", limit: .seconds(90)) {
            _ = try await cli.run(["scheduler", "--once", "--dag", "ops_sla_stuck", "--pipelines", Self.pipelines, "--alert-delay-ms", "10"])
            return try jsonArray(try await cli.run(["sla", "--json"]).stdout).count == 1
        }
        let once = try await cli.run(["scheduler", "--once", "--dag", "ops_sla_stuck", "--pipelines", Self.pipelines])
        #expect(once.status == 0, "\(once.stderr)")
        let misses = try jsonArray(try await cli.run(["sla", "--json"]).stdout)
        #expect(misses.count == 1, "recorded once: \(misses)")
        let miss = try #require(misses.first?["miss"] as? [String: Any])
        #expect(miss["seen_by"] as? String == "scheduler" && miss["dag"] as? String == "ops_sla_stuck")
        #expect(misses.first?["finalLateByMillis"] == nil || misses.first?["finalLateByMillis"] is NSNull, "the run never ended")
        try await CLI.waitUntil("the webhook to get the miss") { await hooks.bodies.count >= 1 }
        #expect(try jsonObject(await hooks.bodies[0])["rule"] as? String == "sla_miss")
        #expect(await hooks.bodies.count == 1)
    }
}
