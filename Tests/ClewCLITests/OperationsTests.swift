import ClewTestSupport
import Foundation
import Testing

/// Operating pipelines (docs/operations.md): Variables and Connections with provenance.
@Suite("Operations: variables, connections")
struct OperationsTests {
    static var pipelines: String { CLI.packageRoot.appendingPathComponent("Fixtures/operations/pipelines").path }
    static let secret = "hunter2-correct-horse-battery"

    @Test("variables: set with who and why, a secret only by reference and never in the ledger; a run's reads name the set they saw; a replay reads what the run read; bad input refused with nothing recorded")
    func variables() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let env = ["CLEW_TEST_DB_PASSWORD": Self.secret]
        let set = try await cli.run(["variables", "set", "region", "eu-west", "--reason", "first region", "--by", "alice", "--json"])
        #expect(set.status == 0, "\(set.stderr)")
        let firstSeq = try #require(try jsonObject(set.stdout)["seq"] as? Int)

        // Bad input: each refused, naming what was wrong, and nothing recorded.
        let before = try await cli.eventCount()
        let clear = try await cli.run(["variables", "set", "db_password", Self.secret])
        #expect(clear.status == 1 && clear.stderr.contains("looks secret") && clear.stderr.contains("by reference"), "\(clear.stderr)")
        #expect(!clear.stderr.contains(Self.secret))
        let badKey = try await cli.run(["variables", "set", "9lives", "x"])
        #expect(badKey.status == 1 && badKey.stderr.contains("variable key '9lives'"), "\(badKey.stderr)")
        let badRef = try await cli.run(["variables", "set", "db_password", "--from-file", "relative/path"])
        #expect(badRef.status == 1 && badRef.stderr.contains("file: needs an absolute path"), "\(badRef.stderr)")
        let both = try await cli.run(["variables", "set", "region", "x", "--from-env", "HOME"])
        #expect(both.status != 0 && both.stderr.contains("exactly one of"), "\(both.stderr)")
        let missing = try await cli.run(["variables", "delete", "nope"])
        #expect(missing.status == 1 && missing.stderr.contains("no variable 'nope' is set"), "\(missing.stderr)")
        #expect(try await cli.eventCount() == before)

