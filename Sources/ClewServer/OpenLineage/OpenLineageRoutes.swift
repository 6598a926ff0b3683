import ClewLedger
import ClewModel
import ClewProjections
import Foundation
import Hummingbird
import NIOCore

/// `POST /api/v1/lineage` (one event), `POST /api/v1/lineage/batch` (a JSON array, or `{"events":[…]}`),
/// both gzip-able, operator role; and `GET /api/v1/lineage?nodeId=&depth=` in Marquez's graph shape.
enum OpenLineageRoutes {
    static func register(_ router: Router<ClewContext>, _ state: ServerState) {
        router.post("/api/v1/lineage") { request, context -> Response in
            try await ingest(request, context, state, batch: false)
        }
        router.post("/api/v1/lineage/batch") { request, context -> Response in
            try await ingest(request, context, state, batch: true)
        }
        MarquezRoutes.register(router, state)
        router.get("/api/v1/lineage") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let nodeID = request.query("nodeId") else { throw APIError(.badRequest, "query parameter 'nodeId' is required (dataset:NAMESPACE:NAME or job:NAMESPACE:NAME)") }
            let depth = try request.intQuery("depth", default: 20, range: 1...100)
            return Reply.raw(try await state.views.read { views, _ in try Marquez.graph(nodeID, depth: depth, views: views, ledger: state.ledger) })
        }
    }

    /// A request body's events, each checked against the spec: one event, or for a batch a JSON array
    /// of events or `{"events": [...]}`.
    /// - Throws: ``APIError`` 400 naming what is wrong (the JSON, the batch's shape, or an event's path).
    static func checkedEvents(_ body: Data, batch: Bool, schema: OpenLineageSchema) throws -> [CheckedEvent] {
        let tree: JSONTree
        do { tree = try JSONTree.parse(body) } catch let e as JSONParseError {
            throw APIError(.badRequest, "invalid OpenLineage event: body \(e)")
        }
        var items: [JSONTree]
        if batch {
            if case .array(let a) = tree { items = a } else if case .array(let a)? = tree["events"] { items = a } else {
                throw APIError(.badRequest, "a batch body must be a JSON array of events or {\"events\": [...]}")
            }
            guard !items.isEmpty else { throw APIError(.badRequest, "the batch has no events") }
        } else {
            items = [tree]
        }
        return try items.enumerated().map { i, e in try CheckedEvent.check(e, schema: schema, index: batch ? i : nil) }
    }

    static func ingest(_ request: Request, _ context: ClewContext, _ state: ServerState, batch: Bool) async throws -> Response {
        var request = request
        let action = batch ? "openlineage.ingest_batch" : "openlineage.ingest"
        let identity: Identity
        do { identity = try context.require(.operator) } catch let e as APIError {
            try? await state.audit.record(context.audit(request, action: action, target: nil, outcome: "denied", detail: e.message))
            throw e
        }
        _ = identity
        let body = try await request.bodyBytes(limit: state.configuration.maxBodyBytes)
        let checked = try checkedEvents(Data(body.readableBytesView), batch: batch, schema: state.ingest.schema)
        let audit = try state.audit.draft(context.audit(request, action: action, target: nil, outcome: "ok", detail: "\(checked.count) event(s)"))
        let result = try await state.ingest.ingest(checked, audit: audit)
        return Reply.raw(result.json.data, status: batch ? .ok : (result.applied > 0 ? .created : .ok))
    }
}

/// Lineage in Marquez's shape: `{"graph":[{"id","type","data","inEdges","outEdges"}]}`, node ids
/// `dataset:<namespace>:<name>` and `job:<namespace>:<name>`. Datasets ingested from OpenLineage keep
/// their namespace and name (native name `<namespace>:<name>`); native datasets and DAG tasks are in
/// namespace `clew`, tasks named `<dag>.<task>`. The graph is every job and dataset reachable both ways
/// within `depth` hops, as Marquez answers.
enum Marquez {
    static let namespace = "clew"

