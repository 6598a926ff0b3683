import ClewEngine
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The HTTP API (docs/openapi.yaml describes every route), the OpenLineage endpoints and the dashboard.
enum Routes {
    static func build(_ state: ServerState) -> Router<ClewContext> {
        let router = Router(context: ClewContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthMiddleware(state: state))
        api(router, state)
        mutations(router, state)
        LiveStream.register(router, state)
        OpenLineageRoutes.register(router, state)
        Dashboard.register(router, state)
        return router
    }

    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? s
    }

    static func param(_ context: ClewContext, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }

    static func asOf(_ request: Request, _ views: Views) throws -> UInt64? {
        guard let text = request.query("as_of") else { return nil }
        do { return try views.seq(asOf: text) } catch { throw APIError(.badRequest, "query parameter 'as_of': \(error)") }
    }

    // MARK: Reads (viewer)

    static func api(_ router: Router<ClewContext>, _ state: ServerState) {
        router.get("/api/health") { _, _ -> Response in
            let last = try state.ledger.lastSeq
            return try Reply.json(["status": "ok", "ledger": state.ledger.id, "events": String(last)])
        }

        router.get("/api/whoami") { _, context -> Response in
            try Reply.json(try context.require(.viewer))
        }

        router.get("/api/dags") { _, context -> Response in
            _ = try context.require(.viewer)
            let out = try await state.views.read { views, _ in
                try DAGCatalog.all(state.engine, views).map { dag in
                    DAGSummary(
                        name: dag.name, version: dag.version, description: dag.spec?.description ?? "", schedule: dag.schedule,
                        tasks: dag.spec?.tasks.count ?? 0, params: Redaction.redact(params: dag.spec?.params ?? [:]), origin: dag.origin,
                        runnable: dag.runnable, lastRun: try views.runs(RunQuery(dag: dag.name, limit: 1)).first)
                }
            }
            return try Reply.json(out)
        }

        router.get("/api/dags/:dag") { request, context -> Response in
            _ = try context.require(.viewer)
            let name = try param(context, "dag")
            let limit = try request.intQuery("limit", default: 20, range: 1...1000)
            let (dag, runs) = try await state.views.read { views, _ in
                (try DAGCatalog.named(name, state.engine, views), try views.runs(RunQuery(dag: name, limit: limit)))
            }
            guard let dag else { throw APIError(.notFound, "no DAG named '\(name)'") }
            return try Reply.json(DAGDetail(
                name: dag.name, version: dag.version, schedule: dag.schedule, origin: dag.origin, runnable: dag.runnable,
                definition: dag.spec?.redactedForDisplay, runs: runs))
        }

        router.get("/api/runs") { request, context -> Response in
            _ = try context.require(.viewer)
            let runs = try await state.views.read { views, _ in
                var q = RunQuery(dag: request.query("dag"), state: request.query("state"), limit: try request.intQuery("limit", default: 50, range: 1...10_000), asOf: try asOf(request, views))
                if let since = request.query("since") { q.sinceMicros = try micros(since, "since") }
                if let until = request.query("until") { q.untilMicros = try micros(until, "until") }
                return try views.runs(q)
            }
            return try Reply.json(runs)
        }

        router.get("/api/runs/:dag/:run") { request, context -> Response in
            _ = try context.require(.viewer)
            let key = RunKey(dag: try param(context, "dag"), run: try param(context, "run"))
            if let detail = try await state.views.read({ views, _ in try views.run(key, asOf: try asOf(request, views)) }) {
                return try Reply.json(RunResponse(run: detail.run, tasks: detail.tasks, active: await state.runs.isActive(key)))
            }
            if await state.runs.isActive(key) { return try Reply.json(RunManager.accepted(key, state: "queued")) }
            throw APIError(.notFound, "no run '\(key.run)' of DAG '\(key.dag)'")
        }

        router.get("/api/runs/:dag/:run/tasks/:task") { _, context -> Response in
            _ = try context.require(.viewer)
            let key = RunKey(dag: try param(context, "dag"), run: try param(context, "run"))
            let task = try param(context, "task")
            let recorded: RecordedRun
            do { recorded = try RecordedRun.load(key, from: state.ledger) } catch { throw APIError(.notFound, "\(error)") }
            let attempts = recorded.attempts.filter { $0.task == task }
            guard !attempts.isEmpty else { throw APIError(.notFound, "task '\(task)' has no attempts in run '\(key.run)' of '\(key.dag)'") }
            return try Reply.json(attempts.map(AttemptView.init))
        }

        router.get("/api/datasets") { request, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try await state.views.read { views, _ in try views.datasets(asOf: try asOf(request, views)) })
        }

        router.get("/api/chunks") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let dataset = request.query("dataset") else { throw APIError(.badRequest, "query parameter 'dataset' is required") }
            return try await state.views.read { views, _ in
                let asOf = try asOf(request, views)
                if let status = request.query("status") {
                    let known = ChunkStatus.allCases.map(\.rawValue) + ["stale", "missing"]
                    guard known.contains(status) else { throw APIError(.badRequest, "query parameter 'status' must be one of \(known.joined(separator: ", ")), got '\(status)'") }
                    return try Reply.json(try views.chunks(dataset: dataset, status: status, limit: try request.intQuery("limit", default: 100, range: 1...100_000), asOf: asOf))
                }
                guard let report = try views.chunkStatus(dataset: dataset, ranges: try request.intQuery("ranges", default: 20, range: 1...10_000), asOf: asOf) else {
                    throw APIError(.notFound, "no dataset named '\(dataset)'")
                }
                return try Reply.json(report)
            }
        }

        router.get("/api/values") { request, context -> Response in
            _ = try context.require(.viewer)
            let match: ValueMatch
            if let eq = request.query("eq") {
                match = .equals((try? JSONTree.parse(Data(eq.utf8))) ?? .string(eq))
            } else if request.query("min") != nil || request.query("max") != nil {
                func bound(_ n: String) throws -> Double? {
                    guard let t = request.query(n) else { return nil }
                    guard let d = Double(t) else { throw APIError(.badRequest, "query parameter '\(n)' must be a number, got '\(t)'") }
                    return d
                }
                match = .range(min: try bound("min"), max: try bound("max"))
            } else if let prefix = request.query("prefix") {
                match = .prefix(prefix)
            } else if let digest = request.query("digest") {
                match = .digest(digest)
            } else {
                match = .any
            }
            let name = request.query("name")
            if name == nil, case .digest = match {} else if name == nil {
                throw APIError(.badRequest, "query parameter 'name' is required (or give 'digest')")
            }
            return try Reply.json(try await state.views.read { views, _ in
                try views.values(name: name, task: request.query("task"), match: match, asOf: try asOf(request, views), limit: try request.intQuery("limit", default: 100, range: 1...10_000))
            })
        }

        router.get("/api/lineage") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let id = request.query("node") else { throw APIError(.badRequest, "query parameter 'node' is required") }
            let direction: LineageDirection
            switch request.query("direction") ?? "up" {
            case "up": direction = .up
            case "down": direction = .down
            case let other: throw APIError(.badRequest, "query parameter 'direction' must be up or down, got '\(other)'")
            }
            let depth = try request.intQuery("depth", default: 10, range: 1...1000)
            return try Reply.json(try await state.views.read { views, f in
                try f.trace(try f.node(id), direction: direction, depth: depth, asOf: try asOf(request, views))
            })
        }

        router.get("/api/search/tasks") { request, context -> Response in
            _ = try context.require(.viewer)
            func condition(_ n: String) throws -> ValueCondition? {
                guard let t = request.query(n) else { return nil }
                do { return try ValueCondition(parsing: t) } catch { throw APIError(.badRequest, "query parameter '\(n)': \(error)") }
            }
            let q = TaskQuery(
                task: request.query("task"), dag: request.query("dag"), output: try condition("output"), input: try condition("input"),
                variable: try condition("var"), limit: try request.intQuery("limit", default: 100, range: 1...10_000))
            guard q.task != nil || q.output != nil || q.input != nil || q.variable != nil else {
                throw APIError(.badRequest, "give at least one of 'task', 'output', 'input', 'var'")
            }
            return try Reply.json(try await state.views.read { views, f in
                var q = q
                q.asOf = try asOf(request, views)
                return try f.searchTasks(q)
            })
        }

        router.get("/api/why") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let chunk = request.query("chunk") else { throw APIError(.badRequest, "query parameter 'chunk' (DATASET/KEY) is required") }
            return try Reply.json(try await state.views.read { _, f in
                let node = try f.node(chunk)
                guard node.hasPrefix("chunk:") else { throw APIError(.badRequest, "'\(chunk)' is not a chunk (give DATASET/KEY)") }
                let (dataset, key) = try f.chunkParts(node)
                return try f.why(dataset: dataset, chunk: key, run: request.query("run"))
            })
        }

        router.get("/api/culprit") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let id = request.query("node") else { throw APIError(.badRequest, "query parameter 'node' is required") }
            return try Reply.json(try await state.views.read { _, f in try f.culprit(try f.node(id)) })
        }

        router.get("/api/impact") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let id = request.query("node") else { throw APIError(.badRequest, "query parameter 'node' is required") }
            return try Reply.json(try await state.views.read { _, f in try f.impact(try f.node(id)) })
        }

        router.get("/api/verify") { _, context -> Response in
            _ = try context.require(.viewer)
            guard let last = state.verifier.latest else { throw APIError(.notFound, "the ledger has not been verified since the server started; POST /api/verify") }
            return try Reply.json(last)
        }

        router.post("/api/verify") { _, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try await state.verifier.run())
        }

        router.get("/api/integrity") { _, context -> Response in
            _ = try context.require(.viewer)
            let stats = try state.ledger.stats()
            let checkpoints = try state.ledger.checkpoints()
            let views = try await state.views.read { views, _ in try views.status() }
            return try Reply.json(Integrity(stats: stats, checkpoints: checkpoints, views: views, lastVerify: state.verifier.latest))
        }

        router.get("/api/tokens") { _, context -> Response in
            _ = try context.require(.admin)
            return try Reply.json(try state.tokens.list())
        }

        router.get("/api/audit") { request, context -> Response in
            _ = try context.require(.admin)
            return try Reply.json(try state.audit.recent(limit: try request.intQuery("limit", default: 100, range: 1...10_000)))
        }
    }


    static func micros(_ text: String, _ name: String) throws -> Int64 {
        guard let m = OpenLineageIngest.micros(text) ?? OpenLineageIngest.micros(text + "T00:00:00Z") else {
            throw APIError(.badRequest, "query parameter '\(name)' must be an ISO 8601 UTC time, got '\(text)'")
        }
        return m
    }

    // MARK: Mutations (operator; admin for tokens). Each is audited, refused ones too.

    /// Checks the role (auditing a refusal), runs `body`, audits the outcome.
    static func mutate(
        _ state: ServerState, _ request: Request, _ context: ClewContext, role: Role, action: String, target: String?,
        _ body: (Identity) async throws -> Response
    ) async throws -> Response {
        let identity: Identity
        do { identity = try context.require(role) } catch let e as APIError {
            try? await state.audit.record(context.audit(request, action: action, target: target, outcome: "denied", detail: e.message))
            throw e
        }
        do {
            let response = try await body(identity)
            try await state.audit.record(context.audit(request, action: action, target: target, outcome: "ok"))
            return response
        } catch let e as APIError {
            try? await state.audit.record(context.audit(request, action: action, target: target, outcome: "refused", detail: e.message))
            throw e
        }
    }

    static func mutations(_ router: Router<ClewContext>, _ state: ServerState) {
        router.post("/api/runs") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(TriggerRequest.self)
            return try await mutate(state, request, context, role: .operator, action: "run.trigger", target: body.dag) { identity in
                guard let dag = state.engine.registry.dag(named: body.dag) else {
                    throw APIError(.notFound, "no DAG named '\(body.dag)' (known: \(state.engine.registry.all.map(\.name).joined(separator: ", ")))")
                }
                let callback = try body.callbackURL()
                let unknown = Set((body.params ?? [:]).keys).subtracting(dag.spec.params.keys)
                guard unknown.isEmpty else {
                    throw APIError(.badRequest, "params: \(unknown.sorted().joined(separator: ", ")) not declared by DAG '\(dag.name)' (declared: \(dag.spec.params.keys.sorted().joined(separator: ", ")))")
                }
                let accepted = try await state.runs.trigger(dag, params: body.params ?? [:], callback: callback, by: identity)
                return try Reply.json(accepted, status: .accepted)
            }
        }

        router.post("/api/runs/:dag/:run/cancel") { request, context -> Response in
            let key = RunKey(dag: try param(context, "dag"), run: try param(context, "run"))
            return try await mutate(state, request, context, role: .operator, action: "run.cancel", target: "\(key.dag)/\(key.run)") { _ in
                if await state.runs.cancel(key) { return try Reply.json(RunManager.accepted(key, state: "cancelling"), status: .accepted) }
                guard let detail = try await state.views.read({ views, _ in try views.run(key) }) else {
                    throw APIError(.notFound, "no run '\(key.run)' of DAG '\(key.dag)'")
                }
                throw APIError(.conflict, "run '\(key.run)' is not running in this server (state \(detail.run.state))")
            }
        }

        router.post("/api/runs/:dag/:run/resubmit") { request, context -> Response in
            var request = request
            let key = RunKey(dag: try param(context, "dag"), run: try param(context, "run"))
            let body = try await request.decodeJSON(ResubmitRequest.self)
            return try await mutate(state, request, context, role: .operator, action: "run.resubmit", target: "\(key.dag)/\(key.run)") { _ in
                guard state.engine.registry.dag(named: key.dag) != nil else { throw APIError(.notFound, "DAG '\(key.dag)' is not known to this server") }
                guard try await state.views.read({ views, _ in try views.run(key) }) != nil else { throw APIError(.notFound, "no run '\(key.run)' of DAG '\(key.dag)'") }
                let accepted = try await state.runs.resubmit(key, params: body.params ?? [:], rerun: Set(body.rerun ?? []), callback: try body.callbackURL())
                return try Reply.json(accepted, status: .accepted)
            }
        }

        router.post("/api/quarantine") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(QuarantineRequest.self)
            return try await mutate(state, request, context, role: .operator, action: "lineage.quarantine", target: body.node) { identity in
                guard !body.reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw APIError(.badRequest, "body: 'reason' must not be empty") }
                let report = try await state.views.read { _, f in try f.impact(try f.node(body.node)) }
                let f = try await state.views.read { views, _ in Forensics(ledger: state.ledger, views: views) }
                let done = try await f.quarantine(report, reason: body.reason, actor: "token:\(identity.name)")
                return try Reply.json(done, status: .created)
            }
        }

        router.post("/api/tokens") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(TokenRequest.self)
            return try await mutate(state, request, context, role: .admin, action: "token.create", target: body.name) { identity in
                guard let role = Role(rawValue: body.role) else {
                    throw APIError(.badRequest, "body: 'role' must be viewer, operator or admin, got '\(body.role)'")
                }
                do {
                    return try Reply.json(try await state.tokens.mint(name: body.name, role: role, by: identity.name), status: .created)
                } catch let e as TokenError { throw APIError(.badRequest, e.description) }
            }
        }

        router.delete("/api/tokens/:id") { request, context -> Response in
            let id = try param(context, "id")
            return try await mutate(state, request, context, role: .admin, action: "token.revoke", target: id) { identity in
                guard try await state.tokens.revoke(id: id, by: identity.name) else { throw APIError(.notFound, "no active token with id '\(id)'") }
                return Response(status: .noContent)
            }
        }
    }
}

