import ClewLedger
import ClewModel
import Foundation

/// A run as the runs view holds it.
public struct RunRecord: Codable, Equatable, Sendable {
    public var dag: String
    public var run: String
    /// queued, running, resubmitted, succeeded, failed, cancelled.
    public var state: String
    public var version: String?
    public var trigger: String?
    public var params: [String: String]?
    public var partition: String?
    public var intervalStart: String?
    public var intervalEnd: String?
    public var queuedMicros: Int64
    public var startedMicros: Int64?
    public var endedMicros: Int64?
    /// Task attempts started, over every submission.
    public var attempts: Int = 0
    public var resubmissions: Int = 0
    /// Tasks per state, as the last end event counted them.
    public var taskStates: [String: Int]?
    public var failedTasks: [String]?
    public var pid: Int?
    public var host: String?
    /// The producer's own id of the run (Airflow's `run_id`, e.g. `manual__2026-11-03T00:00:00+00:00`): the
    /// latest one, when the producer gave the run several.
    public var externalID: String?
    /// Every id the producer gave the run, first first (Airflow 3 names each re-run of a logical date anew).
    public var externalIDs: [String]?
    public var firstSeq: UInt64
    public var lastSeq: UInt64

    public var key: RunKey { RunKey(dag: dag, run: run) }

    /// Records one more of the producer's ids for the run.
    mutating func label(_ id: String) {
        if externalIDs?.contains(id) != true { externalIDs = (externalIDs ?? []) + [id] }
        externalID = id
    }
    public var durationMillis: Int64? {
        guard let s = startedMicros, let e = endedMicros else { return nil }
        return (e - s) / 1000
    }
}

/// A task of a run as the runs view holds it (its latest attempt, with the count of attempts).
public struct TaskRecord: Codable, Equatable, Sendable {
    public var task: String
    /// scheduled, running, retrying, succeeded, failed, blocked, skipped, upstream_failed.
    public var state: String
    public var attempts: Int = 0
    public var order: Int?
    public var firstStartMicros: Int64?
    public var lastStartMicros: Int64?
    public var endedMicros: Int64?
    public var durationMillis: Int?
    public var error: String?
    public var reason: String?
    public var outputDigest: String?
    public var branch: String?
    public var exitCode: Int?
    public var timedOut: Bool?
    /// The SQL the task ran, when its producer said (OpenLineage `sql` job facet).
    public var sql: String?
    public var firstSeq: UInt64
    public var lastSeq: UInt64
}

/// Where the runs fold reads and writes records: the view (through write-back caches) or memory (as-of).
protocol RunsSink {
    mutating func run(_ key: RunKey) throws -> RunRecord?
    mutating func setRun(_ record: RunRecord)
    mutating func task(_ key: RunKey, _ name: String) throws -> TaskRecord?
    mutating func setTask(_ key: RunKey, _ record: TaskRecord)
}

extension Fact.RunFact {
    /// The time the producer gave the event (`time_us`), if any.
    var producerTime: Int64? {
        switch self {
        case .queued(let q): q.timeMicros
        case .started(let s): s.timeMicros
        case .resubmitted(let r): r.timeMicros
        case .labelled(let l): l.timeMicros
        case .ended(_, let e): e.timeMicros
        case .task(let t): t.timeMicros
        default: nil
        }
    }
}

