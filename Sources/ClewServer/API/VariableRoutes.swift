import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import Foundation
import HTTPTypes
import Hummingbird

/// Operator Variables and Connections: listed and shown with their history (viewer), set and deleted (operator, audited,
/// each an event naming the token), and what a run read or used (docs/operations.md).
enum VariableRoutes {
    struct SetRequest: Decodable {
        var value: String?
        var reference: String?
        var description: String?
        var reason: String?
    }

    struct Detail: Encodable {
        var variable: Variable?
        var history: [VariableChange]
    }

    /// A Connection to set. `password` is refused: a password is only ever a reference.
    struct ConnectionRequest: Decodable {
        var type: String?
        var hosts: [String]?
        var port: Int?
        var schema: String?
        var login: String?
        var password: String?
        var passwordRef: String?
        var extra: [String: String]?
        var description: String?
        var reason: String?

        enum CodingKeys: String, CodingKey {
            case type, hosts, port, schema, login, password, passwordRef = "password_ref", extra, description, reason
        }
    }

    struct ConnectionDetail: Encodable {
        var connection: Connection?
        var history: [ConnectionChange]
    }

    /// Who a token's change is recorded as.
    static func actor(_ identity: Identity) -> String { "token:\(identity.name) (\(identity.tokenID))" }

    /// A Variable error as the API's error (also so a refusal is audited as one).
    static func api<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let e as VariableError {
            throw APIError(HTTPResponse.Status(code: e.category.httpStatus), e.description)
        }
    }

    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        let store = state.engine.variables

        routes.get("/api/variables") { _, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try store.list())
        }

        routes.get("/api/variables/:key") { _, context -> Response in
            _ = try context.require(.viewer)
            let key = try Routes.param(context, "key")
            let history = try store.history(key)
            if history.isEmpty { throw APIError(.notFound, "variable '\(key)' was never set") }
            return try Reply.json(Detail(variable: try store.get(key), history: history))
        }

        routes.put("/api/variables/:key") { request, context -> Response in
            var request = request
            let key = try Routes.param(context, "key")
            let body = try await request.decodeJSON(SetRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "variable.set", target: key) { identity in
                let set = try await api {
                    try await store.set(key, value: body.value, reference: body.reference, description: body.description, reason: body.reason, by: actor(identity))
                }
                return try Reply.json(set)
            }
        }

        routes.delete("/api/variables/:key") { request, context -> Response in
            let key = try Routes.param(context, "key")
            return try await Routes.mutate(state, request, context, role: .operator, action: "variable.delete", target: key) { identity in
                try await api { try await store.delete(key, reason: request.query("reason"), by: actor(identity)) }
                return Response(status: .noContent)
            }
        }

        routes.get("/api/runs/:dag/:run/variables") { _, context -> Response in
            _ = try context.require(.viewer)
            let dag = try Routes.param(context, "dag"), run = try Routes.param(context, "run")
            guard try !state.ledger.seqs(inStream: StreamID.run(dag: dag, run: run), limit: 1).isEmpty else {
                throw APIError(.notFound, "no run '\(run)' of DAG '\(dag)'")
            }
            return try Reply.json(try store.reads(dag: dag, run: run))
        }

        let connections = state.engine.connections
        routes.get("/api/connections") { _, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try connections.list())
        }

        routes.get("/api/connections/:id") { _, context -> Response in
            _ = try context.require(.viewer)
            let id = try Routes.param(context, "id")
            let history = try connections.history(id)
            if history.isEmpty { throw APIError(.notFound, "connection '\(id)' was never set") }
            return try Reply.json(ConnectionDetail(connection: try connections.get(id), history: history))
        }

        routes.put("/api/connections/:id") { request, context -> Response in
            var request = request
            let id = try Routes.param(context, "id")
            let body = try await request.decodeJSON(ConnectionRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "connection.set", target: id) { identity in
                guard body.password == nil else {
                    throw APIError(.badRequest, "connection '\(id)': a password is never taken in clear; give password_ref (env:NAME or file:/absolute/path, read where the task runs)")
                }
                var change = ConnectionChanged(id: id, reason: body.reason)
                change.type = body.type
                change.hosts = body.hosts
                change.port = body.port
                change.schema = body.schema
                change.login = body.login
                change.passwordReference = body.passwordRef
                change.extra = body.extra
                change.description = body.description
                let set = try await api { try await connections.set(change, by: actor(identity)) }
                return try Reply.json(set)
            }
        }

        routes.delete("/api/connections/:id") { request, context -> Response in
            let id = try Routes.param(context, "id")
            return try await Routes.mutate(state, request, context, role: .operator, action: "connection.delete", target: id) { identity in
                try await api { try await connections.delete(id, reason: request.query("reason"), by: actor(identity)) }
                return Response(status: .noContent)
            }
        }

        routes.get("/api/runs/:dag/:run/connections") { _, context -> Response in
            _ = try context.require(.viewer)
            let dag = try Routes.param(context, "dag"), run = try Routes.param(context, "run")
            guard try !state.ledger.seqs(inStream: StreamID.run(dag: dag, run: run), limit: 1).isEmpty else {
                throw APIError(.notFound, "no run '\(run)' of DAG '\(dag)'")
            }
            return try Reply.json(try connections.reads(dag: dag, run: run))
        }
        return routes

    }
}
