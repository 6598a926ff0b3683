import ClewCore
public import ClewLedger
public import ClewModel
public import Foundation
public import Logging
import Synchronization

/// Runs DAGs and records every state transition in a ledger.
///
/// ```swift
/// let engine = Engine(ledger: ledger, registry: DAGRegistry([dag]))
/// let outcome = try await engine.run(dag, params: ["day": "2026-11-21"])
/// print(outcome.runID, outcome.status)
/// ```
public final class Engine: Sendable {
    public struct Options: Sendable {
        /// Where attempts' output directories live (`<dataDirectory>/runs/<dag>/<run>/<task>/<attempt>`).
        public var dataDirectory: URL
        /// Overrides every DAG's `maxActiveTasks` when set.
        public var concurrency: Int?
        /// The actor recorded on events.
        public var actor = "clew-engine"
        /// Longest backoff between retries.
        public var maxBackoffMillis = 600_000
        public var logger = Logger(label: "clew.engine", factory: { _ in SwiftLogNoOpLogHandler() })
        /// Run task attempts on the workers of this queue (`clew worker --queue`) instead of in this
        /// process: each attempt is queued in the log, claimed by one worker under a lease, and re-queued
        /// as a new attempt when its worker stops heartbeating (docs/cluster.md#workers).
        public var queue: String?
        /// How long a worker holds an attempt without a heartbeat before the run expires its lease.
        public var leaseMillis = 15_000
        /// Attempts of one task whose workers may lose their lease before the task fails (a lost lease
        /// re-queues the attempt without using one of the task's retries).
        public var maxLostLeases = 3

        public init(dataDirectory: URL) { self.dataDirectory = dataDirectory }
    }

    public let ledger: Ledger
    public let registry: DAGRegistry
    public let options: Options
    let recorder: Recorder
    let values: ValueStore
    let chunks: ChunkBook
    /// Operator Variables, which tasks read (``TaskContext/variable(_:)``, `CLEW_VAR_*`).
    public let variables: VariableStore
    /// Operator Connections, which tasks use (``TaskContext/connection(_:)``, `CLEW_CONN_*`).
    public let connections: ConnectionStore
    /// Pools: slot limits shared by every run, process and host.
    public let pools: PoolStore
    /// `name@version` of DAGs known to be registered in the ledger.
    let registered = Mutex(Set<String>())

    public convenience init(ledger: Ledger, registry: DAGRegistry = DAGRegistry(), options: Options? = nil) {
        self.init(ledger: ledger, registry: registry, options: options, fence: nil)
    }

    /// An engine whose every append is fenced by a worker's lease on an attempt, sharing the worker's
    /// chunk book (its folded datasets and its admissions) with the worker's other attempts.
    init(ledger: Ledger, registry: DAGRegistry, options: Options?, fence: StreamExpectation?, chunks: ChunkBook? = nil) {
        self.ledger = ledger
        self.registry = registry
        self.options = options ?? Options(dataDirectory: ledger.directory.appendingPathComponent("data"))
        self.recorder = Recorder(ledger: ledger, actor: self.options.actor, fence: fence)
        self.values = ValueStore(ledger: ledger, recorder: recorder)
        self.chunks = chunks ?? ChunkBook(ledger: ledger)
        self.variables = VariableStore(ledger: ledger)
        self.connections = ConnectionStore(ledger: ledger)
        self.pools = PoolStore(ledger: ledger)


    }

    /// Records `dag.registered` for this version of the DAG unless it is already the latest registered.
    /// - Returns: the version (definition hash).
    @discardableResult
    public func register(_ dag: DAG) async throws -> String {
        try dag.validate()
        let version = dag.version
        if registered.withLock({ $0.contains("\(dag.name)@\(version)") }) { return version }
        defer { registered.withLock { _ = $0.insert("\(dag.name)@\(version)") } }
        let stream = StreamID.dag(dag.name)
        let latest = try ledger.events(inStream: stream).last { $0.type == EventType.dagRegistered }
        if let latest, (try? JSONDecoder().decode(DAGRegistered.self, from: latest.payload))?.version == version {
            return version
        }
        var registered = DAGRegistered(
            dag: dag.name, version: version, origin: dag.spec.origin, sourceSHA256: dag.spec.sourceDigest,
            tasks: dag.spec.tasks.map(\.id), definition: dag.spec)
        // The pipeline file and its scripts as this version runs them, for the code view.
        var sources: [SourceFile] = []
        for s in dag.sources {
            let redacted = SourceFile.redacted(s.text)
            guard let json = try? JSON.canonical(redacted) else { continue }
            let value = RecordedValue(canonicalJSON: json, type: "source")
            values.storeIfNeeded(value)
            sources.append(SourceFile(path: s.path, sha256: s.sha256, value: value.digest, bytes: s.text.utf8.count))
        }
        if !sources.isEmpty { registered.sources = sources }
        recorder.emit(EventType.dagRegistered, stream: stream, registered)
        try await recorder.flush()
        return version
    }