/// The runs fold: one pure function from (record, event) to record, shared by the view and `--as-of`.
enum RunsFold {
    static func apply<S: RunsSink>(_ fact: Fact.RunFact, _ key: RunKey, _ h: EventHeader, into sink: inout S) throws {
        // A producer's own time (OpenLineage eventTime) when it gave one; else when the ledger recorded it.
        let at = fact.producerTime ?? h.timeMicros
        var run = try sink.run(key) ?? RunRecord(
            dag: key.dag, run: key.run, state: "queued", queuedMicros: at, firstSeq: h.seq, lastSeq: h.seq)
        run.lastSeq = h.seq
        switch fact {
        case .queued(let q):
            run.state = "queued"
            if let x = q.externalID { run.label(x) }
            run.version = q.dagVersion
            run.trigger = q.trigger
            run.params = q.params
            run.partition = q.partition
            run.intervalStart = q.intervalStart
            run.intervalEnd = q.intervalEnd
        case .started(let s):
            run.state = "running"
            if run.startedMicros == nil { run.startedMicros = at }
            run.endedMicros = nil
            run.pid = s.pid
            run.host = s.host
            if let x = s.externalID { run.label(x) }
        case .labelled(let l):
            run.label(l.externalID)
        case .resubmitted(let r):
            run.state = "resubmitted"
            run.resubmissions += 1
            if let v = r.dagVersion { run.version = v }
        case .ended(let state, let e):
            run.state = state
            run.endedMicros = at
            run.taskStates = e.tasks
            run.failedTasks = e.failedTasks
        case .task(let t):
            var task = try sink.task(key, t.task) ?? TaskRecord(task: t.task, state: "scheduled", firstSeq: h.seq, lastSeq: h.seq)
            task.lastSeq = h.seq
            if let a = t.attempt { task.attempts = max(task.attempts, a) }
            if let sql = t.sql { task.sql = sql }
            switch h.type {
            case EventType.taskScheduled:
                task.state = "scheduled"
                task.order = t.order ?? task.order
            case EventType.taskStarted:
                task.state = "running"
                if task.firstStartMicros == nil { task.firstStartMicros = at }
                task.lastStartMicros = at
                task.endedMicros = nil
                task.error = nil
                task.reason = nil
                run.attempts += 1
            case EventType.taskSucceeded:
                task.state = "succeeded"
                task.endedMicros = at
                task.durationMillis = t.durationMillis
                task.outputDigest = t.outputDigest
                task.branch = t.branch?.text
                task.exitCode = t.exitCode
                task.error = nil
            case EventType.taskFailed:
                task.state = "failed"
                task.endedMicros = at
                task.durationMillis = t.durationMillis
                task.error = t.error
                task.exitCode = t.exitCode
                task.timedOut = t.timedOut
            case EventType.taskRetrying:
                task.state = "retrying"
                task.reason = t.reason
            case EventType.taskBlocked:
                task.state = "blocked"
                task.reason = t.reason
                task.endedMicros = at
            case EventType.taskSkipped:
                task.state = "skipped"
                task.reason = t.reason
            case EventType.taskUpstreamFailed:
                task.state = "upstream_failed"
            case EventType.taskQueued:
                task.state = "queued (pool)"
                task.reason = t.reason
            case EventType.taskMarkedSuccess:
                task.state = "succeeded"
                task.reason = t.reason
                task.error = nil
            case EventType.taskMarkedFailed:
                task.state = "failed"
                task.error = t.reason
            case EventType.taskCleared:
                // The task and those after it run again (a resubmit follows).
                task.state = "cleared"
                task.reason = t.reason
                for other in t.cleared ?? [] where other != t.task {
                    if var o = try sink.task(key, other) {
                        o.state = "cleared"
                        o.reason = t.reason
                        o.lastSeq = h.seq
                        sink.setTask(key, o)
                    }
                }
            default:
                break
            }
            sink.setTask(key, task)
        case .value, .consumed, .expectation, .triggered, .other:
            break
        }
        sink.setRun(run)
    }
}

/// The runs and tasks view: state, timings, attempts, params and DAG version of every run, with indexes by
/// time, by DAG and by state.
///
/// Tables: `runs` (dag, run → ``RunRecord``), `tasks` (dag, run, task → ``TaskRecord``), and the key-only
/// indexes `by_time` (queued time, dag, run), `by_dag` (dag, queued time, run), `by_state` (state, queued
/// time, dag, run) and, for `--as-of`, `by_epoch` (the first seq of the run's epoch of 2^16 seqs, queued
/// time, dag, run → the run's first seq): the runs that existed at a seq are those of the epochs up to
/// its own, newest first in each.
final class RunsProjection: Projection {
    static let name = "runs"
    static let tables = ["runs", "tasks", "by_time", "by_dag", "by_state", "by_epoch"]
    static let interest: Fact.Interest = [.run]
    /// Seqs per `by_epoch` epoch, as a power of two.
    let epochBits: UInt64

