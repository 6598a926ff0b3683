import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// `clew serve`'s Prometheus metrics (docs/server.md#metrics), in the text exposition format at `/metrics`.
///
/// Three kinds: what the process measures as it goes through swift-metrics (the ledger's append latency,
/// a histogram); counters of what the log records from the moment the server starts (events by type,
/// so the ingest rate, run ends and SLA misses are rates; Prometheus takes a restart's reset in its
/// stride); and gauges read when scraped (runs of the last 24 hours by state, runs in flight here, pool
/// slots, queue depth, views' lag behind the log, the log's length).
final class ServerMetrics: Sendable {
    /// One registry per process: swift-metrics has one backend, set once.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let ms: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
        factory.durationHistogramBuckets[Ledger.appendTimerLabel] = ms.map { .nanoseconds(Int64($0 * 1_000_000_000)) }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    private let counts = Mutex(Counts())
    static let slaHelp = "SLA misses recorded since this server started"

    struct Counts {
        var cursor: UInt64 = 0
        /// Attempt streams queued for workers and not yet claimed, by queue.
        var pending: [String: Set<String>] = [:]
    }

    init() {
        _ = Self.registry
    }

    /// Starts counting from the log's end, and finds the attempts already waiting in queues.
    func start(_ state: ServerState) throws {
        let last = try state.ledger.lastSeq
        var pending: [String: Set<String>] = [:]
        for (stream, _) in try state.ledger.streams(prefix: "queue/") {
            let queue = String(stream.dropFirst("queue/".count))
            for e in try state.ledger.events(inStream: stream) where e.type == EventType.attemptQueued {
                guard let a = try? JSONDecoder().decode(AttemptEvent.self, from: e.payload) else { continue }
                let attempt = StreamID.attempt(dag: a.dag, run: a.run, task: a.task, attempt: a.attempt)
                if try state.ledger.seqs(inStream: attempt, limit: 1).isEmpty { pending[queue, default: []].insert(attempt) }
            }
        }
        counts.withLock {
            $0.cursor = last
            $0.pending = pending
        }
        // Exposed from the start, at 0.
        Self.registry.makeCounter(name: "clew_sla_misses_total", help: Self.slaHelp).increment(by: Int64(0))
    }

    /// Counts what was appended since the last look.
    func catchUp(_ state: ServerState) throws {
        let from = counts.withLock { $0.cursor } + 1
        let end = try state.ledger.lastSeq
        guard from <= end else { return }
        var cursor = from
        while cursor <= end {
            let batch = try state.ledger.events(cursor...end, limit: 5_000)
            guard let last = batch.last else { break }
            for e in batch {
                Self.registry.makeCounter(name: "clew_events_appended_total", labels: [("type", e.type)], help: "Events appended to the log since this server started, by type").increment()
                switch e.type {
                case EventType.slaMissed:
                    Self.registry.makeCounter(name: "clew_sla_misses_total", help: Self.slaHelp).increment()
                case EventType.attemptQueued where e.stream.hasPrefix("queue/"):
                    if let a = try? JSONDecoder().decode(AttemptEvent.self, from: e.payload) {
                        let attempt = StreamID.attempt(dag: a.dag, run: a.run, task: a.task, attempt: a.attempt)
                        counts.withLock { _ = $0.pending[String(e.stream.dropFirst("queue/".count)), default: []].insert(attempt) }
                    }
                case EventType.attemptClaimed, EventType.attemptCompleted, EventType.attemptExpired:
                    counts.withLock { c in for q in c.pending.keys { c.pending[q]?.remove(e.stream) } }
                default:
                    break
                }
            }
            cursor = last.seq + 1
        }
        counts.withLock { $0.cursor = end }
    }

    /// The exposition text, gauges read now.
    func scrape(_ state: ServerState) async throws -> [UInt8] {
        let views = try await state.views.status()
        try catchUp(state)
        let r = Self.registry
        let last = try state.ledger.lastSeq
        r.makeGauge(name: "clew_ledger_events", help: "Events in the log (its last seq)").set(Double(last))
        let now = TokenStore.now()
        let runs = try await state.views.read { views, _ in try views.runs(RunQuery(sinceMicros: now - 86_400_000_000, limit: 100_000)) }
        var byState: [String: Int] = [:]
        for s in ["queued", "running", "succeeded", "failed", "cancelled", "resubmitted"] { byState[s] = 0 }
        for run in runs { byState[run.state, default: 0] += 1 }
        for (s, n) in byState {
            r.makeGauge(name: "clew_runs", labels: [("state", s)], help: "Runs queued in the last 24 hours, by state").set(Double(n))
        }
        let attempts = runs.reduce(0) { $0 + $1.attempts }
        r.makeGauge(name: "clew_attempts", help: "Task attempts of the runs queued in the last 24 hours").set(Double(attempts))
        var tasks: [String: Int] = ["succeeded": 0, "failed": 0, "skipped": 0, "upstream_failed": 0]
        for run in runs { for (s, n) in run.taskStates ?? [:] { tasks[s, default: 0] += n } }
        for (s, n) in tasks {
            r.makeGauge(name: "clew_tasks", labels: [("state", s)], help: "Tasks of the ended runs queued in the last 24 hours, by final state").set(Double(n))
        }
        r.makeGauge(name: "clew_runs_in_flight", help: "Runs this server is running now").set(Double(await state.runs.activeRuns.count))
        for v in views {
            r.makeGauge(name: "clew_view_lag_events", labels: [("view", v.view)], help: "Events of the log a view has not folded yet")
                .set(Double(max(0, Int64(v.logSeq) - Int64(v.checkpoint))))
        }
        for pool in try state.engine.pools.list() {
            let o = try state.engine.pools.occupancy(pool.name)
            r.makeGauge(name: "clew_pool_slots", labels: [("pool", pool.name)], help: "Slots of a pool").set(Double(pool.slots))
            r.makeGauge(name: "clew_pool_used_slots", labels: [("pool", pool.name)], help: "Slots of a pool held now").set(Double(o.used))
            r.makeGauge(name: "clew_pool_waiting", labels: [("pool", pool.name)], help: "Task attempts waiting for a pool's slots").set(Double(o.waiting.count))
        }
        for (queue, pending) in counts.withLock({ $0.pending }) {
            r.makeGauge(name: "clew_queue_depth", labels: [("queue", queue)], help: "Task attempts queued for workers and not claimed yet").set(Double(pending.count))
        }
        return r.emitToBuffer()
    }
}
