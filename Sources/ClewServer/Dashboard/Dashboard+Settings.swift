import ClewEngine
import ClewLedger
import ClewModel
import Foundation
import Hummingbird

extension Dashboard {
    /// Variables and Connections: listed with who set them (viewer; a secret's value never, only its
    /// reference), each one's history, and for operators forms to set and delete (audited, as the API).
    static func settingsPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        let variables = state.engine.variables
        let connections = state.engine.connections

        pages.get("/variables") { _, context -> Response in
            _ = try context.require(.viewer)
            let rows = try variables.list().map { v -> Page in
                [
                    "key": v.key, "keyPath": Routes.escape(v.key), "value": v.reference.map { "→ \($0)" } ?? clip(v.value ?? "", 120), "secret": v.secret,
                    "description": v.description ?? "", "by": v.setBy, "at": v.setAt, "canEdit": canEdit(context),
                ]
            }
            return render("variables", "Variables", context, ["variables": rows, "canEdit": canEdit(context)])
        }
        pages.get("/variables/:key") { _, context -> Response in
            _ = try context.require(.viewer)
            let key = try Routes.param(context, "key")
            let history = try variables.history(key)
            guard !history.isEmpty else { throw APIError(.notFound, "variable '\(key)' was never set") }
            return render("setting", "Variable \(key)", context, [
                "kind": "variables", "name": key,
                "history": history.reversed().map { c -> Page in
                    ["seq": c.seq, "time": c.time, "action": c.action, "by": c.by, "what": c.reference.map { "→ \($0)" } ?? clip(c.value ?? "", 200), "reason": c.reason ?? ""]
                },
            ])
        }
        pages.post("/variables") { request, context -> Response in
            var request = request
            let fields = form(String(buffer: try await request.collectBody(upTo: 1 << 17)))
            let key = fields["key"] ?? ""
            return try await Routes.mutate(state, request, context, role: .operator, action: "variable.set", target: key) { identity in
                let value = fields["value"].flatMap { $0.isEmpty ? nil : $0 }
                let reference = fields["reference"].flatMap { $0.isEmpty ? nil : $0 }
                _ = try await VariableRoutes.api {
                    try await variables.set(
                        key, value: value, reference: reference, description: fields["description"].flatMap { $0.isEmpty ? nil : $0 },
                        reason: fields["reason"].flatMap { $0.isEmpty ? nil : $0 }, by: VariableRoutes.actor(identity))
                }
                return Reply.redirect("/variables")
            }
        }
        pages.post("/variables/:key/delete") { request, context -> Response in
            var request = request
            let key = try Routes.param(context, "key")
            let fields = form(String(buffer: try await request.collectBody(upTo: 1 << 16)))
            return try await Routes.mutate(state, request, context, role: .operator, action: "variable.delete", target: key) { identity in
                try await VariableRoutes.api { try await variables.delete(key, reason: fields["reason"], by: VariableRoutes.actor(identity)) }
                return Reply.redirect("/variables")
            }
        }

        pages.get("/connections") { _, context -> Response in
            _ = try context.require(.viewer)
            let rows = try connections.list().map { c -> Page in
                [
                    "id": c.id, "idPath": Routes.escape(c.id), "type": c.type ?? "", "hosts": c.hosts.joined(separator: ", "), "port": c.port.map(String.init) ?? "",
                    "schema": c.schema ?? "", "login": c.login ?? "", "password": c.passwordReference.map { "→ \($0)" } ?? "-",
                    "extra": c.extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "), "by": c.setBy, "at": c.setAt,
                    "canEdit": canEdit(context),
                ]
            }
            return render("connections", "Connections", context, ["connections": rows, "canEdit": canEdit(context)])
        }
        pages.get("/connections/:id") { _, context -> Response in
            _ = try context.require(.viewer)
            let id = try Routes.param(context, "id")
            let history = try connections.history(id)
            guard !history.isEmpty else { throw APIError(.notFound, "connection '\(id)' was never set") }
            return render("setting", "Connection \(id)", context, [
                "kind": "connections", "name": id,
                "history": history.reversed().map { c -> Page in
                    let what = c.action == "deleted" ? "" : "\(c.login.map { "\($0)@" } ?? "")\((c.hosts ?? []).joined(separator: ","))\(c.port.map { ":\($0)" } ?? "")\(c.schema.map { "/\($0)" } ?? "")\(c.passwordReference.map { " password → \($0)" } ?? "")"
                    return ["seq": c.seq, "time": c.time, "action": c.action, "by": c.by, "what": what, "reason": c.reason ?? ""]
                },
            ])
        }
        pages.post("/connections") { request, context -> Response in
            var request = request
            let fields = form(String(buffer: try await request.collectBody(upTo: 1 << 17)))
            let id = fields["id"] ?? ""
            return try await Routes.mutate(state, request, context, role: .operator, action: "connection.set", target: id) { identity in
                func field(_ k: String) -> String? { fields[k].flatMap { $0.isEmpty ? nil : $0 } }
                let hosts = (field("hosts") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                var port: Int?
                if let p = field("port") {
                    guard let n = Int(p) else { throw APIError(.badRequest, "connection '\(id)': port '\(p)' is not a number") }
                    port = n
                }
                let change = ConnectionChanged(
                    id: id, type: field("type"), hosts: hosts, port: port, schema: field("schema"), login: field("login"),
                    passwordReference: field("password_ref"), description: field("description"), reason: field("reason"))
                _ = try await VariableRoutes.api { try await connections.set(change, by: VariableRoutes.actor(identity)) }
                return Reply.redirect("/connections")
            }
        }
        pages.post("/connections/:id/delete") { request, context -> Response in
            var request = request
            let id = try Routes.param(context, "id")
            let fields = form(String(buffer: try await request.collectBody(upTo: 1 << 16)))
            return try await Routes.mutate(state, request, context, role: .operator, action: "connection.delete", target: id) { identity in
                try await VariableRoutes.api { try await connections.delete(id, reason: fields["reason"], by: VariableRoutes.actor(identity)) }
                return Reply.redirect("/connections")
            }
        }
        return pages
    }

    /// Whether the page may offer the forms that change settings (operators; the handlers check again).
    static func canEdit(_ context: ClewContext) -> Bool { (context.identity?.role ?? .viewer) >= .operator }
}
