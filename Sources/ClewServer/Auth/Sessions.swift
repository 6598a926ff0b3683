import ClewCore
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Dashboard sessions: a random id in an HttpOnly, SameSite=Strict cookie, mapped in memory to the token
/// that logged in (the token itself never goes back to the browser). A revoked token ends its sessions.
final class SessionStore: Sendable {
    static let cookie = "clew_session"

    private struct Session {
        var token: String
        var expires: ContinuousClock.Instant
    }

    private let sessions = Mutex<[String: Session]>([:])
    private let lifetime: Duration

    init(lifetime: Duration) { self.lifetime = lifetime }

    func open(token: String) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        let id = bytes.hex
        let expires = ContinuousClock.now + lifetime
        sessions.withLock { sessions in
            let now = ContinuousClock.now
            sessions = sessions.filter { $0.value.expires > now }
            sessions[id] = Session(token: token, expires: expires)
        }
        return id
    }

    func token(for id: String) -> String? {
        sessions.withLock { sessions in
            guard let s = sessions[id], s.expires > ContinuousClock.now else { return nil }
            return s.token
        }
    }

    func close(_ id: String) { _ = sessions.withLock { $0.removeValue(forKey: id) } }
}

/// Authenticates every request from `Authorization: Bearer` or the session cookie; which role a route
/// needs is checked by the route (``ClewContext/require(_:)``). Dashboard pages without a session go to
/// the login page; API calls get 401 JSON.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ClewContext
    let state: ServerState

    static let open: Set<String> = ["/login", "/api/health", "/favicon.ico"]

    func handle(_ request: Request, context: ClewContext, next: (Request, ClewContext) async throws -> Response) async throws -> Response {
        var context = context
        let path = request.uri.path
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw APIError(.unauthorized, "Authorization header must be 'Bearer <token>'")
            }
            guard let identity = state.tokens.authenticate(String(parts[1]).trimmingCharacters(in: .whitespaces)) else {
                throw APIError(.unauthorized, "unknown or revoked token")
            }
            context.identity = identity
        } else if let sid = Self.cookie(request, SessionStore.cookie), let token = state.sessions.token(for: sid) {
            context.identity = state.tokens.authenticate(token)
            if context.identity == nil { state.sessions.close(sid) }
        }
        if context.identity == nil, !Self.open.contains(path), !path.hasPrefix("/static/") {
            if request.method == .get, !path.hasPrefix("/api/"), path != "/metrics" {
                let target = request.uri.description
                return Reply.redirect("/login?next=" + (target.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/"))
            }
            throw APIError(.unauthorized, "a bearer token is required (Authorization: Bearer clew_…)")
        }
        return try await next(request, context)
    }

    static func cookie(_ request: Request, _ name: String) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == name { return String(kv[1]) }
            }
        }
        return nil
    }
}
