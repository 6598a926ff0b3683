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
            let gridSize = 25
            let (dag, runs, details) = try await state.views.read { views, _ in
                let runs = try views.runs(RunQuery(dag: name, limit: 200))
                let details = try runs.prefix(gridSize).reversed().compactMap { try views.run(RunKey(dag: $0.dag, run: $0.run)) }
                return (try DAGCatalog.named(name, state.engine, views), runs, details)
            }
            guard dag != nil || !runs.isEmpty else { throw APIError(.notFound, "no DAG named '\(name)'") }
            // The grid: a column per run (oldest left), a row per task (the DAG's order, then any other seen).
            var taskIDs = dag?.spec?.tasks.map(\.id) ?? []
            for d in details { for t in d.tasks where !taskIDs.contains(t.task) { taskIDs.append(t.task) } }
            let dagPath = Routes.escape(name)
            let gridRuns = details.map { d -> Page in
                ["run": d.run.run, "runPath": Routes.escape(d.run.run), "dagPath": dagPath, "state": d.run.state, "label": String(d.run.run.suffix(14))]
            }
            let gridTasks = taskIDs.map { id -> Page in
                let cells = details.map { d -> Page in
                    let s = d.tasks.first { $0.task == id }?.state ?? "none"
                    return ["task": id, "run": d.run.run, "runPath": Routes.escape(d.run.run), "dagPath": dagPath, "state": s,
                            "cls": s.hasPrefix("queued") ? "queued" : s]
                }
                return ["task": id, "cells": cells]
            }
            return render("dag", "DAG \(name)", context, [
                "gridRuns": gridRuns, "gridTasks": gridTasks, "gridCount": details.count, "hasGrid": !details.isEmpty,
                "path": Routes.escape(name), "description": dag?.spec?.description ?? "recorded runs", "version": dag.map { String($0.version.prefix(12)) } ?? "-",
                "schedule": dag?.schedule ?? "-", "origin": dag?.origin ?? "-",
                "taskCount": dag?.spec?.tasks.count ?? 0, "canTrigger": dag?.runnable == true && (context.identity?.role ?? .viewer) >= .operator,
                "runs": runs.map { ["run": $0.run, "dagPath": Routes.escape(name), "runPath": Routes.escape($0.run), "state": $0.state, "queued": time($0.queuedMicros), "trigger": $0.trigger ?? "-"] as Page },
            ])
        }

        // The code view: a version's definition, and for a pipeline file the file and its scripts as
        // that version ran them.
        pages.get("/dags/:dag/code") { request, context -> Response in
            _ = try context.require(.viewer)
            let name = try Routes.param(context, "dag")
            let events = try state.ledger.events(inStream: StreamID.dag(name)).filter { $0.type == EventType.dagRegistered }
            let versions = events.compactMap { e in (try? JSONDecoder().decode(DAGRegistered.self, from: e.payload)).map { (e, $0) } }.reversed()
            guard let latest = versions.first else { throw APIError(.notFound, "no DAG named '\(name)' is registered in the ledger") }
            let wanted = request.query("version").flatMap { $0.isEmpty ? nil : $0 }
            guard let (event, chosen) = wanted.map({ v in versions.first { $0.1.version.hasPrefix(v) } }) ?? latest else {
                throw APIError(.notFound, "DAG '\(name)' has no version '\(wanted ?? "")' (versions: \(versions.map { String($0.1.version.prefix(12)) }.joined(separator: ", ")))")
            }
            let sources = try (chosen.sources ?? []).map { f -> Page in
                ["path": f.path, "sha": String(f.sha256.prefix(16)), "bytes": f.bytes, "text": try state.engine.sourceText(f) ?? "(not in this ledger)"]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let definition = chosen.definition.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? "(not recorded)"
            return render("code", "Code of \(name)", context, [
                "dag": name, "path": Routes.escape(name), "version": chosen.version, "registered": time(event.timestampMicros), "origin": chosen.origin ?? "-",
                "versions": versions.map { v in ["version": v.1.version, "time": time(v.0.timestampMicros), "selected": v.1.version == chosen.version] as Page },
                "sources": sources, "definition": definition,
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
