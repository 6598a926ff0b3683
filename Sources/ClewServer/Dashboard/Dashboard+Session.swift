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
    /// Signing in and out: a token exchanged for a session cookie.
    static func sessionPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        pages.get("/favicon.ico") { _, _ in Response(status: .noContent) }

        pages.get("/login") { request, context -> Response in
            render("login", "Log in", context, ["next": request.query("next") ?? "/", "failed": request.query("failed") != nil])
        }

        pages.post("/login") { request, context -> Response in
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

        pages.post("/logout") { request, _ -> Response in
            if let sid = AuthMiddleware.cookie(request, SessionStore.cookie) { state.sessions.close(sid) }
            return Reply.redirect("/login", headers: [.setCookie: "\(SessionStore.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"])
        }
        return pages
    }
}