    static func graph(_ nodeID: String, depth: Int, views: Views, ledger: Ledger) throws -> Data {
        guard let start = try native(nodeID, views: views) else {
            throw APIError(.notFound, "no lineage node '\(nodeID)' (give dataset:NAMESPACE:NAME or job:NAMESPACE:NAME)")
        }
        var seen: Set<String> = [start]
        var frontier = [start]
        var inEdges: [String: Set<String>] = [:]
        var outEdges: [String: Set<String>] = [:]
        var level = 0
        while !frontier.isEmpty, level < depth {
            var next: [String] = []
            for node in frontier {
                let wanted = node.hasPrefix("dataset:") ? "task:" : "dataset:"
                let up = try views.lineageNeighbors(of: node, direction: .up, prefix: wanted).filter { $0.kind == "used" || $0.kind == "generated" }
                let down = try views.lineageNeighbors(of: node, direction: .down, prefix: wanted).filter { $0.kind == "used" || $0.kind == "generated" }
                for e in up + down {
                    outEdges[e.from, default: []].insert(e.to)
                    inEdges[e.to, default: []].insert(e.from)
                    for other in [e.from, e.to] where seen.insert(other).inserted { next.append(other) }
                }
            }
            frontier = next
            level += 1
        }
        var namespaces: [String: String] = [:]
        func ns(ofDAG dag: String) -> String {
            if let n = namespaces[dag] { return n }
            var n = namespace
            if let e = try? ledger.events(inStream: StreamID.dag(dag)).last, let tree = try? JSONTree.parse(e.payload),
               let origin = tree["definition"]?["origin"]?.string, origin.hasPrefix("openlineage:") {
                n = String(origin.dropFirst("openlineage:".count))
            }
            namespaces[dag] = n
            return n
        }
        func marquez(_ node: String) -> (id: String, type: String, data: JSON.Value) {
            if node.hasPrefix("dataset:") {
                let name = String(node.dropFirst(8))
                let (namespace, short) = splitDataset(name)
                return ("dataset:\(namespace):\(short)", "DATASET", .object([
                    ("id", .object([("namespace", .string(namespace)), ("name", .string(short))])), ("namespace", .string(namespace)), ("name", .string(short)),
                    ("type", .string("DB_TABLE")), ("clewNode", .string(node)),
                ]))
            }
            let rest = node.dropFirst(5)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let dag = String(rest[..<slash])
            let task = slash < rest.endIndex ? String(rest[rest.index(after: slash)...]) : dag
            let namespace = ns(ofDAG: dag)
            let name = task == dag ? dag : "\(dag).\(task)"
            return ("job:\(namespace):\(name)", "JOB", .object([
                ("id", .object([("namespace", .string(namespace)), ("name", .string(name))])), ("namespace", .string(namespace)), ("name", .string(name)),
                ("type", .string("BATCH")), ("parentJobName", .string(dag)), ("clewNode", .string(node)),
            ]))
        }
        var nodes: [JSON.Value] = []
        for node in seen.sorted() {
            let m = marquez(node)
            let ins = (inEdges[node] ?? []).sorted().map { JSON.Value.object([("origin", .string(marquez($0).id)), ("destination", .string(m.id))]) }
            let outs = (outEdges[node] ?? []).sorted().map { JSON.Value.object([("origin", .string(m.id)), ("destination", .string(marquez($0).id))]) }
            nodes.append(.object([("id", .string(m.id)), ("type", .string(m.type)), ("data", m.data), ("inEdges", .array(ins)), ("outEdges", .array(outs))]))
        }
        return JSON.Value.object([("graph", .array(nodes))]).data
    }

    /// The lineage view's node for a Marquez node id, or nil.
    static func native(_ id: String, views: Views) throws -> String? {
        if id.hasPrefix("dataset:") {
            let rest = String(id.dropFirst(8))
            var candidates = ["dataset:" + rest]
            if rest.hasPrefix(namespace + ":") { candidates.insert("dataset:" + rest.dropFirst(namespace.count + 1), at: 0) }
            return try candidates.first { try views.lineageNodeExists($0) }
        }
        if id.hasPrefix("job:") {
            let rest = id.dropFirst(4)
            // job:<namespace>:<name>; namespaces may hold ':' (URIs), names are tried from the right.
            var candidates: [String] = []
            var idx = rest.endIndex
            while let colon = rest[..<idx].lastIndex(of: ":") {
                let name = String(rest[rest.index(after: colon)...])
                let safe = OpenLineageIngest.sanitize(name)
                if let dot = safe.firstIndex(of: ".") {
                    candidates.append("task:\(safe[..<dot])/\(safe[safe.index(after: dot)...])")
                }
                candidates.append("task:\(safe)/\(safe)")
                idx = colon
            }
            return try candidates.first { try views.lineageNodeExists($0) }
        }
        return nil
    }

    /// `<namespace>:<name>` for OpenLineage datasets (the namespace may hold `://host:port`); native
    /// datasets (no ':') are in namespace `clew`.
    static func splitDataset(_ name: String) -> (String, String) {
        guard let colon = name.lastIndex(of: ":") else { return (namespace, name) }
        // A namespace URI such as postgres://db:5432 ends at the ':' followed by the name, so take the
        // last ':' that is not followed by digits only up to the next '/' (a port).
        var end = name.endIndex
        while let c = name[..<end].lastIndex(of: ":") {
            let after = name[name.index(after: c)...]
            let head = after.prefix { $0 != "/" }
            if !head.isEmpty, head.allSatisfy(\.isNumber), after.count > head.count { end = c; continue }
            return (String(name[..<c]), String(after))
        }
        return (String(name[..<colon]), String(name[name.index(after: colon)...]))
    }
}