// MARK: Bodies and answers

struct TriggerRequest: Decodable {
    var dag: String
    var params: [String: String]?
    var callback_url: String?

    func callbackURL() throws -> URL? { try Self.url(callback_url) }

    static func url(_ text: String?) throws -> URL? {
        guard let text else { return nil }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host?.isEmpty == false else {
            throw APIError(.badRequest, "body: 'callback_url' must be an http(s) URL with a host, got '\(text)'")
        }
        return url
    }
}

struct ResubmitRequest: Decodable {
    var params: [String: String]?
    var rerun: [String]?
    var callback_url: String?
    func callbackURL() throws -> URL? { try TriggerRequest.url(callback_url) }
}

struct QuarantineRequest: Decodable {
    var node: String
    var reason: String
}

struct TokenRequest: Decodable {
    var name: String
    var role: String
}

struct DAGSummary: Encodable {
    var name: String
    var version: String
    var description: String
    /// As written: `@daily`, `0 6 * * *`, `every 3600s`.
    var schedule: String?
    var tasks: Int
    var params: [String: String]
    var origin: String
    /// This server can run it (`POST /api/runs`); false for DAGs only the ledger knows.
    var runnable: Bool
    var lastRun: RunRecord?
}

struct DAGDetail: Encodable {
    var name: String
    var version: String
    var schedule: String?
    var origin: String
    var runnable: Bool
    var definition: DAGSpec?
    var runs: [RunRecord]
}

