import ClewCore
import ClewEngine
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import ClewTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import Yams

@testable import ClewServer

/// The server's routes and error mapping in process (Hummingbird's router test client): no port, no
/// child process.
@Suite("Server routes in process")
struct RouterTests {
    /// A fresh ledger with its views and a server state over them, removed afterwards.
    static func withServer(_ body: (ServerState, String) async throws -> Void) async throws {
        try await withEngine(prefix: "clew-router") { engine, ledger, _ in
            let views = try Views.open(ledger: ledger)
            defer { views.close() }
            var config = ServerConfiguration()
            config.logger.logLevel = .critical
            let state = try ServerState(ledger: ledger, views: views, engine: engine, configuration: config)
            let token = try await state.tokens.mint(name: "test", role: .admin, by: "test").token
            try await body(state, token)
        }
    }

    static func message(_ response: TestResponse) -> String {
        let body = String(buffer: response.body)
        guard let data = body.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let e = o["error"] as? [String: Any], let m = e["message"] as? String
        else { return body }
        return m
    }

    struct Unclassified: Error {}

    @Test("every API route the router has is in docs/openapi.yaml with its method, and every operation there is a route")
    func routesMatchTheSpec() async throws {
        try await Self.withServer { state, _ in
            let router = Routes.build(state)
            // `:name` and `{name}` alike: the spec's spelling.
            func spelled(_ path: String) -> String {
                path.split(separator: "/", omittingEmptySubsequences: false).map { part in
                    part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
                }.joined(separator: "/")
            }
            let served = Set(router.routes.map { "\($0.method.rawValue) \(spelled("\($0.path)"))" }.filter {
                let path = $0.split(separator: " ")[1]
                return path.hasPrefix("/api/") || path == "/metrics"
            })
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let text = try String(contentsOf: root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
            let spec = try #require(try Yams.load(yaml: text) as? [String: Any])
            let paths = try #require(spec["paths"] as? [String: Any])
            var documented = Set<String>()
            for (path, item) in paths {
                for method in (item as? [String: Any] ?? [:]).keys where ["get", "put", "post", "delete", "patch", "head"].contains(method) {
                    documented.insert("\(method.uppercased()) \(path)")
                }
            }
            #expect(served.count >= 60, "\(served.sorted())")
            #expect(served.subtracting(documented).sorted() == [], "routes the spec does not document")
            #expect(documented.subtracting(served).sorted() == [], "operations in the spec the router does not have")
        }
    }

    @Test("each error category answers its HTTP status; an error nobody classified is a 500, never a 400")
    func errorStatuses() async throws {
        let router = Router(context: ClewContext.self)
        router.add(middleware: ErrorMiddleware())
        let cases: [(String, any Error, HTTPResponse.Status)] = [
            ("not-a-ledger", LedgerError(.notALedger, "no ledger here"), .notFound),
            ("full", LedgerError(.mapFull, "the map is full"), .init(code: 507)),
            ("closed", LedgerError(.closed, "closed"), .serviceUnavailable),
            ("lmdb", LMDBError.corrupted, .internalServerError),
            ("view-missing", ViewError(.missing, view: "runs", "view runs is being built"), .serviceUnavailable),
            ("view-query", ViewError(.invalidInput, view: nil, "bad --as-of"), .badRequest),
            ("ambiguous", ForensicsError(.ambiguous, "r1 is ambiguous"), .badRequest),
            ("no-node", ForensicsError(.notFound, "no lineage node x"), .notFound),
            ("exists", EngineError(.conflict, "run r of DAG d already exists"), .conflict),
            ("bundle", ReplayError(.verificationFailed, "payload does not match"), .unprocessableContent),
            ("unclassified", Unclassified(), .internalServerError),
        ]
        for (path, error, _) in cases {
            router.get("/\(path)") { _, _ -> Response in throw error }
        }
        let app = Application(router: router)
        try await app.test(.router) { client in
            for (path, error, status) in cases {
                try await client.execute(uri: "/\(path)", method: .get) { response in
                    #expect(response.status == status, "\(path)")
                    #expect(Self.message(response).contains(error is Unclassified ? "internal error" : "\(error)"), "\(path): \(Self.message(response))")
                }
            }
        }
    }

    @Test("the API answers unknown runs and nodes with 404, bad queries with 400, missing tokens with 401")
    func apiErrors() async throws {
        try await Self.withServer { state, token in
            let app = Application(router: Routes.build(state))
            try await app.test(.router) { client in
                let auth: HTTPFields = [.authorization: "Bearer \(token)"]
                try await client.execute(uri: "/api/runs", method: .get) { #expect($0.status == .unauthorized) }
                try await client.execute(uri: "/api/runs", method: .get, headers: auth) { #expect($0.status == .ok) }
                try await client.execute(uri: "/api/runs/nightly/r-404", method: .get, headers: auth) { r in
                    #expect(r.status == .notFound, "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/lineage?node=run:nope/x", method: .get, headers: auth) { r in
                    #expect(r.status == .notFound && Self.message(r).contains("no lineage node"), "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/runs?limit=abc", method: .get, headers: auth) { r in
                    #expect(r.status == .badRequest && Self.message(r).contains("'limit' must be an integer"), "\(Self.message(r))")
                }
                // These as_of values trapped in the time parser and took the whole server down (the
                // fuzzer's times target found it); each is a 400 now, and the server answers after them.
                for asOf in ["T", "999999999999999-01-01", "2026-11-21T", "-1-01-01", "20E6-01-01T00:00:00Z"] {
                    try await client.execute(uri: "/api/runs?as_of=\(asOf)", method: .get, headers: auth) { r in
                        #expect(r.status == .badRequest && Self.message(r).contains("not a seq number or a UTC time"), "as_of=\(asOf): \(r.status) \(Self.message(r))")
                    }
                }
                try await client.execute(uri: "/api/runs?as_of=2026-11-21", method: .get, headers: auth) { #expect($0.status == .ok) }
                try await client.execute(uri: "/api/v1/lineage", method: .post, headers: auth, body: ByteBuffer(string: #"{"eventType":"START"}"#)) { r in
                    #expect(r.status == .badRequest && Self.message(r).contains("invalid OpenLineage event"), "\(Self.message(r))")
                }
            }
            // Nothing was appended by the refused requests but the token and audit events.
            #expect(try state.ledger.events(inStream: "openlineage/events").isEmpty)
        }
    }

    @Test("tokens over HTTP: a name with a control character is 400; the last admin token cannot be revoked (409) until another admin exists")
    func tokenGuards() async throws {
        try await Self.withServer { state, token in
            let app = Application(router: Routes.build(state))
            let adminID = String(token.split(separator: "_")[1])
            try await app.test(.router) { client in
                let auth: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
                try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"name":"ci\u0007bell","role":"viewer"}"#)) { r in
                    #expect(r.status == .badRequest && Self.message(r).contains("control character"), "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/tokens/\(adminID)", method: .delete, headers: auth) { r in
                    #expect(r.status == .conflict && Self.message(r).contains("last admin token"), "\(r.status) \(Self.message(r))")
                }
                // Still an admin: the refused revocation changed nothing.
                try await client.execute(uri: "/api/tokens", method: .get, headers: auth) { #expect($0.status == .ok) }
                let second = try await state.tokens.mint(name: "second admin", role: .admin, by: "test")
                try await client.execute(uri: "/api/tokens/\(adminID)", method: .delete, headers: auth) { #expect($0.status == .noContent) }
                try await client.execute(uri: "/api/tokens", method: .get, headers: auth) { #expect($0.status == .unauthorized) }
                // The second admin is the last one now.
                try await client.execute(uri: "/api/tokens/\(second.info.id)", method: .delete, headers: [.authorization: "Bearer \(second.token)"]) { r in
                    #expect(r.status == .conflict, "\(r.status) \(Self.message(r))")
                }
                #expect(try state.tokens.list().filter { $0.role == .admin && !$0.revoked }.map(\.id) == [second.info.id])
            }
        }
    }

    @Test("variables over HTTP: an operator sets and deletes (audited, recorded as the token), a viewer reads but cannot set, a secret only by reference; bad input is 400 with nothing recorded")
    func variables() async throws {
        try await Self.withServer { state, token in
            let viewer = try await state.tokens.mint(name: "watcher", role: .viewer, by: "test").token
            let op = try await state.tokens.mint(name: "deployer", role: .operator, by: "test")
            let app = Application(router: Routes.build(state))
            @Sendable func auth(_ t: String) -> HTTPFields { [.authorization: "Bearer \(t)", .contentType: "application/json"] }
            try await app.test(.router) { client in
                try await client.execute(uri: "/api/variables/region", method: .put, headers: auth(viewer), body: ByteBuffer(string: #"{"value":"eu"}"#)) { r in
                    #expect(r.status == .forbidden, "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/variables/region", method: .put, headers: auth(op.token), body: ByteBuffer(string: #"{"value":"eu","reason":"launch"}"#)) { r in
                    #expect(r.status == .ok, "\(Self.message(r))")
                }
                let before = try state.ledger.events(inStream: StreamID.variables).count
                for (path, body, status, words) in [
                    ("/api/variables/api_token", #"{"value":"abc123secret"}"#, HTTPResponse.Status.badRequest, "looks secret"),
                    ("/api/variables/region", #"{"value":"eu","reference":"env:X"}"#, .badRequest, "not both"),
                    ("/api/variables/region", #"{"reference":"vault:x"}"#, .badRequest, "must be env:NAME or file:/absolute/path"),
                    ("/api/variables/region", #"{"value":"\#(String(repeating: "x", count: 70_000))"}"#, .contentTooLarge, "at most 65536"),
                    ("/api/variables/region", #"{"value":3}"#, .badRequest, ""),
                ] {
                    try await client.execute(uri: path, method: .put, headers: auth(op.token), body: ByteBuffer(string: body)) { r in
                        #expect(r.status == status && (words.isEmpty || Self.message(r).contains(words)), "\(path) \(body.prefix(60)): \(r.status) \(Self.message(r))")
                    }
                }
                #expect(try state.ledger.events(inStream: StreamID.variables).count == before)
                try await client.execute(uri: "/api/variables/api_token", method: .put, headers: auth(op.token), body: ByteBuffer(string: #"{"reference":"env:API_TOKEN"}"#)) { r in
                    #expect(r.status == .ok, "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/variables", method: .get, headers: auth(viewer)) { r in
                    let list = try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [[String: Any]] ?? []
                    #expect(list.map { $0["key"] as? String } == ["api_token", "region"])
                    #expect(list.first?["reference"] as? String == "env:API_TOKEN" && list.first?["secret"] as? Bool == true)
                    #expect(list.last?["setBy"] as? String == "token:deployer (\(op.info.id))")
                }
                try await client.execute(uri: "/api/variables/region?reason=gone", method: .delete, headers: auth(op.token)) { r in
                    #expect(r.status == .noContent, "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/variables/region", method: .get, headers: auth(viewer)) { r in
                    let o = try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any] ?? [:]
                    let history = o["history"] as? [[String: Any]] ?? []
                    #expect(history.map { $0["action"] as? String } == ["set", "deleted"])
                    #expect(history.map { $0["reason"] as? String } == ["launch", "gone"])
                    #expect(o["variable"] == nil || o["variable"] is NSNull)
                }
                try await client.execute(uri: "/api/variables/never", method: .get, headers: auth(viewer)) { #expect($0.status == .notFound) }
                try await client.execute(uri: "/api/runs/nope/r1/variables", method: .get, headers: auth(viewer)) { #expect($0.status == .notFound) }
            }
            // Each change and refusal is audited with the token that made it.
            let audits = try state.ledger.events(inStream: "audit").compactMap { try? JSONSerialization.jsonObject(with: $0.payload) as? [String: Any] }
            let actions = audits.filter { ($0["action"] as? String ?? "").hasPrefix("variable.") }.map { "\($0["action"]!) \($0["outcome"]!)" }
            #expect(actions == ["variable.set denied", "variable.set ok"] + Array(repeating: "variable.set refused", count: 4) + ["variable.set ok", "variable.delete ok"], "\(actions)")
        }
    }

    @Test("connections over HTTP: set with several hosts and a password reference (operator), listed without it (viewer); a password in clear, a secret extra or no host is 400 with nothing recorded")
    func connections() async throws {
        try await Self.withServer { state, token in
            let viewer = try await state.tokens.mint(name: "watcher", role: .viewer, by: "test").token
            let app = Application(router: Routes.build(state))
            @Sendable func auth(_ t: String) -> HTTPFields { [.authorization: "Bearer \(t)", .contentType: "application/json"] }
            try await app.test(.router) { client in
                for (body, words) in [
                    (#"{"hosts":["db1"],"password":"hunter2"}"#, "a password is never taken in clear"),
                    (#"{"hosts":["db1"],"extra":{"secret_key":"x"}}"#, "extra 'secret_key' looks secret"),
                    (#"{"hosts":[]}"#, "needs at least one host"),
                ] {
                    try await client.execute(uri: "/api/connections/warehouse", method: .put, headers: auth(token), body: ByteBuffer(string: body)) { r in
                        #expect(r.status == .badRequest && Self.message(r).contains(words), "\(body): \(Self.message(r))")
                    }
                }
                #expect(try state.ledger.events(inStream: StreamID.connections).isEmpty)
                let good = #"{"hosts":["db1","db2"],"port":5432,"login":"etl","password_ref":"env:PGPASSWORD","extra":{"sslmode":"require"},"reason":"setup"}"#
                try await client.execute(uri: "/api/connections/warehouse", method: .put, headers: auth(viewer), body: ByteBuffer(string: good)) { #expect($0.status == .forbidden) }
                try await client.execute(uri: "/api/connections/warehouse", method: .put, headers: auth(token), body: ByteBuffer(string: good)) { r in
                    #expect(r.status == .ok, "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/connections", method: .get, headers: auth(viewer)) { r in
                    let list = try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [[String: Any]] ?? []
                    #expect(list.first?["hosts"] as? [String] == ["db1", "db2"] && list.first?["passwordReference"] as? String == "env:PGPASSWORD")
                    #expect(list.first?["setBy"] as? String == "token:test (\(try #require(state.tokens.list().first?.id)))")
                }
                try await client.execute(uri: "/api/connections/warehouse", method: .get, headers: auth(viewer)) { r in
                    let o = try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any] ?? [:]
                    #expect((o["history"] as? [[String: Any]])?.first?["reason"] as? String == "setup")
                }
                try await client.execute(uri: "/api/connections/warehouse", method: .delete, headers: auth(token)) { #expect($0.status == .noContent) }
                try await client.execute(uri: "/api/connections/warehouse", method: .delete, headers: auth(token)) { #expect($0.status == .notFound) }
            }
        }
    }

    @Test("every event the server writes (OpenLineage ingest, tokens, audit) decodes as its type's payload, with no undeclared field")


    func ingestConformsToSchema() async throws {
        try await Self.withServer { state, token in
            let app = Application(router: Routes.build(state))
            let auth: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
            let assertions = #""dataQualityAssertions":{"_producer":"https://p","_schemaURL":"https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json","assertions":[{"assertion":"not_null","success":false,"column":"id"}]}"#
            let metrics = #""dataQualityMetrics":{"_producer":"https://p","_schemaURL":"https://openlineage.io/spec/facets/1-0-2/DataQualityMetricsInputDatasetFacet.json","rowCount":12,"columnMetrics":{"id":{"nullCount":1}}}"#
            let batch = "[" + [
                SchemaValidatorTests.runEvent { $0.replacingOccurrences(of: #""COMPLETE""#, with: #""START""#) },
                SchemaValidatorTests.runEvent {
                    $0.replacingOccurrences(of: #""facets":{"schema":"#, with: #""facets":{\#(assertions),"schema":"#)
                        .replacingOccurrences(of: #""outputFacets":{"#, with: #""outputFacets":{\#(metrics.replacingOccurrences(of: "Input", with: "Output")),"#)
                },
                SchemaValidatorTests.runEvent {
                    $0.replacingOccurrences(of: #""COMPLETE""#, with: #""FAIL""#).replacingOccurrences(of: "0000000000aa", with: "0000000000bb")
                },
                #"{"eventTime":"2026-11-21T10:00:00Z","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent","job":{"namespace":"ns","name":"static_job"},"inputs":[{"namespace":"n","name":"a","facets":{"schema":\#(SchemaValidatorTests.schemaFacet)}}],"outputs":[{"namespace":"n","name":"b"}]}"#,
            ].joined(separator: ",") + "]"
            try await app.test(.router) { client in
                try await client.execute(uri: "/api/v1/lineage/batch", method: .post, headers: auth, body: ByteBuffer(string: batch)) { r in
                    #expect(r.status == .ok, "\(Self.message(r))")
                }
                try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"name":"ci","role":"viewer"}"#)) { r in
                    #expect(r.status == .created, "\(Self.message(r))")
                }
            }
            var problems: [String] = []
            var types = Set<String>()
            try state.ledger.scan { event in
                types.insert(event.type)
                problems += EventSchema.problems(type: event.type, payload: event.payload).map { "seq \(event.seq): \($0)" }
                return true
            }
            for written in [EventType.openLineageReceived, EventType.runQueued, EventType.taskStarted, EventType.taskFailed, EventType.expectationEvaluated,
                            EventType.variableRecorded, EventType.chunkStatusChanged, EventType.datasetDescribed, EventType.dagRegistered,
                            EventType.tokenCreated, EventType.auditRecorded] {
                #expect(types.contains(written), "the scenario wrote no \(written)")
            }
            #expect(problems.isEmpty, "\(problems.prefix(20).joined(separator: "\n"))")
        }
    }
}