        #expect(try await cli.run(["variables", "set", "db_password", "--from-env", "CLEW_TEST_DB_PASSWORD", "--by", "bob"]).status == 0)
        let run = try await cli.run(["run", "ops_variables", "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        let runID = try #require(try jsonObject(run.stdout)["run"] as? String)


        // The region changes after the run: the run still saw eu-west, set by alice at firstSeq.
        #expect(try await cli.run(["variables", "set", "region", "us-east", "--reason", "moved", "--by", "carol"]).status == 0)
        let seen = try await cli.run(["variables", "seen", "ops_variables/\(runID)", "--json"])
        #expect(seen.status == 0, "\(seen.stderr)")
        let reads = try jsonArray(seen.stdout)
        let region = try #require(reads.first { $0["key"] as? String == "region" })
        #expect(region["value"] as? String == "eu-west")
        #expect(region["setSeq"] as? Int == firstSeq)
        #expect(region["setBy"] as? String == "alice")
        #expect(region["task"] as? String == "load")
        let password = try #require(reads.first { $0["key"] as? String == "db_password" })
        #expect(password["value"] as? String == "[REDACTED]")
        #expect(password["reference"] as? String == "env:CLEW_TEST_DB_PASSWORD")
        #expect(password["setBy"] as? String == "bob")
        let text = try await cli.run(["variables", "seen", "ops_variables/\(runID)"])
        #expect(text.stdout.contains("eu-west") && text.stdout.contains("by alice"), "\(text.stdout)")

        let history = try await cli.run(["variables", "history", "region", "--json"])
        let changes = try jsonArray(history.stdout)
        #expect(changes.map { $0["value"] as? String } == ["eu-west", "us-east"])
        #expect(changes.map { $0["by"] as? String } == ["alice", "carol"])
        #expect(changes.map { $0["reason"] as? String } == ["first region", "moved"])
        let list = try await cli.run(["variables", "list", "--json"])
        let listed = try jsonArray(list.stdout)
        #expect(listed.map { $0["key"] as? String } == ["db_password", "region"])
        #expect(listed.first?["value"] == nil || listed.first?["value"] is NSNull)

        // The command's steps and outputs: the variables were its first steps, and it got their values.
        let inspect = try await cli.run(["inspect", "ops_variables/\(runID)", "--task", "load", "--json"])
        let steps = try jsonArray(inspect.stdout)
        #expect(steps.prefix(2).map { $0["kind"] as? String } == ["variable_read", "variable_read"], "\(steps)")

        // A replay reads what the run read (eu-west), not today's us-east: identical.
        let replay = try await cli.run(["replay", "ops_variables/\(runID)", "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
        #expect(try jsonObject(replay.stdout)["verdict"] as? String == "identical", "\(replay.stdout)")

        // The secret is nowhere in the ledger: not in the variable's events, not in the read step, not
        // in the command's recorded environment or the stderr it printed it to.
        let log = try await cli.run(["log", "--json"])
        #expect(log.status == 0)
        #expect(!log.stdout.contains(Self.secret), "the secret is in the ledger")
        #expect(log.stdout.contains("connecting with [REDACTED]"), "the command's stderr, scrubbed")

        // Deleted: recorded with why; a run that needs it fails naming it.
        #expect(try await cli.run(["variables", "delete", "region", "--reason", "retired", "--by", "dave"]).status == 0)
        let gone = try await cli.run(["variables", "get", "region"])
        #expect(gone.status == 1 && gone.stderr.contains("no variable 'region' is set"))
        let failed = try await cli.run(["run", "ops_variables", "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(failed.status == 3, "\(failed.stdout)\(failed.stderr)")
        let runs = try await cli.run(["run", "show", "ops_variables/\(try #require(try jsonObject(failed.stdout)["run"] as? String))", "--json"])
        #expect(runs.stdout.contains("no variable 'region' is set"), "\(runs.stdout)")
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("connections: several hosts, one given to each attempt and recorded; the password only by reference and never in the ledger; a replay gets the same host; bad input refused with nothing recorded")
    func connections() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let password = "pg-Pa55word-never-recorded"
        let env = ["CLEW_TEST_PG_PASSWORD": password]
        let hosts = ["db1.internal", "db2.internal", "db3.internal"]
        let set = try await cli.run(
            ["connections", "set", "warehouse", "--type", "postgres", "--port", "5432", "--schema", "sales", "--login", "etl",
             "--password-env", "CLEW_TEST_PG_PASSWORD", "--extra", "sslmode=require", "--reason", "new cluster", "--by", "erin", "--json"]
                + hosts.flatMap { ["--host", $0] })
        #expect(set.status == 0, "\(set.stderr)")
        let setSeq = try #require(try jsonObject(set.stdout)["seq"] as? Int)

        let before = try await cli.eventCount()
        for (args, words) in [
            (["connections", "set", "warehouse", "--host", "db1", "--extra", "api_key=abc"], "extra 'api_key' looks secret"),
            (["connections", "set", "warehouse", "--port", "5432"], "needs at least one host"),
            (["connections", "set", "warehouse", "--host", "db1", "--port", "70000"], "port 70000 is not in 1-65535"),
            (["connections", "set", "warehouse", "--host", "a b"], "host 'a b' must be a host name"),
            (["connections", "set", "warehouse", "--host", "db1", "--password-env", "not ok"], "env: needs an environment variable name"),
            (["connections", "set", "9x", "--host", "db1"], "connection id '9x'"),
            (["connections", "delete", "nope"], "no connection 'nope' is set"),
        ] {
            let r = try await cli.run(args)
            #expect(r.status == 1 && r.stderr.contains(words), "\(args): \(r.stderr)")
        }
        #expect(try await cli.eventCount() == before)

        // Eight runs with fixed ids (so fixed seeds): each got one of the hosts, recorded; more than one host is used.
        var given: [String: String] = [:]
        for n in 1...8 {
            let r = try await cli.run(["run", "ops_connections", "--pipelines", Self.pipelines, "--run-id", "c\(n)", "--json"], environment: env)
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            let seen = try jsonArray(try await cli.run(["connections", "seen", "ops_connections/c\(n)", "--json"]).stdout)
            let use = try #require(seen.first?["use"] as? [String: Any], "\(seen)")
            given["c\(n)"] = use["host"] as? String
            #expect(use["port"] as? Int == 5432 && use["login"] as? String == "etl" && use["schema"] as? String == "sales")
            #expect(seen.first?["setSeq"] as? Int == setSeq && seen.first?["setBy"] as? String == "erin")
            #expect(seen.first?["passwordReference"] as? String == "env:CLEW_TEST_PG_PASSWORD")
            // The command got that host, the password and the extra settings.
            let inspect = try jsonArray(try await cli.run(["inspect", "ops_connections/c\(n)", "--task", "query", "--json"]).stdout)
            #expect(inspect.first?["kind"] as? String == "connection_read", "\(inspect)")
        }
        // The command got the host it is recorded as given (its output), and the password (its length).
        let outputs = try jsonArray(try await cli.run(["values", "output.host", "--json"]).stdout)
        let got = Dictionary(outputs.map { ($0["run"] as? String ?? "", $0["value"] as? String ?? "") }, uniquingKeysWith: { a, _ in a })
        #expect(got == given.mapValues { "\"\($0)\"" }, "\(outputs)")
        let lengths = try jsonArray(try await cli.run(["values", "output.pw_chars", "--json"]).stdout)
        #expect(lengths.count == 8 && lengths.allSatisfy { $0["value"] as? String == "\(password.count)" }, "\(lengths)")


        #expect(Set(given.values).isSubset(of: Set(hosts)) && Set(given.values).count > 1, "\(given)")

        // A replay is given the host the run was given.
        let replay = try await cli.run(["replay", "ops_connections/c1", "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
        #expect(try jsonObject(replay.stdout)["verdict"] as? String == "identical", "\(replay.stdout)")

        // The password is nowhere in the ledger, though the command printed it in a DSN.
        let log = try await cli.run(["log", "--json"])
        #expect(!log.stdout.contains(password), "the password is in the ledger")
        #expect(log.stdout.contains("dsn postgres://etl:[REDACTED]@db"), "the command's stderr, scrubbed")

        #expect(try await cli.run(["connections", "delete", "warehouse", "--reason", "decommissioned"]).status == 0)
        let history = try jsonArray(try await cli.run(["connections", "history", "warehouse", "--json"]).stdout)
        #expect(history.map { $0["action"] as? String } == ["set", "deleted"])
        let failed = try await cli.run(["run", "ops_connections", "--pipelines", Self.pipelines, "--json"], environment: env)
        #expect(failed.status == 3)
        let run = try #require(try jsonObject(failed.stdout)["run"] as? String)
        #expect(try await cli.run(["run", "show", "ops_connections/\(run)", "--json"]).stdout.contains("no connection 'warehouse' is set"))
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("a pipeline file's variables must be keys a task can be given, on command tasks only")

    func badDeclarations() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let file = cli.directory.appendingPathComponent("bad.yaml")
        try """
            dag: bad_vars
            tasks:
              a:
                run: ["true"]
                variables: [ok, "no spaces"]
              b:
                run: ["true"]
                variables: [a.b, a_b]
            """.write(to: file, atomically: true, encoding: .utf8)
        let r = try await cli.run(["run", file.path])

        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stderr.contains("variable key 'no spaces'"), "\(r.stderr)")
        #expect(r.stderr.contains("variables a.b and a_b would both be CLEW_VAR_A_B"), "\(r.stderr)")
    }

    @Test("dashboard: Variables and Connections pages by role (a secret only as its reference), their histories, and an operator's set forms in headless Chromium, audited")
    func dashboardPages() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        #expect(try await cli.run(["variables", "set", "region", "eu-west", "--reason", "EU launch", "--by", "alice"]).status == 0)
        #expect(try await cli.run(["variables", "set", "db_password", "--from-env", "CLEW_TEST_DB_PASSWORD"]).status == 0)
        #expect(try await cli.run(["connections", "set", "warehouse", "--host", "db1", "--host", "db2", "--port", "5432", "--login", "etl", "--password-env", "PGPASSWORD"]).status == 0)
        let server = try await Server.start(cli, extra: ["--no-alerts"])
        defer { server.terminate() }
        let viewer = try await server.mint("auditor", "viewer")
        let operatorToken = try await server.mint("oncall", "operator")
        let viewerPages: [[String: Any]] = [
            ["path": "/variables", "count": ["#variable-list tbody tr": 2], "missing": ["#variable-form", ".delete-form"],
             "text": ["#variable-list tr[data-key=db_password]": "→ env:CLEW_TEST_DB_PASSWORD", "#variable-list tr[data-key=region]": "eu-west"], "absent": [Self.secret]],
            ["path": "/variables/region", "count": ["#setting-history tbody tr": 1], "text": ["#setting-history": "EU launch"]],
            ["path": "/connections", "count": ["#connection-list tbody tr": 1], "missing": ["#connection-form"],
             "text": ["#connection-list tr[data-id=warehouse]": "→ env:PGPASSWORD"]],
        ]
        let operatorPages: [[String: Any]] = [
            ["path": "/variables", "submit": ["form": "#variable-form", "fields": ["key": "owner", "value": "data-team", "reason": "handover"]],
             "count": ["#variable-list tr[data-key=owner]": 1, ".delete-form": 3]],
            ["path": "/connections", "submit": ["form": "#connection-form", "fields": ["id": "lake", "hosts": "s3a, s3b", "password_ref": "env:LAKE_KEY", "reason": "new lake"]],
             "count": ["#connection-list tr[data-id=lake]": 1], "text": ["#connection-list tr[data-id=lake]": "s3a, s3b"]],
        ]
        for (token, pages) in [(viewer, viewerPages), (operatorToken, operatorPages)] {
            let check = try await server.browse(pages, token: token)
            #expect(check.ok, "\(check.report)")
        }
        let history = try jsonArray(try await cli.run(["variables", "history", "owner", "--json"]).stdout)
        #expect(history.first?["by"] as? String == "token:oncall (\(operatorToken.split(separator: "_")[1]))" && history.first?["reason"] as? String == "handover", "\(history)")
        let audit = try await server.get("/api/audit?limit=20", token: server.adminToken).array.compactMap { $0["entry"] as? [String: Any] }
        #expect(audit.contains { $0["action"] as? String == "connection.set" && $0["outcome"] as? String == "ok" && $0["target"] as? String == "lake" }, "\(audit)")
    }
}
