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

/// Server-rendered pages. Every page reads through the same views and forensics as the API; charts
/// and graph layouts are drawn by /static/clew.js from JSON the page carries.
enum Dashboard {
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        for (name, text) in Templates.all {
            do { try library.register(text, named: name) } catch { preconditionFailure("dashboard template \(name) does not parse: \(error)") }
        }
        return library
    }()

    typealias Page = [String: Any]

    static func render(_ template: String, _ title: String, _ context: ClewContext, _ values: Page) -> Response {
        var page = values
        page["title"] = title
        page["page"] = template
        if let who = context.identity { page["who"] = ["name": who.name, "role": who.role.rawValue] }
        return Reply.html(library.render(page, withTemplate: template) ?? "template \(template) is missing")
    }

    static func json(_ value: JSON.Value) -> String {
        // Safe inside <script type="application/json">: no "</" can close the element.
        value.text.replacingOccurrences(of: "</", with: "<\\/")
    }

    static func time(_ micros: Int64?) -> String {
        guard let micros else { return "-" }
        return String(ISO8601.string(micros: micros).prefix(19)).replacingOccurrences(of: "T", with: " ")
    }

    static func q(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:/"))) ?? s
    }

    static func register(_ router: Router<ClewContext>, _ state: ServerState) {
        state.assets.register(router)

        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }

        router.get("/login") { request, context -> Response in
            render("login", "Log in", context, ["next": request.query("next") ?? "/", "failed": request.query("failed") != nil])
        }

        router.post("/login") { request, context -> Response in
            var request = request
            let form = try await request.bodyBytes(limit: 16 << 10)
            let fields = Self.form(String(buffer: form))
            let next = fields["next"].flatMap { $0.hasPrefix("/") && !$0.hasPrefix("//") ? $0 : nil } ?? "/"
            guard let token = fields["token"], let identity = state.tokens.authenticate(token) else {
                try? await state.audit.record(context.audit(request, action: "session.login", target: nil, outcome: "denied", detail: "unknown token"))
                return Reply.redirect("/login?failed=1&next=" + q(next))
            }
            var ctx = context
            ctx.identity = identity
            try await state.audit.record(ctx.audit(request, action: "session.login", target: identity.name, outcome: "ok"))
            let sid = state.sessions.open(token: token)
            return Reply.redirect(next, headers: [.setCookie: "\(SessionStore.cookie)=\(sid); Path=/; HttpOnly; SameSite=Strict"])
        }

        router.post("/logout") { request, _ -> Response in
            if let sid = AuthMiddleware.cookie(request, SessionStore.cookie) { state.sessions.close(sid) }
            return Reply.redirect("/login", headers: [.setCookie: "\(SessionStore.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"])
        }

        router.get("/") { _, context -> Response in
            _ = try context.require(.viewer)
            let now = TokenStore.now()
            let day: Int64 = 86_400_000_000
            let runs = try await state.views.read { views, _ in try views.runs(RunQuery(sinceMicros: now - 7 * day, limit: 100_000)) }
            func window(_ id: String, _ label: String, _ since: Int64) -> Page {
                let r = runs.filter { $0.queuedMicros >= since }
                let ok = r.filter { $0.state == "succeeded" }.count
                let bad = r.filter { $0.state == "failed" }.count
                return ["id": id, "label": label, "succeeded": ok, "failed": bad, "other": r.count - ok - bad]
            }
            var days: [JSON.Value] = []
            var succeeded: [JSON.Value] = []
            var failed: [JSON.Value] = []
            let today = now - now % day
            for i in (0..<7).reversed() {
                let start = today - Int64(i) * day
                let r = runs.filter { $0.queuedMicros >= start && $0.queuedMicros < start + day }
                days.append(.string(String(ISO8601.string(micros: start).prefix(10))))
                succeeded.append(.int(Int64(r.filter { $0.state == "succeeded" }.count)))
                failed.append(.int(Int64(r.filter { $0.state == "failed" }.count)))
            }
            let recent = runs.sorted { $0.queuedMicros > $1.queuedMicros }.prefix(20).map { r -> Page in
                ["dag": r.dag, "run": r.run, "dagPath": Routes.escape(r.dag), "runPath": Routes.escape(r.run), "state": r.state, "queued": time(r.queuedMicros), "tasks": (r.taskStates ?? [:]).map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")]
            }
            return render("health", "Health", context, [
                "windows": [window("day", "Last 24 hours", now - day), window("week", "Last 7 days", now - 7 * day)],
                "healthJSON": json(.object([("days", .array(days)), ("succeeded", .array(succeeded)), ("failed", .array(failed))])),
                "recent": Array(recent), "charts": true,
            ])
        }

        router.get("/dags") { _, context -> Response in
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

        router.get("/dags/:dag") { _, context -> Response in
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

        router.post("/dags/:dag/trigger") { request, context -> Response in
            let name = try Routes.param(context, "dag")
            return try await Routes.mutate(state, request, context, role: .operator, action: "run.trigger", target: name) { identity in
                guard let dag = state.engine.registry.dag(named: name) else { throw APIError(.notFound, "no DAG named '\(name)'") }
                let accepted = try await state.runs.trigger(dag, params: [:], callback: nil, by: identity)
                return Reply.redirect(accepted.links["page"] ?? "/")
            }
        }

        router.post("/runs/:dag/:run/cancel") { request, context -> Response in
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            return try await Routes.mutate(state, request, context, role: .operator, action: "run.cancel", target: "\(key.dag)/\(key.run)") { _ in
                guard await state.runs.cancel(key) else { throw APIError(.conflict, "run '\(key.run)' is not running in this server") }
                return Reply.redirect("/runs/\(Routes.escape(key.dag))/\(Routes.escape(key.run))")
            }
        }

        router.get("/runs/:dag/:run") { _, context -> Response in
            _ = try context.require(.viewer)
            let key = RunKey(dag: try Routes.param(context, "dag"), run: try Routes.param(context, "run"))
            let (detail, history) = try await state.views.read { views, _ -> (RunDetail?, [RunDetail]) in
                let detail = try views.run(key)
                let past = try views.runs(RunQuery(dag: key.dag, limit: 20)).reversed()
                return (detail, try past.compactMap { try views.run(RunKey(dag: $0.dag, run: $0.run)) })
            }
            let active = await state.runs.isActive(key)
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
                "state": detail.run.state, "queued": time(detail.run.queuedMicros), "ended": time(detail.run.endedMicros), "trigger": detail.run.trigger ?? "-",
                "params": (detail.run.params ?? [:]).sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] as Page },
                "active": active && (context.identity?.role ?? .viewer) >= .operator,
                "graphJSON": json(.object([("nodes", .array(nodes)), ("edges", .array(edges))])),
                "ganttJSON": json(.array(gantt)), "ganttHeight": max(80, 24 * gantt.count + 40),
                "durationsJSON": json(durations),
                "tasks": detail.tasks.map { t -> Page in
                    ["task": t.task, "state": t.state, "attempts": t.attempts, "duration": t.durationMillis.map { "\($0) ms" } ?? "-", "error": t.error ?? ""]
                },
                "charts": true, "graphs": true,
            ])
        }

        router.get("/chunks") { request, context -> Response in
            _ = try context.require(.viewer)
            let page = try await state.views.read { views, _ -> Page in
                let datasets = try views.datasets()
                let selected = request.query("dataset") ?? datasets.first?.name
                var page: Page = ["datasets": datasets.map { ["name": $0.name, "chunks": $0.chunks, "selected": $0.name == selected] as Page }]
                if let selected, datasets.contains(where: { $0.name == selected }) {
                    var all: [ChunkRecord] = []
                    for status in ChunkStatus.allCases { all += try views.chunks(dataset: selected, status: status.rawValue, limit: 2000) }
                    all.sort { ($0.ordinal, $0.key) < ($1.ordinal, $1.key) }
                    let shown = all.suffix(2000)
                    let counts = Dictionary(grouping: all, by: \.status).map { ["status": $0.key, "count": $0.value.count] as Page }.sorted { ($0["status"] as! String) < ($1["status"] as! String) }
                    page["dataset"] = ["name": selected] as Page
                    page["counts"] = counts
                    page["cells"] = shown.map { ["key": $0.key, "status": $0.status, "nodePath": q("\(selected)/\($0.key)")] as Page }
                    page["shown"] = shown.count
                }
                return page
            }
            return render("chunks", "Chunk status", context, page)
        }

        router.get("/lineage") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let text = request.query("node") else { return render("lineage", "Lineage explorer", context, ["node": ""]) }
            let up = try request.intQuery("up", default: 1, range: 0...50)
            let down = try request.intQuery("down", default: 1, range: 0...50)
            let (center, edges) = try await state.views.read { _, f -> (String, [LineageEdge]) in
                let node = try f.node(text)
                var edges: [LineageEdge] = []
                if up > 0 { edges += try f.trace(node, direction: .up, depth: up, limit: 2000).edges }
                if down > 0 { edges += try f.trace(node, direction: .down, depth: down, limit: 2000).edges }
                return (node, edges)
            }
            var nodeSet: [String] = [center]
            var seen: Set<String> = [center]
            for e in edges { for n in [e.from, e.to] where seen.insert(n).inserted { nodeSet.append(n) } }
            let graph: JSON.Value = .object([
                ("nodes", .array(nodeSet.map { .object([("id", .string($0)), ("state", .string($0 == center ? "center" : String($0.prefix { $0 != ":" })))]) })),
                ("edges", .array(edges.map { .object([("from", .string($0.from)), ("to", .string($0.to)), ("label", .string($0.kind))]) })),
            ])
            return render("lineage", "Lineage explorer", context, [
                "node": text, "center": center, "centerQ": q(center), "up": up, "down": down, "upMore": up + 1, "downMore": down + 1,
                "graphJSON": json(graph), "graphs": true,
                "edges": edges.map { ["from": $0.from, "to": $0.to, "fromQ": q($0.from), "toQ": q($0.to), "kind": $0.kind, "seq": $0.firstSeq] as Page },
            ])
        }

        router.get("/search") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let name = request.query("name") else { return render("search", "Value search", context, [:]) }
            let cond = request.query("cond")
            let match: ValueMatch
            if let cond {
                let c: ValueCondition
                do { c = try ValueCondition(parsing: "\(name)\(cond.first.map { "=<>^".contains($0) } == true ? "" : "=")\(cond)") } catch {
                    throw APIError(.badRequest, "condition '\(cond)': \(error)")
                }
                match = c.match
            } else {
                match = .any
            }
            let hits = try await state.views.read { views, _ in try views.values(name: name, match: match, limit: 500) }
            return render("search", "Value search", context, [
                "name": name, "cond": cond ?? "", "searched": true, "count": hits.count,
                "hits": hits.map { ["dag": $0.dag, "run": $0.run, "dagPath": Routes.escape($0.dag), "runPath": Routes.escape($0.run), "task": $0.task, "attempt": $0.attempt, "step": $0.step.map(String.init) ?? "-", "name": $0.name, "value": $0.value ?? $0.digest ?? ""] as Page },
            ])
        }

        router.get("/replay/:dag/:run") { request, context -> Response in
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
                page["current"] = ["attempt": attempt.id, "step": step.step, "name": step.name, "kind": step.kind, "value": Timeline.tree(step.value.text).joined(separator: "\n")] as Page
                page["scope"] = timeline.scope(at: p).map { b in ["name": b.name, "value": Self.clip(b.value?.text ?? "?", 300), "origin": b.origin] as Page }
            }
            return render("replay", "Replay inspector", context, page)
        }

        router.get("/integrity") { _, context -> Response in
            _ = try context.require(.viewer)
            let stats = try state.ledger.stats()
            let checkpoints = try state.ledger.checkpoints()
            let views = try await state.views.read { views, _ in try views.status() }
            var page: Page = [
                "ledger": stats.id, "events": stats.events, "streams": stats.streams, "root": stats.rootHash,
                "checkpoints": checkpoints.reversed().map { ["size": $0.treeSize, "root": $0.rootHash, "time": $0.time, "key": $0.keyID] as Page },
                "views": views.map { ["name": $0.view, "checkpoint": $0.checkpoint] as Page },
            ]
            if let v = state.verifier.latest {
                let summary = v.report.isValid
                    ? "\(v.report.events) events, \(v.report.merkleNodesChecked) Merkle nodes, \(v.report.checkpointsChecked) checkpoints checked"
                    : v.report.problems.prefix(5).map { "\($0.kind) at seq \($0.seq.map(String.init) ?? "-"): \($0.message)" }.joined(separator: "; ")
                page["verify"] = ["status": v.report.isValid ? "ok" : "problems", "summary": summary, "at": v.at, "millis": v.millis] as Page
            }
            return render("integrity", "Ledger integrity", context, page)
        }

        router.post("/integrity/verify") { _, context -> Response in
            _ = try context.require(.viewer)
            _ = try await state.verifier.run()
            return Reply.redirect("/integrity")
        }
    }

    static func clip(_ s: String, _ n: Int) -> String { s.count > n ? String(s.prefix(n - 1)) + "…" : s }

    /// `application/x-www-form-urlencoded` fields.
    static func form(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            if kv.count == 2 { out[decode(kv[0])] = decode(kv[1]) }
        }
        return out
    }
}
