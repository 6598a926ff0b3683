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
    /// Run pages: one run with its tasks, cancelling it (operator), and its replay timeline.
    static func runsPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        pages.post("/runs/:dag/:run/cancel") { request, context -> Response in
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            return try await Routes.mutate(state, request, context, role: .operator, action: "run.cancel", target: "\(key.dag)/\(key.run)") { _ in
                guard await state.runs.cancel(key) else { throw APIError(.conflict, "run '\(key.run)' is not running in this server") }
                return Reply.redirect("/runs/\(Routes.escape(key.dag))/\(Routes.escape(key.run))")
            }
        }

        // Task actions from the run page (operator): clear, mark success, mark failed, each with why.
        pages.post("/runs/:dag/:run/tasks/:task/action") { request, context -> Response in
            var request = request
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let task = try Routes.param(context, "task")
            let fields = form(String(buffer: try await request.collectBody(upTo: 1 << 16)))
            let action = fields["action"] ?? ""
            let reason = fields["reason"].flatMap { $0.isEmpty ? nil : $0 }
            let page = "/runs/\(Routes.escape(key.dag))/\(Routes.escape(key.run))"
            let target = "\(key.dag)/\(key.run)/\(task)"
            switch action {
            case "clear":
                return try await Routes.mutate(state, request, context, role: .operator, action: "task.clear", target: target) { identity in
                    _ = try await OperationsRoutes.clear(state, key, task: task, reason: reason, params: [:], by: identity)
                    return Reply.redirect(page)
                }
            case "success", "failed":
                return try await Routes.mutate(state, request, context, role: .operator, action: "task.mark", target: target) { identity in
                    _ = try await OperationsRoutes.mark(state, key, task: task, as: action, reason: reason, by: identity)
                    return Reply.redirect(page)
                }
            default:
                throw APIError(.badRequest, "action '\(action)' is not clear, success or failed")
            }
        }

        pages.get("/runs/:dag/:run") { _, context -> Response in
            _ = try context.require(.viewer)
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let (detail, history) = try await state.views.read { views, _ -> (RunDetail?, [RunDetail]) in
                let detail = try views.run(key)
                let past = try views.runs(RunQuery(dag: key.dag, limit: 20)).reversed()
                return (detail, try past.compactMap { try views.run(RunKey(dag: $0.dag, run: $0.run)) })
            }
            let active = await state.runs.isActive(key)
            let canAct = !active && (context.identity?.role ?? .viewer) >= .operator
            guard let detail else {
                if active { return render("error", "Run \(key.run)", context, ["message": "The run is queued; this page shows it once its first event is recorded. Reload in a moment."]) }
                throw APIError(.notFound, "no run '\(key.run)' of DAG '\(key.dag)'")
            }
            let spec = state.engine.registry.dag(named: key.dag)?.spec
            let states = Dictionary(detail.tasks.map { ($0.task, $0.state) }, uniquingKeysWith: { a, _ in a })
            var nodes: [JSON.Value] = []
            var edges: [JSON.Value] = []
            let taskIDs = spec?.tasks.map(\.id) ?? detail.tasks.map(\.task)
            for id in taskIDs { nodes.append(.object([("id", .string(id)), ("state", .string(states[id] ?? "not_run"))])) }
            for t in spec?.tasks ?? [] { for u in t.upstream { edges.append(.object([("from", .string(u)), ("to", .string(t.id))])) } }
            let origin = detail.tasks.compactMap(\.firstStartMicros).min() ?? detail.run.queuedMicros
            let gantt: [JSON.Value] = detail.tasks.compactMap { t in
                guard let s = t.firstStartMicros else { return nil }
                let end = t.endedMicros ?? TokenStore.now()
                return .object([("task", .string(t.task)), ("start", .int((s - origin) / 1000)), ("end", .int(max(s, end) / 1000 - origin / 1000)), ("state", .string(t.state))])
            }
            var series: [String: [JSON.Value]] = [:]
            for run in history {
                let byTask = Dictionary(run.tasks.map { ($0.task, $0.durationMillis) }, uniquingKeysWith: { a, _ in a })
                for id in taskIDs { series[id, default: []].append(byTask[id].flatMap { $0.map { .int(Int64($0)) } } ?? .null) }
            }
            let durations: JSON.Value = .object([
                ("runs", .array(history.map { .string($0.run.run) })),
                ("tasks", .array(taskIDs.map { id in .object([("task", .string(id)), ("millis", .array(series[id] ?? []))]) })),
            ])
            return render("run", "Run \(key.run)", context, [
                "dag": key.dag, "run": key.run, "dagPath": Routes.escape(key.dag), "runPath": Routes.escape(key.run),
                "state": detail.run.state, "version": detail.run.version ?? "", "queued": time(detail.run.queuedMicros), "ended": time(detail.run.endedMicros), "trigger": detail.run.trigger ?? "-",
                "params": (detail.run.params ?? [:]).sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] as Page },
                "active": active && (context.identity?.role ?? .viewer) >= .operator,
                "graphJSON": json(.object([("nodes", .array(nodes)), ("edges", .array(edges))])),
                "ganttJSON": json(.array(gantt)), "ganttHeight": max(80, 24 * gantt.count + 40),
                "durationsJSON": json(durations),
                "tasks": detail.tasks.map { t -> Page in
                    var row: Page = [
                        "task": t.task, "taskPath": Routes.escape(t.task), "state": t.state, "attempts": t.attempts, "duration": t.durationMillis.map { "\($0) ms" } ?? "-",
                        "error": t.error ?? "", "canAct": canAct, "dagPath": Routes.escape(key.dag), "runPath": Routes.escape(key.run),
                    ]
                    if let r = t.reason, t.state != "failed" { row["reason"] = r }
                    return row
                },
                "canAct": canAct,
                "charts": true, "graphs": true,
            ])
        }

        pages.get("/replay/:dag/:run") { request, context -> Response in
            _ = try context.require(.viewer)
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let recorded: RecordedRun
            do { recorded = try RecordedRun.load(key, from: state.ledger) } catch { throw APIError(.notFound, "\(error)") }
            let timeline = Timeline(recorded)
            let count = recorded.stepCount
            let i = try request.intQuery("i", default: 0, range: 0...max(0, count - 1))
            var page: Page = [
                "dag": key.dag, "run": key.run, "dagPath": Routes.escape(key.dag), "runPath": Routes.escape(key.run), "steps": count,
                "position": count == 0 ? "-" : "\(i + 1) of \(count)", "prev": max(0, i - 1), "next": min(max(0, count - 1), i + 1), "last": max(0, count - 1),
                "attempts": recorded.attempts.enumerated().map { n, a in ["id": a.id, "outcome": a.outcome.word, "start": timeline.start(ofAttempt: n)] as Page },
            ]
            if let p = timeline.position(i) {
                let step = timeline.step(at: p)
                let attempt = timeline.attempt(at: p)
                var current: Page = [
                    "attempt": attempt.id, "step": step.step, "name": step.name, "kind": step.kind, "value": Timeline.tree(step.value.text).joined(separator: "\n"),
                ]
                if let source = step.source { current["source"] = source }  // where a traced task made it
                if let count = step.count { current["count"] = count }
                page["current"] = current
                page["scope"] = timeline.scope(at: p).map { b in ["name": b.name, "value": Self.clip(b.value?.text ?? "?", 300), "origin": b.origin] as Page }
            }
            return render("replay", "Replay inspector", context, page)
        }
        return pages
    }
}
