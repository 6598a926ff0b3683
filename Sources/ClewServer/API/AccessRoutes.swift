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

/// Access: tokens listed, minted and revoked (admin, audited), and the audit trail.
enum AccessRoutes {
    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        routes.get("/api/tokens") { _, context -> Response in
            _ = try context.require(.admin)
            return try Reply.json(try state.tokens.list())
        }

        routes.get("/api/audit") { request, context -> Response in
            _ = try context.require(.admin)
            return try Reply.json(try state.audit.recent(limit: try request.intQuery("limit", default: 100, range: 1...10_000)))
        }

        routes.post("/api/tokens") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(TokenRequest.self)
            return try await Routes.mutate(state, request, context, role: .admin, action: "token.create", target: body.name) { identity in
                guard let role = Role(rawValue: body.role) else {
                    throw APIError(.badRequest, "body: 'role' must be viewer, operator or admin, got '\(body.role)'")
                }
                do {
                    return try Reply.json(try await state.tokens.mint(name: body.name, role: role, by: identity.name), status: .created)
                } catch let e as TokenError { throw APIError(.badRequest, e.description) }
            }
        }

        routes.delete("/api/tokens/:id") { request, context -> Response in
            let id = try Routes.param(context, "id")
            return try await Routes.mutate(state, request, context, role: .admin, action: "token.revoke", target: id) { identity in
                let revoked: Bool
                do { revoked = try await state.tokens.revoke(id: id, by: identity.name) } catch let e as TokenError { throw APIError(.conflict, e.description) }
                guard revoked else { throw APIError(.notFound, "no active token with id '\(id)'") }
                return Response(status: .noContent)
            }
        }
        return routes
    }
}
