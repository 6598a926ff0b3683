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

    /// Who a token's change is recorded as.
    static func actor(_ identity: Identity) -> String { "token:\(identity.name) (\(identity.tokenID))" }

    /// A Variable error as the API's error (also so a refusal is audited as one).
    static func api<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let e as VariableError {
            throw APIError(HTTPResponse.Status(code: e.category.httpStatus), e.description)
        }
    }

    /// The routes both kinds share: `GET /api/<kind>s` (viewer), `GET /api/<kind>s/{id}` with its history
    /// (viewer), `DELETE /api/<kind>s/{id}?reason=` (operator, audited) and `GET /api/runs/{dag}/{run}/<kind>s`
    /// (viewer): what a run read or used.
    static func shared<Item: Encodable, Change: Encodable, Read: Encodable>(
        _ routes: RouteCollection<ClewContext>, _ state: ServerState, kind: String,
        list: @escaping @Sendable () throws -> [Item], get: @escaping @Sendable (String) throws -> Item?,
        history: @escaping @Sendable (String) throws -> [Change], delete: @escaping @Sendable (String, String?, String) async throws -> Void,
        reads: @escaping @Sendable (String, String) throws -> [Read]
    ) {
        routes.get("/api/\(kind)s") { _, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try list())
        }
        routes.get("/api/\(kind)s/:id") { _, context -> Response in
            _ = try context.require(.viewer)
            let id = try Routes.param(context, "id")
            let changes = try history(id)
            if changes.isEmpty { throw APIError(.notFound, "\(kind) '\(id)' was never set") }
            return try Reply.json(Detail(kind: kind, item: try get(id), history: changes))
        }
        routes.delete("/api/\(kind)s/:id") { request, context -> Response in
            let id = try Routes.param(context, "id")
            return try await Routes.mutate(state, request, context, role: .operator, action: "\(kind).delete", target: id) { identity in
                try await api { try await delete(id, request.query("reason"), actor(identity)) }
                return Response(status: .noContent)
            }
        }
        routes.get("/api/runs/:dag/:run/\(kind)s") { _, context -> Response in
            _ = try context.require(.viewer)
            let dag = try Routes.param(context, "dag"), run = try Routes.param(context, "run")
            guard try !state.ledger.seqs(inStream: StreamID.run(dag: dag, run: run), limit: 1).isEmpty else {
                throw APIError(.notFound, "no run '\(run)' of DAG '\(dag)'")
            }
            return try Reply.json(try reads(dag, run))
        }
    }

    /// `{<kind>: item, history: [...]}`.
    struct Detail<Item: Encodable, Change: Encodable>: Encodable {
        var kind: String
        var item: Item?
        var history: [Change]

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(item, forKey: Key(stringValue: kind))
            try c.encode(history, forKey: Key(stringValue: "history"))
        }
    }

    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        let store = state.engine.variables
        shared(
            routes, state, kind: "variable", list: { try store.list() }, get: { try store.get($0) }, history: { try store.history($0) },
            delete: { try await store.delete($0, reason: $1, by: $2) }, reads: { try store.reads(dag: $0, run: $1) })
        routes.put("/api/variables/:id") { request, context -> Response in
            var request = request
            let key = try Routes.param(context, "id")
            let body = try await request.decodeJSON(SetRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "variable.set", target: key) { identity in
                let set = try await api {
                    try await store.set(key, value: body.value, reference: body.reference, description: body.description, reason: body.reason, by: actor(identity))
                }
                return try Reply.json(set)
            }
        }

        let connections = state.engine.connections
        shared(
            routes, state, kind: "connection", list: { try connections.list() }, get: { try connections.get($0) },
            history: { try connections.history($0) }, delete: { try await connections.delete($0, reason: $1, by: $2) },
            reads: { try connections.reads(dag: $0, run: $1) })
        routes.put("/api/connections/:id") { request, context -> Response in
            var request = request
            let id = try Routes.param(context, "id")
            let body = try await request.decodeJSON(ConnectionRequest.self)
            return try await Routes.mutate(state, request, context, role: .operator, action: "connection.set", target: id) { identity in
                guard body.password == nil else {
                    throw APIError(.badRequest, "connection '\(id)': a password is never taken in clear; give password_ref (env:NAME or file:/absolute/path, read where the task runs)")
                }
                let change = ConnectionChanged(
                    id: id, type: body.type, hosts: body.hosts, port: body.port, schema: body.schema, login: body.login,
                    passwordReference: body.passwordRef, extra: body.extra, description: body.description, reason: body.reason)
                let set = try await api { try await connections.set(change, by: actor(identity)) }
                return try Reply.json(set)
            }
        }
        return routes
    }
}