    init(epochBits: UInt64 = 16) { self.epochBits = epochBits }

    private var runs = RecordCache<RunRecord>(table: "runs")
    private var tasks = RecordCache<TaskRecord>(table: "tasks")

    static func runKey(_ k: RunKey) -> [UInt8] { KeyBuilder().string(k.dag).raw(k.run).bytes }
    static func taskKey(_ k: RunKey, _ task: String) -> [UInt8] { KeyBuilder().string(k.dag).string(k.run).raw(task).bytes }
    static func timeKey(_ r: RunRecord) -> [UInt8] { KeyBuilder().i64(r.queuedMicros).string(r.dag).raw(r.run).bytes }
    static func dagKey(_ r: RunRecord) -> [UInt8] { KeyBuilder().string(r.dag).i64(r.queuedMicros).raw(r.run).bytes }
    func epochKey(_ r: RunRecord) -> [UInt8] { KeyBuilder().u64((r.firstSeq >> epochBits) << epochBits).bytes + Self.timeKey(r) }
    static func stateKey(_ r: RunRecord) -> [UInt8] {
        KeyBuilder().string(r.state).i64(r.queuedMicros).string(r.dag).raw(r.run).bytes
    }

    private struct Sink: RunsSink {
        let p: RunsProjection
        let txn: ViewTxn
        func run(_ key: RunKey) throws -> RunRecord? { try p.runs.get(RunsProjection.runKey(key), txn, txn.store.table("runs")) }
        func setRun(_ record: RunRecord) { p.runs.set(RunsProjection.runKey(record.key), record) }
        func task(_ key: RunKey, _ name: String) throws -> TaskRecord? {
            try p.tasks.get(RunsProjection.taskKey(key, name), txn, txn.store.table("tasks"))
        }
        func setTask(_ key: RunKey, _ record: TaskRecord) { p.tasks.set(RunsProjection.taskKey(key, record.task), record) }
    }

    func apply(_ fact: Fact, _ h: EventHeader, _ txn: ViewTxn) throws {
        guard case .run(let key, let f) = fact else { return }
        var sink = Sink(p: self, txn: txn)
        try RunsFold.apply(f, key, h, into: &sink)
    }

    func flush(_ txn: ViewTxn) throws {
        let s = txn.store
        try runs.flush(txn, s.table("runs")) { _, old, new in
            if let old, old.queuedMicros != new?.queuedMicros || old.state != new?.state {
                try txn.delete(s.table("by_time"), Self.timeKey(old))
                try txn.delete(s.table("by_dag"), Self.dagKey(old))
                try txn.delete(s.table("by_state"), Self.stateKey(old))
                if old.queuedMicros != new?.queuedMicros { try txn.delete(s.table("by_epoch"), epochKey(old)) }
            }
            if let new, old == nil || old!.queuedMicros != new.queuedMicros || old!.state != new.state {
                try txn.put(s.table("by_time"), Self.timeKey(new), [])
                try txn.put(s.table("by_dag"), Self.dagKey(new), [])
                try txn.put(s.table("by_state"), Self.stateKey(new), [])
                if old?.queuedMicros != new.queuedMicros { try txn.put(s.table("by_epoch"), epochKey(new), KeyBuilder().u64(new.firstSeq).bytes) }
            }
        }
        try tasks.flush(txn, s.table("tasks"))
    }

    func reset() {
        runs.reset()
        tasks.reset()
    }
}

/// In-memory records for `--as-of` folds of single runs.
struct MemoryRunsSink: RunsSink {
    var runs: [RunKey: RunRecord] = [:]
    var tasks: [RunKey: [String: TaskRecord]] = [:]
    func run(_ key: RunKey) -> RunRecord? { runs[key] }
    mutating func setRun(_ record: RunRecord) { runs[record.key] = record }
    func task(_ key: RunKey, _ name: String) -> TaskRecord? { tasks[key]?[name] }
    mutating func setTask(_ key: RunKey, _ record: TaskRecord) { tasks[key, default: [:]][record.task] = record }
}
