import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import Foundation
import Hummingbird

/// Marquez's read API (`/api/v1/…`), in Marquez's JSON shapes, so tools written for Marquez read Clew:
/// namespaces, jobs (a DAG and each of its tasks, `<dag>.<task>` as Airflow names them), runs of a job and
/// a run by id, datasets (with their fields) and their versions (chunks), column lineage, and search.
/// Everything is read from the views and the DAG definitions in the ledger; nothing is stored twice.
///
/// Namespaces: OpenLineage datasets keep theirs (a native name is `<namespace>:<name>`) and DAGs
/// registered from OpenLineage theirs (origin `openlineage:<namespace>`); everything native is in `clew`.
enum MarquezRoutes {
    static func register(_ router: Router<ClewContext>, _ state: ServerState) {
        router.get("/api/v1/namespaces") { _, context -> Response in
            _ = try context.require(.viewer)
            let catalog = try await state.views.read { views, _ in try Catalog(state: state, views: views) }
            return Reply.raw(JSON.Value.object([("namespaces", .array(catalog.namespaces.map(namespaceJSON)))]).data)
        }
        router.get("/api/v1/namespaces/:namespace") { _, context -> Response in
            _ = try context.require(.viewer)
            let name = try Routes.param(context, "namespace")
            let catalog = try await state.views.read { views, _ in try Catalog(state: state, views: views) }
            guard let ns = catalog.namespaces.first(where: { $0.name == name }) else { throw APIError(.notFound, "no namespace '\(name)'") }
            return Reply.raw(namespaceJSON(ns).data)
        }
        router.get("/api/v1/namespaces/:namespace/jobs") { request, context -> Response in
            _ = try context.require(.viewer)
            let ns = try Routes.param(context, "namespace")
            let page = try Page(request)
            let jobs = try await state.views.read { views, _ in
                let catalog = try Catalog(state: state, views: views)
                let slice = page.slice(catalog.jobs.filter { $0.namespace == ns })
                return (items: try slice.items.map { try $0.json(views, catalog) }, total: slice.total)
            }
            return Reply.raw(list("jobs", jobs.items, jobs.total).data)
        }
        router.get("/api/v1/namespaces/:namespace/jobs/:job") { _, context -> Response in
            _ = try context.require(.viewer)
            let (ns, name) = (try Routes.param(context, "namespace"), try Routes.param(context, "job"))
            let job = try await state.views.read { views, _ -> MarquezJSON? in
                let catalog = try Catalog(state: state, views: views)
                return try catalog.job(ns, name).map { try $0.json(views, catalog) }
            }
            guard let job else { throw APIError(.notFound, "no job '\(name)' in namespace '\(ns)'") }
            return Reply.raw(job.data)
        }
        router.get("/api/v1/namespaces/:namespace/jobs/:job/runs") { request, context -> Response in
            _ = try context.require(.viewer)
            let (ns, name) = (try Routes.param(context, "namespace"), try Routes.param(context, "job"))
            let page = try Page(request)
            let runs = try await state.views.read { views, _ -> (items: [MarquezJSON], total: Int)? in
                let catalog = try Catalog(state: state, views: views)
                guard let job = catalog.job(ns, name) else { return nil }
                return page.slice(try job.runs(views))
            }
            guard let runs else { throw APIError(.notFound, "no job '\(name)' in namespace '\(ns)'") }
            return Reply.raw(list("runs", runs.items, runs.total).data)
        }
        for path in ["/api/v1/jobs/runs/:id", "/api/v1/runs/:id"] {
            router.get(RouterPath(path)) { _, context -> Response in
                _ = try context.require(.viewer)
                let id = try Routes.param(context, "id")
                let run = try await state.views.read { views, _ -> MarquezJSON? in
                    guard let key = try views.resolveRun(id).first, let detail = try views.run(key) else { return nil }
                    return Job.runJSON(detail.run, task: nil)
                }
                guard let run else { throw APIError(.notFound, "no run '\(id)'") }
                return Reply.raw(run.data)
            }
        }
        router.get("/api/v1/namespaces/:namespace/datasets") { request, context -> Response in
            _ = try context.require(.viewer)
            let ns = try Routes.param(context, "namespace")
            let page = try Page(request)
            let datasets = try await state.views.read { views, _ in
                let catalog = try Catalog(state: state, views: views)
                let slice = page.slice(catalog.datasets.filter { $0.namespace == ns })
                return (items: try slice.items.map { try $0.json(views) }, total: slice.total)
            }
            return Reply.raw(list("datasets", datasets.items, datasets.total).data)
        }
        router.get("/api/v1/namespaces/:namespace/datasets/:dataset") { _, context -> Response in
            _ = try context.require(.viewer)
            let (ns, name) = (try Routes.param(context, "namespace"), try Routes.param(context, "dataset"))
            let dataset = try await state.views.read { views, _ -> MarquezJSON? in
                try Catalog(state: state, views: views).dataset(ns, name).map { try $0.json(views) }
            }
            guard let dataset else { throw APIError(.notFound, "no dataset '\(name)' in namespace '\(ns)'") }
            return Reply.raw(dataset.data)
        }
        router.get("/api/v1/namespaces/:namespace/datasets/:dataset/versions") { request, context -> Response in
            _ = try context.require(.viewer)
            let (ns, name) = (try Routes.param(context, "namespace"), try Routes.param(context, "dataset"))
            let page = try Page(request)
            let versions = try await state.views.read { views, _ -> (items: [MarquezJSON], total: Int)? in
                guard let d = try Catalog(state: state, views: views).dataset(ns, name) else { return nil }
                return page.slice(try d.versions(views))
            }
            guard let versions else { throw APIError(.notFound, "no dataset '\(name)' in namespace '\(ns)'") }
            return Reply.raw(list("versions", versions.items, versions.total).data)
        }
        router.get("/api/v1/column-lineage") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let nodeID = request.query("nodeId") else {
                throw APIError(.badRequest, "query parameter 'nodeId' is required (datasetField:NAMESPACE:NAME:FIELD or dataset:NAMESPACE:NAME)")
            }
            let depth = try request.intQuery("depth", default: 20, range: 1...100)
            let downstream = request.query("withDownstream") == "true"
            let graph = try await state.views.read { views, _ in
                try ColumnLineage.graph(nodeID, depth: depth, withDownstream: downstream, views: views, ledger: state.ledger)
            }
            return Reply.raw(JSON.Value.object([("graph", .array(graph))]).data)
        }
        router.get("/api/v1/search") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let q = request.query("q"), !q.isEmpty else { throw APIError(.badRequest, "query parameter 'q' is required") }
            let filter = request.query("filter")?.uppercased()
            guard filter == nil || filter == "JOB" || filter == "DATASET" else {
                throw APIError(.badRequest, "query parameter 'filter' must be JOB or DATASET, got '\(filter!)'")
            }
            let limit = try request.intQuery("limit", default: 10, range: 1...1000)
            let results = try await state.views.read { views, _ -> [MarquezJSON] in
                let catalog = try Catalog(state: state, views: views)
                var out: [MarquezJSON] = []
                if filter != "DATASET" {
                    for j in catalog.jobs where j.name.localizedCaseInsensitiveContains(q) {
                        out.append(.object([
                            ("type", .string("JOB")), ("name", .string(j.name)), ("namespace", .string(j.namespace)),
                            ("updatedAt", iso(j.updatedMicros)), ("nodeId", .string("job:\(j.namespace):\(j.name)")),
                        ]))
                    }
                }
                if filter != "JOB" {
                    for d in catalog.datasets where d.name.localizedCaseInsensitiveContains(q) || d.native.localizedCaseInsensitiveContains(q) {
                        out.append(.object([
                            ("type", .string("DATASET")), ("name", .string(d.name)), ("namespace", .string(d.namespace)),
                            ("updatedAt", iso(try d.updatedMicros(views))), ("nodeId", .string("dataset:\(d.namespace):\(d.name)")),
                        ]))
                    }
                }
                return Array(out.prefix(limit))
            }
            return Reply.raw(JSON.Value.object([("totalCount", .int(Int64(results.count))), ("results", .array(results))]).data)
        }
    }

    typealias MarquezJSON = JSON.Value

    /// `limit` and `offset`, as Marquez pages its lists.
    struct Page {
        var limit: Int
        var offset: Int
        init(_ request: Request) throws {
            limit = try request.intQuery("limit", default: 100, range: 1...10_000)
            offset = try request.intQuery("offset", default: 0, range: 0...Int.max)
        }
        func slice<T>(_ all: [T]) -> (items: [T], total: Int) {
            (Array(all.dropFirst(offset).prefix(limit)), all.count)
        }
    }

    /// An ISO 8601 time in UTC, or null.
    static func iso(_ micros: Int64?) -> JSON.Value {
        guard let micros else { return .null }
        let date = Date(timeIntervalSince1970: Double(micros) / 1_000_000)
        return .string(date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)).replacingOccurrences(of: "+0000", with: "Z"))
    }

    /// Marquez's run states from Clew's.
    static func runState(_ state: String) -> String {
        switch state {
        case "queued": "NEW"
        case "running", "resubmitted", "retrying", "scheduled": "RUNNING"
        case "succeeded": "COMPLETED"
        case "failed", "upstream_failed", "blocked": "FAILED"
        case "cancelled", "skipped": "ABORTED"
        default: state.uppercased()
        }
    }

    /// A job: a DAG (`<dag>`) or one of its tasks (`<dag>.<task>`).
    struct Job {
        var namespace: String
        var name: String
        var dag: String
        var task: String?
        var spec: DAGSpec?
        var updatedMicros: Int64?

        func runs(_ views: Views) throws -> [MarquezJSON] {
            try views.runs(RunQuery(dag: dag, limit: 1000)).compactMap { r in
                guard let task else { return Self.runJSON(r, task: nil) }
                guard let t = try views.run(r.key)?.tasks.first(where: { $0.task == task }) else { return nil }
                return Self.runJSON(r, task: t)
            }
        }

        static func runJSON(_ r: RunRecord, task: TaskRecord?) -> MarquezJSON {
            let started = task?.lastStartMicros ?? r.startedMicros
            let ended = task?.endedMicros ?? r.endedMicros
            var facets: [(String, MarquezJSON)] = []
            if let ids = r.externalIDs { facets.append(("clew_external_ids", .array(ids.map { .string($0) }))) }
            if let e = task?.error { facets.append(("errorMessage", .object([("message", .string(e))]))) }
            let nominalStart: MarquezJSON = r.intervalStart.map { .string($0) } ?? .null
            let nominalEnd: MarquezJSON = r.intervalEnd.map { .string($0) } ?? .null
            let duration: MarquezJSON = (task?.durationMillis.map(Int64.init) ?? r.durationMillis).map { .int($0) } ?? .null
            let args: [(String, MarquezJSON)] = (r.params ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }
            let version: MarquezJSON = .object([("namespace", .string("")), ("name", .string(r.dag)), ("version", .string(r.version ?? ""))])
            var fields: [(String, MarquezJSON)] = [("id", .string(r.run)), ("createdAt", iso(r.queuedMicros))]
            fields.append(("updatedAt", iso(ended ?? started ?? r.queuedMicros)))
            fields += [("nominalStartTime", nominalStart), ("nominalEndTime", nominalEnd)]
            fields += [("state", .string(runState(task?.state ?? r.state))), ("startedAt", iso(started)), ("endedAt", iso(ended))]
            fields += [("durationMs", duration), ("args", .object(args)), ("jobVersion", version), ("facets", .object(facets))]
            return .object(fields)
        }

        func json(_ views: Views, _ catalog: Catalog) throws -> MarquezJSON {
            let tasks = task.map { t in spec?.tasks.filter { $0.id == t } ?? [] } ?? spec?.tasks ?? []
            let ids: (Set<String>) -> MarquezJSON = { names in
                .array(names.sorted().map { n in
                    let (ns, short) = Marquez.splitDataset(n)
                    return .object([("namespace", .string(ns)), ("name", .string(short))])
                })
            }
            let latest = try runs(views).first
            return .object([
                ("id", .object([("namespace", .string(namespace)), ("name", .string(name))])), ("type", .string("BATCH")),
                ("name", .string(name)), ("simpleName", .string(task ?? dag)), ("parentJobName", task == nil ? .null : .string(dag)),
                ("namespace", .string(namespace)), ("createdAt", iso(updatedMicros)), ("updatedAt", iso(updatedMicros)),
                ("inputs", ids(Set(tasks.flatMap { $0.consumes.map(\.dataset) }))), ("outputs", ids(Set(tasks.flatMap { $0.produces.map(\.dataset) }))),
                ("location", .null), ("description", .string(spec?.description ?? "")), ("latestRun", latest ?? .null),
                ("facets", .object([])), ("currentVersion", .string(spec?.version ?? "")),
            ])
        }
    }

    /// A dataset in Marquez's terms.
    struct Dataset {
        var native: String
        var namespace: String
        var name: String
        var summary: DatasetSummary

        func updatedMicros(_ views: Views) throws -> Int64? { try views.ledger.event(at: summary.lastSeq)?.timestampMicros }

        func json(_ views: Views) throws -> MarquezJSON {
            let updated = iso(try updatedMicros(views))
            let fields: [MarquezJSON] = (summary.fields ?? []).map { f in
                .object([("name", .string(f.name)), ("type", f.type.map { .string($0) } ?? .null), ("tags", .array([])), ("description", f.description.map { .string($0) } ?? .null)])
            }
            let current = try versions(views).first.flatMap { if case .object(let o) = $0 { o.first { $0.0 == "version" }?.1 } else { nil } }
            return .object([
                ("id", .object([("namespace", .string(namespace)), ("name", .string(name))])), ("type", .string("DB_TABLE")),
                ("name", .string(name)), ("physicalName", .string(name)), ("createdAt", updated), ("updatedAt", updated),
                ("namespace", .string(namespace)), ("sourceName", .string(namespace)), ("fields", .array(fields)), ("tags", .array([])),
                ("lastModifiedAt", updated), ("description", .null), ("facets", .object([])), ("currentVersion", current ?? .null),
                ("clewNode", .string(LineageNode.dataset(native))),
                ("clewChunks", .object(summary.counts.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })),
            ])
        }

        /// The dataset's chunks as versions, newest change first.
        func versions(_ views: Views) throws -> [MarquezJSON] {
            var all: [ChunkRecord] = []
            for status in ChunkStatus.allCases { all += try views.chunks(dataset: native, status: status.rawValue, limit: 10_000) }
            return all.sorted { $0.since > $1.since }.map { c in
                .object([
                    ("id", .object([("namespace", .string(namespace)), ("name", .string(name)), ("version", .string(c.key))])),
                    ("type", .string("DB_TABLE")), ("name", .string(name)), ("physicalName", .string(name)), ("createdAt", iso(c.sinceMicros)),
                    ("version", .string(c.key)), ("namespace", .string(namespace)), ("sourceName", .string(namespace)),
                    ("fields", .array([])), ("tags", .array([])), ("lifecycleState", .string(c.status.uppercased())), ("description", .null),
                    ("createdByRun", c.run.map { run in .object([("id", .string(run)), ("state", .string(c.status == "failed" ? "FAILED" : "COMPLETED"))]) } ?? .null),
                    ("facets", .object([])),
                ])
            }
        }
    }

    /// Namespaces, jobs and datasets as Marquez lists them, from the DAG catalog and the chunks view.
    struct Catalog {
        var jobs: [Job] = []
        var datasets: [Dataset] = []
        var namespaces: [(name: String, updated: Int64?)] = []

        func job(_ namespace: String, _ name: String) -> Job? { jobs.first { $0.namespace == namespace && $0.name == name } }
        func dataset(_ namespace: String, _ name: String) -> Dataset? { datasets.first { $0.namespace == namespace && $0.name == name } }

        init(state: ServerState, views: Views) throws {
            let registered = Dictionary(try views.registeredDAGs().map { ($0.name, $0.registeredMicros) }, uniquingKeysWith: { a, _ in a })
            for dag in try DAGCatalog.all(state.engine, views) {
                let ns = dag.origin.hasPrefix("openlineage:") ? String(dag.origin.dropFirst("openlineage:".count)) : Marquez.namespace
                let updated = registered[dag.name]
                jobs.append(Job(namespace: ns, name: dag.name, dag: dag.name, task: nil, spec: dag.spec, updatedMicros: updated))
                for t in dag.spec?.tasks ?? [] where t.id != dag.name {
                    jobs.append(Job(namespace: ns, name: "\(dag.name).\(t.id)", dag: dag.name, task: t.id, spec: dag.spec, updatedMicros: updated))
                }
            }
            for s in try views.datasets() {
                let (ns, name) = Marquez.splitDataset(s.name)
                datasets.append(Dataset(native: s.name, namespace: ns, name: name, summary: s))
            }
            var names: [String: Int64?] = [:]
            for j in jobs { names[j.namespace] = j.updatedMicros }
            for d in datasets where names[d.namespace] == nil { names[d.namespace] = .some(nil) }
            namespaces = names.map { ($0.key, $0.value) }.sorted { $0.name < $1.name }
        }
    }

    static func list(_ key: String, _ items: [MarquezJSON], _ total: Int) -> MarquezJSON {
        .object([(key, .array(items)), ("totalCount", .int(Int64(total)))])
    }

    static func namespaceJSON(_ ns: (name: String, updated: Int64?)) -> MarquezJSON {
        .object([
            ("name", .string(ns.name)), ("createdAt", iso(ns.updated)), ("updatedAt", iso(ns.updated)),
            ("ownerName", .string(ns.name == Marquez.namespace ? "clew" : "openlineage")), ("description", .null), ("isHidden", .bool(false)),
        ])
    }
}