struct RunResponse: Encodable {
    var run: RunRecord
    var tasks: [TaskRecord]
    /// Running in this server now (cancellable).
    var active: Bool
}

struct Integrity: Encodable {
    var stats: LedgerStats
    var checkpoints: [SignedCheckpoint]
    var views: [ViewStatusInfo]
    var lastVerify: VerifyCache.Result?
}

/// One recorded attempt, for the API and the replay inspector.
struct AttemptView: Encodable {
    struct Step: Encodable {
        var step: Int
        var kind: String
        var name: String
        var value: String?
        var seq: UInt64
    }

    var id: String
    var task: String
    var attempt: Int
    var outcome: String
    var error: String?
    var output: String?
    var steps: [Step]

    init(_ a: RecordedAttempt) {
        id = a.id
        task = a.task
        attempt = a.attempt
        outcome = a.outcome.word
        if case .failed(let e) = a.outcome { error = e }
        output = a.output?.text
        steps = a.steps.map { Step(step: $0.step, kind: $0.kind, name: $0.name, value: $0.value.text, seq: $0.seq) }
    }
}

extension DAGSpec {
    /// The definition with secret-looking params and command environment variables redacted.
    var redactedForDisplay: DAGSpec {
        (try? JSONDecoder().decode(DAGSpec.self, from: canonicalJSON)) ?? self
    }
}
