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
    /// Integrity: the last verification and its checkpoint, and verifying again.
    static func integrityPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        pages.get("/integrity") { _, context -> Response in
            _ = try context.require(.viewer)
            let stats = try state.ledger.stats()
            let checkpoints = try state.ledger.checkpoints()
            let views = try await state.views.read { views, _ in try views.status() }
            var page: Page = [
                "ledger": stats.id, "events": stats.events, "streams": stats.streams, "root": stats.rootHash,
                "checkpoints": checkpoints.reversed().map { ["size": $0.treeSize, "root": $0.rootHash, "time": $0.time, "key": $0.keyID] as Page },
                "views": views.map { ["name": $0.view, "checkpoint": $0.checkpoint] as Page },
            ]
            if let v = state.verifier.latest {
                let summary = v.report.isValid
                    ? "\(v.report.events) events, \(v.report.merkleNodesChecked) Merkle nodes, \(v.report.checkpointsChecked) checkpoints checked"
                    : v.report.problems.prefix(5).map { "\($0.kind) at seq \($0.seq.map(String.init) ?? "-"): \($0.message)" }.joined(separator: "; ")
                page["verify"] = ["status": v.report.isValid ? "ok" : "problems", "summary": summary, "at": v.at, "millis": v.millis] as Page
            }
            return render("integrity", "Ledger integrity", context, page)
        }

        pages.post("/integrity/verify") { _, context -> Response in
            _ = try context.require(.viewer)
            _ = try await state.verifier.run()
            return Reply.redirect("/integrity")
        }
        return pages
    }
}
