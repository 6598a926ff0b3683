import ClewEngine
import ClewLedger
import ClewModel
import Foundation
import Hummingbird

extension Dashboard {
    /// SLA misses (newest first) with how late each ended up, and the alerts sent, with the defaults.
    static func slaPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        pages.get("/sla") { request, context -> Response in
            _ = try context.require(.viewer)
            let dag = request.query("dag").flatMap { $0.isEmpty ? nil : $0 }
            let misses = try SLA.recorded(in: state.ledger, dag: dag, limit: 200).reversed().map { r -> Page in
                let m = r.miss
                return [
                    "seq": r.seq, "deadline": time(m.deadlineMicros), "dag": m.dag, "dagPath": Routes.escape(m.dag), "run": m.run, "runPath": Routes.escape(m.run),
                    "what": m.scope == "dag" ? "the run" : m.tasks.map { "\($0.task) (\($0.state))" }.joined(separator: ", "),
                    "sla": Alerter.duration(millis: Int64(m.slaMillis)), "lateSeen": Alerter.duration(millis: m.lateByMillis), "lateEnd": r.finalLateByMillis.map { Alerter.duration(millis: $0) } ?? "not done yet", "seenBy": m.seenBy,
                ]
            }
            let alerts = try Alerter.deliveries(in: state.ledger, dag: dag, limit: 200).reversed().map { r -> Page in
                let d = r.delivery
                var row: Page = [
                    "seq": r.seq, "time": String(r.time.prefix(19)).replacingOccurrences(of: "T", with: " "), "rule": d.rule, "dag": d.dag, "channel": d.channel,
                    "target": d.target, "outcome": r.delivered ? "delivered" : "failed", "attempts": d.attempts, "subject": d.subject ?? "",
                ]
                if let e = d.error { row["error"] = clip(e, 160) }
                return row
            }
            let pools = try state.engine.pools.list().map { try state.engine.pools.occupancy($0.name) }.map { o -> Page in
                ["pool": o.pool, "slots": o.slots ?? 0, "used": o.used, "waiting": o.waiting.map { "\($0.task ?? "?") (\($0.dag ?? "?"), priority \($0.priority))" }.joined(separator: ", ")]
            }
            let defaults = Alerter(ledger: state.ledger).defaults()
            return render("sla", "SLA misses, alerts and pools", context, [
                "dag": dag ?? "", "misses": Array(misses), "alerts": Array(alerts), "pools": pools,
                "webhooks": defaults.map { $0.webhooks.isEmpty ? "-" : $0.webhooks.joined(separator: ", ") } ?? "-",
                "emails": defaults.map { $0.emails.isEmpty ? "-" : $0.emails.joined(separator: ", ") } ?? "-",
                "rules": (defaults?.on ?? AlertRule.defaults.map(\.rawValue)).joined(separator: ", "),
            ])
        }
        return pages
    }
}
