import ClewCore
public import ClewLedger
public import ClewModel
import Foundation

/// Service-level agreements of runs: by when, counted from a run's first start, each task should have
/// succeeded (``TaskSpec/slaMillis``) and the run ended (``DAGSpec/slaMillis``).
///
/// A miss is read off the run's own events, so the run's process (which wakes at each deadline) and the
/// scheduler (which looks at runs whose process stopped or runs elsewhere) agree on it and record it once:
/// each records only misses its read of the stream does not show yet, on the condition that the stream
/// has not changed since (docs/operations.md#slas).
public enum SLA {
    /// Whether the DAG or any of its tasks has an SLA.
    public static func has(_ spec: DAGSpec) -> Bool {
        spec.slaMillis != nil || spec.tasks.contains { $0.slaMillis != nil }
    }

    /// The deadlines of a run first started at `start`, earliest first, without repeats.
    public static func deadlines(_ spec: DAGSpec, start: Int64) -> [Int64] {
        let all = ([spec.slaMillis] + spec.tasks.map(\.slaMillis)).compactMap { $0 }.map { start + Int64($0) * 1000 }
        return Array(Set(all)).sorted()
    }

    /// What a run's events say of it.
    struct Reading {
        var start: Int64?
        /// When each task last succeeded or was skipped.
        var done: [String: Int64] = [:]
        var state: [String: String] = [:]
        /// When the run last ended, if it has not started again since.
        var end: Int64?
        var reportedTasks = Set<String>()
        var reportedRun = false

        init(_ events: [Event]) {
            for e in events {
                switch e.type {
                case EventType.runStarted:
                    if start == nil { start = e.timestampMicros }
                    end = nil
                case EventType.runSucceeded, EventType.runFailed, EventType.runCancelled:
                    end = e.timestampMicros
                case EventType.slaMissed:
                    guard let m = try? JSONDecoder().decode(SLAMissed.self, from: e.payload) else { continue }
                    if m.scope == "dag" { reportedRun = true } else { reportedTasks.formUnion(m.tasks.map(\.task)) }
                default:
                    guard e.type.hasPrefix("task."), let t = try? JSONDecoder().decode(TaskEvent.self, from: e.payload) else { continue }
                    state[t.task] = Self.state(e.type)
                    if e.type == EventType.taskSucceeded || e.type == EventType.taskSkipped { done[t.task] = e.timestampMicros } else if e.type == EventType.taskStarted { done[t.task] = nil }
                }
            }
        }

        static func state(_ type: String) -> String {
            switch type {
            case EventType.taskScheduled, EventType.taskStarted: "running"
            case EventType.taskRetrying: "retrying"
            case EventType.taskQueued: "queued (pool)"
            default: String(type.dropFirst("task.".count))
            }
        }
    }

    /// The misses `events` (a run's stream, in order) show at `now` that they do not record yet: one
    /// per task deadline (its tasks together) and one for the run's.
    /// A task missed when it had not succeeded (or been skipped) by its deadline while the run was still
    /// going; a run, when it had not ended by the DAG's. A run that ended before a deadline misses nothing
    /// at it (its failure is alerted as a failure).
    public static func misses(_ spec: DAGSpec, run: String, events: [Event], now: Int64, seenBy: String) -> [SLAMissed] {
        let r = Reading(events)
        guard let start = r.start else { return [] }
        var byDeadline: [Int64: (sla: Int, tasks: [SLATask], late: Int64)] = [:]
        for t in spec.tasks {
            guard let sla = t.slaMillis, !r.reportedTasks.contains(t.id) else { continue }
            let deadline = start + Int64(sla) * 1000
            let late: Int64
            if let done = r.done[t.id] {
                guard done > deadline else { continue }
                late = done - deadline
            } else {
                let until = r.end ?? now
                guard until > deadline, now > deadline else { continue }
                late = until - deadline
            }
            var entry = byDeadline[deadline] ?? (sla, [], 0)
            entry.tasks.append(SLATask(task: t.id, state: r.state[t.id] ?? "pending"))
            entry.late = max(entry.late, late)
            byDeadline[deadline] = entry
        }
        var out = byDeadline.sorted { $0.key < $1.key }.map { deadline, e in
            SLAMissed(
                dag: spec.name, run: run, scope: "task", tasks: e.tasks, slaMillis: e.sla, deadlineMicros: deadline, detectedMicros: now,
                lateByMillis: e.late / 1000, seenBy: seenBy)
        }
        if let sla = spec.slaMillis, !r.reportedRun {
            let deadline = start + Int64(sla) * 1000
            let until = r.end ?? now
            if until > deadline, now > deadline {
                let open = spec.tasks.filter { r.done[$0.id] == nil || r.done[$0.id]! > deadline }.map { SLATask(task: $0.id, state: r.state[$0.id] ?? "pending") }
                out.append(
                    SLAMissed(
                        dag: spec.name, run: run, scope: "dag", tasks: open, slaMillis: sla, deadlineMicros: deadline, detectedMicros: now,
                        lateByMillis: (until - deadline) / 1000, seenBy: seenBy))
            }
        }
        return out
    }

