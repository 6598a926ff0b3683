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

/// Datasets, chunk status and recorded values, from the chunk and value views.
enum DataRoutes {
    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        routes.get("/api/datasets") { request, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try await state.views.read { views, _ in try views.datasets(asOf: try Routes.asOf(request, views)) })
        }

        routes.get("/api/chunks") { request, context -> Response in
            _ = try context.require(.viewer)
            guard let dataset = request.query("dataset") else { throw APIError(.badRequest, "query parameter 'dataset' is required") }
            return try await state.views.read { views, _ in
                let asOf = try Routes.asOf(request, views)
                if let status = request.query("status") {
                    let known = ChunkStatus.allCases.map(\.rawValue) + ["stale", "missing"]
                    guard known.contains(status) else { throw APIError(.badRequest, "query parameter 'status' must be one of \(known.joined(separator: ", ")), got '\(status)'") }
                    return try Reply.json(try views.chunks(dataset: dataset, status: status, limit: try request.intQuery("limit", default: 100, range: 1...100_000), asOf: asOf))
                }
                guard let report = try views.chunkStatus(dataset: dataset, ranges: try request.intQuery("ranges", default: 20, range: 1...10_000), asOf: asOf) else {
                    throw APIError(.notFound, "no dataset named '\(dataset)'")
                }
                return try Reply.json(report)
            }
        }

        routes.get("/api/values") { request, context -> Response in
            _ = try context.require(.viewer)
            let match: ValueMatch
            if let eq = request.query("eq") {
                match = .equals((try? JSONTree.parse(Data(eq.utf8))) ?? .string(eq))
            } else if request.query("min") != nil || request.query("max") != nil {
                func bound(_ n: String) throws -> Double? {
                    guard let t = request.query(n) else { return nil }
                    guard let d = Double(t) else { throw APIError(.badRequest, "query parameter '\(n)' must be a number, got '\(t)'") }
                    return d
                }
                match = .range(min: try bound("min"), max: try bound("max"))
            } else if let prefix = request.query("prefix") {
                match = .prefix(prefix)
            } else if let digest = request.query("digest") {
                match = .digest(digest)
            } else {
                match = .any
            }
            let name = request.query("name")
            if name == nil, case .digest = match {} else if name == nil {
                throw APIError(.badRequest, "query parameter 'name' is required (or give 'digest')")
            }
            return try Reply.json(try await state.views.read { views, _ in
                try views.values(name: name, task: request.query("task"), match: match, asOf: try Routes.asOf(request, views), limit: try request.intQuery("limit", default: 100, range: 1...10_000))
            })
        }
        return routes
    }
}
