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
    /// Data pages: chunk status, the lineage explorer and search.
    static func dataPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        pages.get("/chunks") { request, context -> Response in
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

        pages.get("/lineage") { request, context -> Response in
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

        pages.get("/search") { request, context -> Response in
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
        return pages
    }
}
