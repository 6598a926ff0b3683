import ClewEngine
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

extension Dashboard {
    /// DAG pages: the list, one DAG with its runs, and triggering a run (operator).
    static func dagPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        pages.get("/dags") { _, context -> Response in
            _ = try context.require(.viewer)
            let rows = try await state.views.read { views, _ in
                try DAGCatalog.all(state.engine, views).map { dag -> Page in
                    var row: Page = [
                        "name": dag.name, "path": Routes.escape(dag.name), "version": String(dag.version.prefix(12)),
                        "tasks": dag.spec?.tasks.count ?? 0, "schedule": dag.schedule ?? "-", "origin": dag.origin,
                    ]
                    if let run = try views.runs(RunQuery(dag: dag.name, limit: 1)).first {
                        row["lastRun"] = ["run": run.run, "runPath": Routes.escape(run.run), "state": run.state]
                    }
                    return row
                }
            }
            return render("dags", "DAGs", context, ["dags": rows])
        }

        pages.get("/dags/:dag") { _, context -> Response in
            _ = try context.require(.viewer)
            let name = try Routes.param(context, "dag")
            let (dag, runs) = try await state.views.read { views, _ in
                (try DAGCatalog.named(name, state.engine, views), try views.runs(RunQuery(dag: name, limit: 200)))
            }
            guard dag != nil || !runs.isEmpty else { throw APIError(.notFound, "no DAG named '\(name)'") }
            return render("dag", "DAG \(name)", context, [
                "path": Routes.escape(name), "description": dag?.spec?.description ?? "recorded runs", "version": dag.map { String($0.version.prefix(12)) } ?? "-",
                "schedule": dag?.schedule ?? "-", "origin": dag?.origin ?? "-",
                "taskCount": dag?.spec?.tasks.count ?? 0, "canTrigger": dag?.runnable == true && (context.identity?.role ?? .viewer) >= .operator,
                "runs": runs.map { ["run": $0.run, "dagPath": Routes.escape(name), "runPath": Routes.escape($0.run), "state": $0.state, "queued": time($0.queuedMicros), "trigger": $0.trigger ?? "-"] as Page },
            ])
        }

        pages.post("/dags/:dag/trigger") { request, context -> Response in
            let name = try Routes.param(context, "dag")
            return try await Routes.mutate(state, request, context, role: .operator, action: "run.trigger", target: name) { identity in
                guard let dag = state.engine.registry.dag(named: name) else { throw APIError(.notFound, "no DAG named '\(name)'") }
                let accepted = try await state.runs.trigger(dag, params: [:], callback: nil, by: identity)
                return Reply.redirect(accepted.links["page"] ?? "/")
            }
        }
        return pages
    }
}