    /// One recorded miss, with how late what missed ended up (nil: not ended yet).
    public struct Record: Sendable, Encodable {
        public var seq: UInt64
        public var miss: SLAMissed
        public var finalLateByMillis: Int64?
    }

    /// The misses recorded for `dag` (every DAG when nil) or one run, oldest first, at most `limit` (the newest).
    /// - Throws: ``EngineError`` `.notFound` for a run the ledger does not have.
    public static func recorded(in ledger: Ledger, dag: String? = nil, run: String? = nil, limit: Int = 100) throws -> [Record] {
        let streams: [String]
        if let dag, let run {
            let stream = StreamID.run(dag: dag, run: run)
            guard try !ledger.seqs(inStream: stream, limit: 1).isEmpty else { throw EngineError(.notFound, "no run \(dag)/\(run) in the ledger") }
            streams = [stream]
        } else {
            streams = try ledger.streams(prefix: dag.map { StreamID.run(dag: $0, run: "") } ?? "run/").map(\.stream)
        }
        var rows: [Record] = []
        for s in streams {
            let events = try ledger.events(inStream: s)
            for e in events where e.type == EventType.slaMissed {
                guard let m = try? JSONDecoder().decode(SLAMissed.self, from: e.payload) else { continue }
                rows.append(Record(seq: e.seq, miss: m, finalLateByMillis: finalLateness(of: m, events: events)))
            }
        }
        return Array(rows.sorted { $0.seq < $1.seq }.suffix(max(0, limit)))
    }

    /// How late what missed ended up, from the run's events now: the latest end of its tasks (or of the
    /// run, for `dag`) minus the deadline; nil while one of them has not ended.
    public static func finalLateness(of miss: SLAMissed, events: [Event]) -> Int64? {
        let r = Reading(events)
        if miss.scope == "dag" { return r.end.map { ($0 - miss.deadlineMicros) / 1000 } }
        var latest: Int64 = miss.deadlineMicros
        for t in miss.tasks {
            guard let done = r.done[t.task] ?? (r.end != nil ? r.end : nil) else { return nil }
            latest = max(latest, done)
        }
        return (latest - miss.deadlineMicros) / 1000
    }

    /// Reads the run's stream and records the misses it shows now and does not record yet, only if the
    /// stream is unchanged since the read (read again and retried when another process wrote to it).
    /// - Returns: what it recorded.
    @discardableResult
    public static func record(_ engine: Engine, spec: DAGSpec, run: String, seenBy: String) async throws -> [SLAMissed] {
        let stream = StreamID.run(dag: spec.name, run: run)
        var recorded: [SLAMissed] = []
        for _ in 0..<50 {
            do {
                try await engine.recorder.append {
                    let events = try engine.ledger.events(inStream: stream)
                    recorded = misses(spec, run: run, events: events, now: Recorder.nowMicros(), seenBy: seenBy)
                    return (
                        recorded.map { engine.recorder.event(EventType.slaMissed, stream: stream, $0) },
                        [StreamExpectation(stream: stream, lastSeq: events.last?.seq ?? 0)]
                    )
                }
                return recorded
            } catch let error as LedgerError where error.code == .conflict && error.stream == stream {
                _ = try await engine.ledger.pull()
                continue
            }
        }
        throw EngineError(.conflict, "could not record the SLA misses of run \(run) of \(spec.name): its stream kept changing")
    }

    /// Checks every unfinished run of the DAGs with an SLA (the scheduler's round): runs whose process
    /// stopped, or that run on another host, still have their misses recorded.
    /// - Returns: what it recorded.
    public static func checkUnfinished(_ engine: Engine, dags: [DAG]) async throws -> [SLAMissed] {
        let ends: Set<String> = [EventType.runSucceeded, EventType.runFailed, EventType.runCancelled]
        var out: [SLAMissed] = []
        for dag in dags where has(dag.spec) {
            let base = StreamID.run(dag: dag.name, run: "")
            for (stream, _) in try engine.ledger.streams(prefix: base) {
                guard let last = try engine.ledger.seqs(inStream: stream).last, let e = try engine.ledger.event(at: last), !ends.contains(e.type) else { continue }
                let run = String(stream.dropFirst(base.count))
                // Only what is due: the stream is read again under the recorder's turn.
                let events = try engine.ledger.events(inStream: stream)
                guard !misses(dag.spec, run: run, events: events, now: Recorder.nowMicros(), seenBy: "scheduler").isEmpty else { continue }
                out += try await record(engine, spec: dag.spec, run: run, seenBy: "scheduler")
            }
        }
        return out
    }
}
