import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import Foundation
import HTTPTypes
import Hummingbird

/// SLA misses and alerts: what missed (viewer), what was sent and whether it arrived (viewer), and the
/// alert defaults (read by viewers, set by operators, audited) (docs/operations.md).
enum OperationsRoutes {
    static func limit(_ request: Request) throws -> Int {
        guard let text = request.query("limit") else { return 100 }
        guard let n = Int(text), (1...10_000).contains(n) else { throw APIError(.badRequest, "limit '\(text)' is not a whole number in 1...10000") }
        return n
    }

    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        // A new alerter per request: it reads the defaults as they are now (another process may set them).
        let alerter: @Sendable () -> Alerter = { Alerter(ledger: state.ledger) }
        routes.get("/api/sla") { request, context -> Response in
            _ = try context.require(.viewer)
            let dag = request.query("dag"), run = request.query("run")
            if run != nil, dag == nil { throw APIError(.badRequest, "run needs dag") }
            do {
                return try Reply.json(try SLA.recorded(in: state.ledger, dag: dag, run: run, limit: try limit(request)))
            } catch let e as EngineError where e.category == .notFound {
                throw APIError(.notFound, e.description)
            }
        }
        routes.get("/api/alerts") { request, context -> Response in
            _ = try context.require(.viewer)
            let rule = request.query("rule")
            if let rule, AlertRule(rawValue: rule) == nil {
                throw APIError(.badRequest, "rule '\(rule)' is not one of \(AlertRule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let failed = request.query("failed").map { ["1", "true", "yes"].contains($0) } ?? false
            return try Reply.json(try Alerter.deliveries(in: state.ledger, dag: request.query("dag"), rule: rule, failedOnly: failed, limit: try limit(request)))
        }
        routes.get("/api/alerts/defaults") { _, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(alerter().defaults() ?? AlertDefaults())
        }
        routes.put("/api/alerts/defaults") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(AlertDefaults.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "alerts.configure", target: "defaults") { identity in
                let a = alerter()
                do { _ = try await a.setDefaults(body, by: VariableRoutes.actor(identity)) } catch let e as AlertSpecError {
                    throw APIError(.badRequest, e.description)
                }
                return try Reply.json(a.defaults() ?? body)
            }
        }
        pools(routes, state)
        taskActions(routes, state)
        return routes
    }

    /// An engine or settings refusal as the API's error, so it is audited as `refused` with its status.
    static func refusal<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let e as any ClewError where !(e is APIError) {
            throw APIError(HTTPResponse.Status(code: e.category.httpStatus), e.description)
        }
    }

    struct ClearRequest: Decodable {
        var reason: String?
        var params: [String: String]?
    }

    struct MarkAnswer: Encodable {
        var seq: UInt64
        var task: String
        var state: String
    }

    struct MarkRequest: Decodable {
        var state: String
        var reason: String?
    }

    /// Clears a task (recorded, then the run is resubmitted in the background) or marks it; both also
    /// used by the dashboard's forms.
    static func clear(_ state: ServerState, _ key: RunKey, task: String, reason: String?, params: [String: String], by identity: Identity) async throws -> RunManager.Accepted {
        try await refusal {
            guard await !state.runs.isActive(key) else { throw APIError(.conflict, "run \(key.run) of \(key.dag) is running; wait for it to end or cancel it first") }
            guard state.engine.registry.dag(named: key.dag) != nil else {
                throw APIError(.notFound, "DAG \(key.dag) is not known to this server (its pipelines); it cannot run again")
            }
            let cleared = try await state.engine.recordClear(dag: key.dag, run: key.run, task: task, reason: reason, by: VariableRoutes.actor(identity))
            return try await state.runs.resubmit(key, params: params, rerun: Set(cleared), callback: nil)
        }
    }

    static func mark(_ state: ServerState, _ key: RunKey, task: String, as mark: String, reason: String?, by identity: Identity) async throws -> UInt64 {
        try await refusal {
            guard let m = Engine.TaskMark(rawValue: mark) else { throw APIError(.badRequest, "state '\(mark)' is not success or failed") }
            guard await !state.runs.isActive(key) else { throw APIError(.conflict, "run \(key.run) of \(key.dag) is running; wait for it to end or cancel it first") }
            return try await state.engine.mark(dag: key.dag, run: key.run, task: task, as: m, reason: reason, by: VariableRoutes.actor(identity))
        }
    }

    /// `POST /api/runs/{dag}/{run}/tasks/{task}/clear` and `…/mark` (operator, audited as task.clear and task.mark).
    static func taskActions(_ routes: RouteCollection<ClewContext>, _ state: ServerState) {
        routes.post("/api/runs/:dag/:run/tasks/:task/clear") { request, context -> Response in
            var request = request
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let task = try Routes.param(context, "task")
            let body = try await request.decodeJSON(ClearRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "task.clear", target: "\(key.dag)/\(key.run)/\(task)") { identity in
                try Reply.json(try await clear(state, key, task: task, reason: body.reason, params: body.params ?? [:], by: identity), status: .accepted)
            }
        }
        routes.post("/api/runs/:dag/:run/tasks/:task/mark") { request, context -> Response in
            var request = request
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let task = try Routes.param(context, "task")
            let body = try await request.decodeJSON(MarkRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "task.mark", target: "\(key.dag)/\(key.run)/\(task)") { identity in
                let seq = try await mark(state, key, task: task, as: body.state, reason: body.reason, by: identity)
                return try Reply.json(MarkAnswer(seq: seq, task: task, state: body.state))
            }
        }
    }

    struct PoolRequest: Decodable {
        var slots: Int
        var description: String?
        var reason: String?
    }

    /// `GET /api/pools` (viewer: each pool with who holds and waits), `GET /api/pools/{name}`, `PUT` and
    /// `DELETE` (operator, audited).
    static func pools(_ routes: RouteCollection<ClewContext>, _ state: ServerState) {
        let store = state.engine.pools
        routes.get("/api/pools") { _, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try store.list().map { try store.occupancy($0.name) })
        }
        routes.get("/api/pools/:name") { _, context -> Response in
            _ = try context.require(.viewer)
            let name = try Routes.param(context, "name")
            guard try store.get(name) != nil else { throw APIError(.notFound, "no pool '\(name)' is set") }
            return try Reply.json(try store.occupancy(name))
        }
        routes.put("/api/pools/:name") { request, context -> Response in
            var request = request
            let name = try Routes.param(context, "name")
            let body = try await request.decodeJSON(PoolRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "pool.set", target: name) { identity in
                try Reply.json(try await VariableRoutes.api {
                    try await store.set(name, slots: body.slots, description: body.description, reason: body.reason, by: VariableRoutes.actor(identity))
                })
            }
        }
        routes.delete("/api/pools/:name") { request, context -> Response in
            let name = try Routes.param(context, "name")
            return try await Routes.mutate(state, request, context, role: .operator, action: "pool.delete", target: name) { identity in
                try await VariableRoutes.api { try await store.delete(name, reason: request.query("reason"), by: VariableRoutes.actor(identity)) }
                return Response(status: .noContent)
            }
        }
    }
}
