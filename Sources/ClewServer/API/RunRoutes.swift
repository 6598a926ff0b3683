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

/// Runs: listed and shown from the runs view, a task's attempts from the record; triggered, cancelled and resubmitted (operator, audited).
enum RunRoutes {
    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        routes.get("/api/runs") { request, context -> Response in
            _ = try context.require(.viewer)
            let runs = try await state.views.read { views, _ in
                var q = RunQuery(dag: request.query("dag"), state: request.query("state"), limit: try request.intQuery("limit", default: 50, range: 1...10_000), asOf: try Routes.asOf(request, views))
                if let since = request.query("since") { q.sinceMicros = try Routes.micros(since, "since") }
                if let until = request.query("until") { q.untilMicros = try Routes.micros(until, "until") }
                return try views.runs(q)
            }
            return try Reply.json(runs)
        }

        routes.get("/api/runs/:dag/:run") { request, context -> Response in
            _ = try context.require(.viewer)
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            if let detail = try await state.views.read({ views, _ in try views.run(key, asOf: try Routes.asOf(request, views)) }) {
                return try Reply.json(RunResponse(run: detail.run, tasks: detail.tasks, active: await state.runs.isActive(key)))
            }
            if await state.runs.isActive(key) { return try Reply.json(RunManager.accepted(key, state: "queued")) }
            throw APIError(.notFound, "no run '\(key.run)' of DAG '\(key.dag)'")
        }

        routes.get("/api/runs/:dag/:run/tasks/:task") { _, context -> Response in
            _ = try context.require(.viewer)
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let task = try Routes.param(context, "task")
            let recorded: RecordedRun
            do { recorded = try RecordedRun.load(key, from: state.ledger) } catch { throw APIError(.notFound, "\(error)") }
            let attempts = recorded.attempts.filter { $0.task == task }
            guard !attempts.isEmpty else { throw APIError(.notFound, "task '\(task)' has no attempts in run '\(key.run)' of '\(key.dag)'") }
            return try Reply.json(attempts.map(AttemptView.init))
        }

        routes.post("/api/runs") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(TriggerRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "run.trigger", target: body.dag) { identity in
                guard let dag = state.engine.registry.dag(named: body.dag) else {
                    throw APIError(.notFound, "no DAG named '\(body.dag)' (known: \(state.engine.registry.all.map(\.name).joined(separator: ", ")))")
                }
                let callback = try body.callbackURL()
                // Checked before the run is accepted (202), as the engine would when it starts it.
                if let problem = dag.spec.paramsProblem(body.params ?? [:]) { throw APIError(.badRequest, problem) }

                let accepted = try await state.runs.trigger(dag, params: body.params ?? [:], callback: callback, by: identity)
                return try Reply.json(accepted, status: .accepted)
            }
        }

        routes.post("/api/runs/:dag/:run/cancel") { request, context -> Response in
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            return try await Routes.mutate(state, request, context, role: .operator, action: "run.cancel", target: "\(key.dag)/\(key.run)") { _ in
                if await state.runs.cancel(key) { return try Reply.json(RunManager.accepted(key, state: "cancelling"), status: .accepted) }
                guard let detail = try await state.views.read({ views, _ in try views.run(key) }) else {
                    throw APIError(.notFound, "no run '\(key.run)' of DAG '\(key.dag)'")
                }
                throw APIError(.conflict, "run '\(key.run)' is not running in this server (state \(detail.run.state))")
            }
        }

        routes.post("/api/runs/:dag/:run/resubmit") { request, context -> Response in
            var request = request
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let body = try await request.decodeJSON(ResubmitRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "run.resubmit", target: "\(key.dag)/\(key.run)") { _ in
                guard let dag = state.engine.registry.dag(named: key.dag) else { throw APIError(.notFound, "DAG '\(key.dag)' is not known to this server") }
                if let problem = dag.spec.paramsProblem(body.params ?? [:]) { throw APIError(.badRequest, problem) }

                guard try await state.views.read({ views, _ in try views.run(key) }) != nil else { throw APIError(.notFound, "no run '\(key.run)' of DAG '\(key.dag)'") }
                let accepted = try await state.runs.resubmit(key, params: body.params ?? [:], rerun: Set(body.rerun ?? []), callback: try body.callbackURL())
                return try Reply.json(accepted, status: .accepted)
            }
        }
        return routes
    }
}
