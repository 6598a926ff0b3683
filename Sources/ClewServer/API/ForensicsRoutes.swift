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

/// Forensics: lineage, task search, the five questions, culprit, impact, and quarantine (operator, audited).
enum ForensicsRoutes {
    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        routes.get("/api/lineage") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let id = request.query("node") else { throw APIError(.badRequest, "query parameter 'node' is required") }
            let direction: LineageDirection
            switch request.query("direction") ?? "up" {
            case "up": direction = .up
            case "down": direction = .down
            case let other: throw APIError(.badRequest, "query parameter 'direction' must be up or down, got '\(other)'")
            }
            let depth = try request.intQuery("depth", default: 10, range: 1...1000)
            return try Reply.json(try await state.views.read { views, f in
                try f.trace(try f.node(id), direction: direction, depth: depth, asOf: try Routes.asOf(request, views))
            })
        }

        routes.get("/api/search/tasks") { request, context -> Response in
            _ = try context.require(.viewer)
            func condition(_ n: String) throws -> ValueCondition? {
                guard let t = request.query(n) else { return nil }
                do { return try ValueCondition(parsing: t) } catch { throw APIError(.badRequest, "query parameter '\(n)': \(error)") }
            }
            let q = TaskQuery(
                task: request.query("task"), dag: request.query("dag"), output: try condition("output"), input: try condition("input"),
                variable: try condition("var"), limit: try request.intQuery("limit", default: 100, range: 1...10_000))
            guard q.task != nil || q.output != nil || q.input != nil || q.variable != nil else {
                throw APIError(.badRequest, "give at least one of 'task', 'output', 'input', 'var'")
            }
            return try Reply.json(try await state.views.read { views, f in
                var q = q
                q.asOf = try Routes.asOf(request, views)
                return try f.searchTasks(q)
            })
        }

        routes.get("/api/why") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let chunk = request.query("chunk") else { throw APIError(.badRequest, "query parameter 'chunk' (DATASET/KEY) is required") }
            return try Reply.json(try await state.views.read { _, f in
                let node = try f.node(chunk)
                guard node.hasPrefix("chunk:") else { throw APIError(.badRequest, "'\(chunk)' is not a chunk (give DATASET/KEY)") }
                let (dataset, key) = try f.chunkParts(node)
                return try f.why(dataset: dataset, chunk: key, run: request.query("run"))
            })
        }

        routes.get("/api/culprit") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let id = request.query("node") else { throw APIError(.badRequest, "query parameter 'node' is required") }
            return try Reply.json(try await state.views.read { _, f in try f.culprit(try f.node(id)) })
        }

        routes.get("/api/impact") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let id = request.query("node") else { throw APIError(.badRequest, "query parameter 'node' is required") }
            return try Reply.json(try await state.views.read { _, f in try f.impact(try f.node(id)) })
        }

        routes.post("/api/quarantine") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(QuarantineRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "lineage.quarantine", target: body.node) { identity in
                guard !body.reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw APIError(.badRequest, "body: 'reason' must not be empty") }
                let report = try await state.views.read { _, f in try f.impact(try f.node(body.node)) }
                let f = try await state.views.read { views, _ in Forensics(ledger: state.ledger, views: views) }
                let done = try await f.quarantine(report, reason: body.reason, actor: "token:\(identity.name)")
                return try Reply.json(done, status: .created)
            }
        }
        return routes
    }
}
