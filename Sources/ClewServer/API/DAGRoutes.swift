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

/// The DAGs the server can run and those the ledger knows: `/api/dags`, `/api/dags/:dag`.
enum DAGRoutes {
    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        routes.get("/api/dags") { _, context -> Response in
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

        routes.get("/api/dags/:dag") { request, context -> Response in
            _ = try context.require(.viewer)
            let name = try Routes.param(context, "dag")
            let limit = try request.intQuery("limit", default: 20, range: 1...1000)
            let (dag, runs) = try await state.views.read { views, _ in
                (try DAGCatalog.named(name, state.engine, views), try views.runs(RunQuery(dag: name, limit: limit)))
            }
            guard let dag else { throw APIError(.notFound, "no DAG named '\(name)'") }
            return try Reply.json(DAGDetail(
                name: dag.name, version: dag.version, schedule: dag.schedule, origin: dag.origin, runnable: dag.runnable,
                definition: dag.spec?.redactedForDisplay, runs: runs))
        }
        return routes
    }
}