    /// Runs `dag` once and returns when the run has ended and all its events are durable.
    /// - Parameters:
    ///   - params: overrides of the DAG's default params.
    ///   - partition: the interval the run covers (scheduled runs and backfills).
    ///   - runID: the run id; by default `manual__<time>_<random>` (or `scheduled__<partition>`).
    ///   - trigger: why it runs (`manual`, `scheduled`, `backfill`, `dag:<parent dag>/<parent run>`).
    /// - Throws: ``DAGValidationError`` for a bad definition, ``EngineError`` for a run id in use, ledger
    ///   errors. A failing task does not throw: it is in the outcome.
    public func run(
        _ dag: DAG, params: [String: String] = [:], partition: Partition? = nil, runID: String? = nil,
        trigger: String = "manual"
    ) async throws -> RunOutcome {
        if let problem = dag.spec.paramsProblem(params) { throw EngineError(.invalidInput, problem) }
        let version = try await register(dag)
        let id = try runID ?? newRunID(dag: dag.name, partition: partition, trigger: trigger)
        let stream = StreamID.run(dag: dag.name, run: id)
        let exists = EngineError(.conflict, "run \(id) of DAG \(dag.name) already exists; pick another run id or resubmit it")
        guard try ledger.seqs(inStream: stream, limit: 1).isEmpty else { throw exists }
        let merged = dag.spec.params.merging(params, uniquingKeysWith: { _, given in given })
        var queued = RunQueued(dag: dag.name, run: id, dagVersion: version, params: Redaction.redact(params: merged), trigger: trigger)
        queued.set(partition)
        // The run's first event only if its stream is still empty: of two processes (or hosts) creating
        // the same run, a scheduled partition say, exactly one does.
        do {
            try await recorder.append([recorder.event(EventType.runQueued, stream: stream, queued)], expecting: [StreamExpectation(stream: stream, lastSeq: 0)])
        } catch let error as LedgerError where error.code == .conflict && error.stream == stream {
            throw exists
        }
        let execution = RunExecution(engine: self, dag: dag, runID: id, params: merged, partition: partition)
        return try await execution.execute(resume: nil)
    }

    /// Restarts a failed, cancelled or interrupted run from where it stopped: succeeded tasks keep their
    /// recorded outputs, every other task runs again (attempt numbers continue), chunks the run left failed
    /// or half-written are marked resubmitted and leases it held are released. No manual clean-up.
    /// - Parameter params: params to set again (secret params were recorded redacted and must be re-supplied).
    /// - Throws: ``EngineError`` when the run is unknown, succeeded, still running, or its DAG is unknown.
    /// - Parameter rerun: tasks to run again even though they succeeded (with every task after them), for
    ///   rebuilding what a quarantine marked suspect; a succeeded run may be resubmitted this way.
    public func resubmit(dag name: String, run id: String, params: [String: String] = [:], rerun: Set<String> = []) async throws -> RunOutcome {
        guard let dag = registry.dag(named: name) else {
            throw EngineError(.notFound, "DAG \(name) is not known to this executable or pipeline directory; cannot resubmit run \(id)")
        }
        if let problem = dag.spec.paramsProblem(params) { throw EngineError(.invalidInput, problem) }
        let plan = try ResubmitPlan(engine: self, dag: dag, runID: id, overrides: params, rerun: rerun)

        let version = try await register(dag)
        let execution = RunExecution(engine: self, dag: dag, runID: id, params: plan.params, partition: plan.partition)
        try await execution.cleanUpForResubmit(plan: plan, version: version)
        return try await execution.execute(resume: plan)
    }

    /// The text of a DAG version's source file (``SourceFile/value``), as recorded (redacted); nil when
    /// the ledger does not hold it.
    public func sourceText(_ file: SourceFile) throws -> String? {
        guard let value = try values.load(digest: file.value) else { return nil }
        return try? JSONDecoder().decode(String.self, from: value.json)
    }

    /// Waits until every event the engine emitted is durable.
    public func flush() async throws { try await recorder.flush() }

    /// A new run id: `manual__<time>_<random>`, or `<trigger>__<partition>` for scheduled runs and backfills.
    public func newRunID(dag: String, partition: Partition?, trigger: String) throws -> String {
        if let partition, trigger == "scheduled" || trigger == "backfill" {
            let base = "\(trigger)__\(partition.key)"
            var candidate = base
            var n = 1
            while try !ledger.seqs(inStream: StreamID.run(dag: dag, run: candidate), limit: 1).isEmpty {
                n += 1
                candidate = "\(base).\(n)"
            }
            return candidate
        }
        let now = Recorder.nowMicros()
        let stamp = PartitionKey.string(micros: now).filter { $0 != "-" && $0 != ":" }
        return "manual__\(stamp)_\(String(UInt64.random(in: 0..<(1 << 24)), radix: 16))"
    }
}

/// The interval a run covers: its key (the start, `2026-11-21T10:00:00Z`) and bounds in microseconds.
public struct Partition: Sendable, Hashable {
    public var key: String
    public var start: Int64
    public var end: Int64

    public init(start: Int64, end: Int64) {
        self.key = PartitionKey.string(micros: start)
        self.start = start
        self.end = end
    }

    public init(key: String, start: Int64, end: Int64) {
        self.key = key
        self.start = start
        self.end = end
    }
}

extension RunQueued {
    /// Records the interval a run covers (nothing for an unpartitioned run).
    mutating func set(_ partition: Partition?) {
        guard let partition else { return }
        self.partition = partition.key
        intervalStart = PartitionKey.string(micros: partition.start)
        intervalEnd = PartitionKey.string(micros: partition.end)
    }
}

/// How a run ended.
public struct RunOutcome: Sendable {
    public enum Status: String, Sendable { case succeeded, failed, cancelled }

    public var dag: String
    public var runID: String
    public var stream: String
    public var status: Status
    /// Final state of every task.
    public var tasks: [String: TaskState]
    /// Outputs of the tasks that produced one.
    public var outputs: [String: RecordedValue]
    /// Why tasks failed or were blocked, by task.
    public var errors: [String: String]

    public var failedTasks: [String] { tasks.filter { $0.value.isFailure }.map(\.key).sorted() }
}

/// A task's state in a run.
public enum TaskState: String, Sendable, Hashable {
    case pending, succeeded, failed, skipped, blocked, cancelled
    case upstreamFailed = "upstream_failed"

    var isTerminal: Bool { self != .pending }
    var isFailure: Bool { self == .failed || self == .upstreamFailed || self == .blocked || self == .cancelled }
}
