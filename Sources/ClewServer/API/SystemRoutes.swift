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

/// Health, identity and integrity: `/api/health`, `/api/whoami`, `/api/verify` (cached, or recomputed on POST) and `/api/integrity`.
enum SystemRoutes {
    static func collection(_ state: ServerState) -> RouteCollection<ClewContext> {
        let routes = RouteCollection(context: ClewContext.self)
        // Prometheus scrapes with a viewer token (`authorization: {credentials: …}` in its scrape config).
        routes.get("/metrics") { _, context -> Response in
            _ = try context.require(.viewer)
            let body = try await state.metrics.scrape(state)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
        routes.get("/api/health") { _, _ -> Response in
            let last = try state.ledger.lastSeq
            return try Reply.json(["status": "ok", "ledger": state.ledger.id, "events": String(last), "views": String(state.views.seq)])
        }

        routes.get("/api/whoami") { _, context -> Response in
            try Reply.json(try context.require(.viewer))
        }

        routes.get("/api/verify") { _, context -> Response in
            _ = try context.require(.viewer)
            guard let last = state.verifier.latest else { throw APIError(.notFound, "the ledger has not been verified since the server started; POST /api/verify") }
            return try Reply.json(last)
        }

        routes.post("/api/verify") { _, context -> Response in
            _ = try context.require(.viewer)
            return try Reply.json(try await state.verifier.run())
        }

        routes.get("/api/integrity") { _, context -> Response in
            _ = try context.require(.viewer)
            let stats = try state.ledger.stats()
            let checkpoints = try state.ledger.checkpoints()
            let views = try await state.views.read { views, _ in try views.status() }
            return try Reply.json(Integrity(stats: stats, checkpoints: checkpoints, views: views, lastVerify: state.verifier.latest))
        }
        return routes
    }
}
