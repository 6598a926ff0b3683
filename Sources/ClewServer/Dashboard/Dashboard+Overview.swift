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
    /// The overview: recent runs, failures and the ledger at a glance.
    static func overviewPages(_ state: ServerState) -> RouteCollection<ClewContext> {
        let pages = RouteCollection(context: ClewContext.self)
        pages.get("/") { _, context -> Response in
            _ = try context.require(.viewer)
            let now = TokenStore.now()
            let day: Int64 = 86_400_000_000
            let runs = try await state.views.read { views, _ in try views.runs(RunQuery(sinceMicros: now - 7 * day, limit: 100_000)) }
            func window(_ id: String, _ label: String, _ since: Int64) -> Page {
                let r = runs.filter { $0.queuedMicros >= since }
                let ok = r.filter { $0.state == "succeeded" }.count
                let bad = r.filter { $0.state == "failed" }.count
                return ["id": id, "label": label, "succeeded": ok, "failed": bad, "other": r.count - ok - bad]
            }
            var days: [JSON.Value] = []
            var succeeded: [JSON.Value] = []
            var failed: [JSON.Value] = []
            let today = now - now % day
            for i in (0..<7).reversed() {
                let start = today - Int64(i) * day
                let r = runs.filter { $0.queuedMicros >= start && $0.queuedMicros < start + day }
                days.append(.string(String(ISO8601.string(micros: start).prefix(10))))
                succeeded.append(.int(Int64(r.filter { $0.state == "succeeded" }.count)))
                failed.append(.int(Int64(r.filter { $0.state == "failed" }.count)))
            }
            let recent = runs.sorted { $0.queuedMicros > $1.queuedMicros }.prefix(20).map { r -> Page in
                ["dag": r.dag, "run": r.run, "dagPath": Routes.escape(r.dag), "runPath": Routes.escape(r.run), "state": r.state, "queued": time(r.queuedMicros), "tasks": (r.taskStates ?? [:]).map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")]
            }
            return render("health", "Health", context, [
                "windows": [window("day", "Last 24 hours", now - day), window("week", "Last 7 days", now - 7 * day)],
                "healthJSON": json(.object([("days", .array(days)), ("succeeded", .array(succeeded)), ("failed", .array(failed))])),
                "recent": Array(recent), "charts": true,
            ])
        }
        return pages
    }
}