/// Marquez's column lineage (`GET /api/v1/column-lineage`): the columns a column comes from (and, with
/// `withDownstream=true`, the columns that come from it), over the lineage view's `field:` nodes and
/// `derived` edges, with types from the chunks view and transformations from `dataset.described`.
enum ColumnLineage {
    static func graph(_ id: String, depth: Int, withDownstream: Bool, views: Views, ledger: Ledger) throws -> [JSON.Value] {
        var starts: [String] = []
        if id.hasPrefix("datasetField:"), let colon = id.lastIndex(of: ":"), colon > id.index(id.startIndex, offsetBy: 13) {
            let dataset = String(id[id.index(id.startIndex, offsetBy: 13)..<colon])
            let field = String(id[id.index(after: colon)...])
            starts = try candidates(dataset).map { LineageNode.field(dataset: $0, field: field) }.filter { try views.lineageNodeExists($0) }.prefix(1).map { $0 }
        } else if id.hasPrefix("dataset:") {
            for d in candidates(String(id.dropFirst(8))) where try views.lineageNodeExists(LineageNode.dataset(d)) {
                starts = try views.lineageNeighbors(of: LineageNode.dataset(d), direction: .up, prefix: "field:").map(\.from)
                break
            }
        } else {
            throw APIError(.badRequest, "nodeId must be datasetField:NAMESPACE:NAME:FIELD or dataset:NAMESPACE:NAME, got '\(id)'")
        }
        guard !starts.isEmpty else { throw APIError(.notFound, "no column lineage for '\(id)'") }
        var seen = Set(starts)
        var frontier = starts
        var edges: Set<LineageEdge> = []
        for _ in 0..<depth where !frontier.isEmpty {
            var next: [String] = []
            for node in frontier {
                var found = try views.lineageNeighbors(of: node, direction: .up, prefix: "field:").filter { $0.kind == "derived" }
                if withDownstream { found += try views.lineageNeighbors(of: node, direction: .down, prefix: "field:").filter { $0.kind == "derived" } }
                for e in found {
                    edges.insert(e)
                    for other in [e.from, e.to] where seen.insert(other).inserted { next.append(other) }
                }
            }
            frontier = next
        }
        let types = Dictionary(try views.datasets().map { ($0.name, $0.fields ?? []) }, uniquingKeysWith: { a, _ in a })
        var described: [String: [String: [DatasetDescription.Source]]] = [:]
        func sources(_ dataset: String) throws -> [String: [DatasetDescription.Source]] {
            if let d = described[dataset] { return d }
            var lineage: [String: [DatasetDescription.Source]] = [:]
            for e in try ledger.events(inStream: StreamID.dataset(dataset)) where e.type == EventType.datasetDescribed {
                if let d = try? JSONDecoder().decode(DatasetDescription.self, from: e.payload) {
                    lineage.merge(d.columnLineage ?? [:]) { _, new in new }
                }
            }
            described[dataset] = lineage
            return lineage
        }
        func parts(_ node: String) -> (dataset: String, field: String) {
            let rest = node.dropFirst(6)
            let hash = rest.lastIndex(of: "#") ?? rest.endIndex
            return (String(rest[..<hash]), hash < rest.endIndex ? String(rest[rest.index(after: hash)...]) : "")
        }
        func marquezID(_ node: String) -> String {
            let (d, f) = parts(node)
            let (ns, name) = Marquez.splitDataset(d)
            return "datasetField:\(ns):\(name):\(f)"
        }
        func transformation(_ text: String?) -> (JSON.Value, JSON.Value) {
            guard let text else { return (.null, .null) }
            let colon = text.firstIndex(of: ":")
            return (.string(colon.map { String(text[..<$0]) } ?? text), colon.map { .string(text[text.index(after: $0)...].trimmingCharacters(in: .whitespaces)) } ?? .null)
        }
        return try seen.sorted().map { node in
            let (dataset, field) = parts(node)
            let (ns, name) = Marquez.splitDataset(dataset)
            let inputs = try sources(dataset)[field] ?? []
            let (type, description) = transformation(inputs.first?.transformation)
            let data: JSON.Value = .object([
                ("namespace", .string(ns)), ("dataset", .string(name)), ("field", .string(field)),
                ("fieldType", (types[dataset]?.first { $0.name == field }?.type).map { .string($0) } ?? .null),
                ("transformationDescription", description), ("transformationType", type),
                ("inputFields", .array(inputs.map { s in
                    let (sns, sname) = Marquez.splitDataset(s.dataset)
                    let (t, d) = transformation(s.transformation)
                    return .object([("namespace", .string(sns)), ("dataset", .string(sname)), ("field", .string(s.field)), ("transformationDescription", d), ("transformationType", t)])
                })),
            ])
            let ins = edges.filter { $0.to == node }.map(\.from).sorted().map { JSON.Value.object([("origin", .string(marquezID($0))), ("destination", .string(marquezID(node)))]) }
            let outs = edges.filter { $0.from == node }.map(\.to).sorted().map { JSON.Value.object([("origin", .string(marquezID(node))), ("destination", .string(marquezID($0)))]) }
            return .object([("id", .string(marquezID(node))), ("type", .string("DATASET_FIELD")), ("data", data), ("inEdges", .array(ins)), ("outEdges", .array(outs))])
        }
    }

    /// Native names a Marquez `<namespace>:<name>` may stand for (native datasets are in namespace `clew`).
    static func candidates(_ text: String) -> [String] {
        text.hasPrefix(Marquez.namespace + ":") ? [text, String(text.dropFirst(Marquez.namespace.count + 1))] : [text]
    }
}
