import ClewCore
public import ClewLedger
public import ClewModel
public import Foundation
public import Logging
import Synchronization

/// Runs the task attempts runs queue (``Engine/Options/queue``) on this host: `clew worker`.
///
/// A worker follows the log (over a shared log, its replica copies every append PostgreSQL announces),
/// and for each `attempt.queued` on its queue whose DAG version it ships, while it has a free slot:
/// - **claims** it: `attempt.claimed` appended only if the attempt's stream is still empty, so of any
///   number of workers on any number of hosts exactly one wins;
/// - **runs** it exactly as a run in this process would (the five questions, the body under its time
///   limit, expectations, chunks), recording into the run's streams;
/// - **heartbeats** every third of the lease, and records nothing without the lease: every append of
///   the attempt is conditional on the attempt's stream still ending with its own claim or heartbeat
///   (``Recorder/Fenced``), so once the run has expired the lease the worker's late results are
///   refused. A worker that cannot get a heartbeat acknowledged within the lease stops the attempt
///   itself;
/// - ends it with `attempt.completed` (the result, the output's digest, a branch's choice).
public final class Worker: Sendable {
    public struct Options: Sendable {
        /// The queue it takes attempts from.
        public var queue = "default"
        /// Attempts it runs at once.
        public var slots = 1
        /// Its name in claims and heartbeats (default `host:pid`).
        public var name = "\(ProcessInfo.processInfo.hostName):\(getpid())"
        /// Where attempts' output directories live.
        public var dataDirectory: URL
        /// Longest wait between looks at the queue when no append is announced.
        public var poll: Duration = .seconds(1)
        public var logger = Logger(label: "clew.worker", factory: { _ in SwiftLogNoOpLogHandler() })

        public init(dataDirectory: URL) { self.dataDirectory = dataDirectory }
    }

    /// One attempt this worker ran (or lost).
    public struct Report: Sendable {
        public var dag: String
        public var run: String
        public var task: String
        public var attempt: Int
        /// succeeded, failed, blocked, skipped, cancelled, or `lost` (the lease ended first).
        public var result: String
        public var error: String?
        public var millis: Int64
    }

    public let ledger: Ledger
    public let registry: DAGRegistry
    public let options: Options
    private let running = Mutex(0)
    /// The datasets as folded here, shared by the attempts this worker runs.
    private let chunks: ChunkBook

    public init(ledger: Ledger, registry: DAGRegistry, options: Options) {
        self.ledger = ledger
        self.registry = registry
        self.options = options
        self.chunks = ChunkBook(ledger: ledger)
    }

    /// Takes and runs attempts until the task is cancelled; attempts running then are cancelled (their
    /// leases expire and the runs queue them again).
    public func run(onClaim: @escaping @Sendable (AttemptEvent) -> Void = { _ in }, onEnd: @escaping @Sendable (Report) -> Void = { _ in }) async {
        // Over a shared log the replica copies every append the server announces (a no-op on LMDB).
        let replication = Task {
            await self.ledger.replicate(every: self.options.poll) { error in
                self.options.logger.warning("copying from the shared log failed (retrying)", metadata: ["error": "\(error)"])
                return true
            }
        }
        defer { replication.cancel() }
        await serve(onClaim: onClaim, onEnd: onEnd)
    }

    private func serve(onClaim: @escaping @Sendable (AttemptEvent) -> Void, onEnd: @escaping @Sendable (Report) -> Void) async {
        let queueStream = StreamID.queue(options.queue)
        let signals = ledger.changeSignals(every: options.poll)
        var wakeups = signals.makeAsyncIterator()
        var cursor: UInt64 = 0
        var backlog: [AttemptEvent] = []
        var warned = Set<String>()
        let decoder = JSONDecoder()
        await withTaskGroup(of: Void.self) { slots in
            repeat {
                do {
                    for event in try ledger.events(inStream: queueStream, after: cursor) {
                        cursor = event.seq
                        if event.type == EventType.attemptQueued, let q = try? decoder.decode(AttemptEvent.self, from: event.payload) { backlog.append(q) }
                    }
                    // Attempts another worker claimed, or the run withdrew, leave the backlog.
                    backlog = try backlog.filter { try ledger.seqs(inStream: $0.stream, limit: 1).isEmpty }
                    var i = 0
                    while i < backlog.count, running.withLock({ $0 }) < options.slots, !Task.isCancelled {
                        let q = backlog[i]
                        guard let dag = registry.dag(named: q.dag), q.dagVersion == nil || dag.version == q.dagVersion else {
                            if warned.insert("\(q.dag)@\(q.dagVersion ?? "")").inserted {
                                options.logger.warning(
                                    "skipping attempts of a DAG version this worker does not ship",
                                    metadata: ["dag": "\(q.dag)", "version": "\(q.dagVersion ?? "?")", "shipped": "\(registry.dag(named: q.dag)?.version ?? "none")"])
                            }
                            i += 1
                            continue
                        }
                        backlog.remove(at: i)
                        guard let claim = try await claim(q) else { continue }
                        onClaim(q)
                        running.withLock { $0 += 1 }
                        slots.addTask {
                            let report = await self.execute(q, dag: dag, claimSeq: claim)
                            self.running.withLock { $0 -= 1 }
                            onEnd(report)
                        }
                    }
                } catch {
                    options.logger.warning("reading the queue failed", metadata: ["error": "\(error)"])
                }
            } while await wakeups.next() != nil && !Task.isCancelled
            slots.cancelAll()
        }
    }

    /// `attempt.claimed`, appended only if the attempt's stream is empty: the claim's seq, or nil when
    /// another worker (or the run, withdrawing it) was first.
    private func claim(_ q: AttemptEvent) async throws -> UInt64? {
        var c = AttemptEvent(dag: q.dag, run: q.run, task: q.task, attempt: q.attempt)
        c.worker = options.name
        c.host = ProcessInfo.processInfo.hostName
        c.pid = Int(getpid())
        c.leaseMillis = q.leaseMillis
        let event = NewEvent(
            type: EventType.attemptClaimed, stream: q.stream, actor: "clew-worker", timestampMicros: Recorder.nowMicros(), payload: c.payloadData)
        do {
            return try await ledger.append(contentsOf: [event], ifStream: q.stream, lastSeqIs: 0).lowerBound
        } catch let error as LedgerError where error.code == .conflict {
            return nil
        }
    }

    private enum Ending: Sendable {
        case done(RunExecution.AttemptResult)
        case lost(String)
    }

    /// Runs one claimed attempt under its lease.
    private func execute(_ q: AttemptEvent, dag: DAG, claimSeq: UInt64) async -> Report {
        let clock = ContinuousClock.now
        var options = Engine.Options(dataDirectory: self.options.dataDirectory)
        options.actor = "clew-worker"
        options.logger = self.options.logger
        let engine = Engine(ledger: ledger, registry: registry, options: options, fence: StreamExpectation(stream: q.stream, lastSeq: claimSeq), chunks: chunks)
        let recorder = engine.recorder
        func report(_ result: String, _ error: String?) -> Report {
            Report(dag: q.dag, run: q.run, task: q.task, attempt: q.attempt, result: result, error: error, millis: (ContinuousClock.now - clock).milliseconds)
        }
        let ending: Ending
        if let problem = setUpProblem(q, dag: dag) {
            ending = .done(.failed(problem))
            var failed = TaskEvent(task: q.task, attempt: q.attempt, error: problem)
            failed.durationMillis = 0
            recorder.emit(EventType.taskFailed, stream: StreamID.run(dag: q.dag, run: q.run), failed)
        } else {
            let lease = Duration.milliseconds(max(q.leaseMillis ?? 15_000, 300))
            let acknowledged = Acknowledged()
            // Heartbeats from the claim on: reading the inputs is part of the attempt.
            ending = await withTaskGroup(of: Ending.self) { group in
                group.addTask {
                    let (execution, spec, inputs) = self.prepared(q, dag: dag, engine: engine)
                    return .done(await execution.runAttempt(spec, attempt: q.attempt, inputs: inputs))
                }
                group.addTask {
                    var beat = AttemptEvent(dag: q.dag, run: q.run, task: q.task, attempt: q.attempt)
                    beat.worker = self.options.name
                    while !Task.isCancelled {
                        try? await Task.sleep(for: lease / 3)
                        if Task.isCancelled { break }
                        recorder.emit(EventType.attemptHeartbeat, stream: q.stream, beat)
                        do {
                            try await recorder.flush()
                            acknowledged.instant.withLock { $0 = .now }
                        } catch let fenced as Recorder.Fenced {
                            return .lost(fenced.message)
                        } catch {
                            return .lost("a heartbeat failed: \(error)")
                        }
                    }
                    return .lost("cancelled")
                }
                group.addTask {
                    // A heartbeat not acknowledged within the lease: the run may have expired it already.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: lease / 6)
                        let since = ContinuousClock.now - acknowledged.instant.withLock { $0 }
                        if since > lease { return .lost("no heartbeat acknowledged for \(since.milliseconds) ms (lease \(lease.milliseconds) ms)") }
                    }
                    return .lost("cancelled")
                }
                let first = await group.next() ?? .lost("cancelled")
                group.cancelAll()
                return first
            }
        }
        switch ending {
        case .lost(let why):
            // What the attempt emitted before it stopped is appended only if the lease still holds.
            var detail = why
            do {
                try await recorder.flush()
                detail += "; its events so far were recorded (the lease still held)"
            } catch let fenced as Recorder.Fenced {
                detail += "; its late events were refused (\(fenced.message))"
            } catch {
                detail += "; its events could not be recorded: \(error)"
            }
            options.logger.warning("lost the lease; stopped the attempt", metadata: ["stream": "\(q.stream)", "why": "\(detail)"])
            return report("lost", detail)
        case .done(let result):
            var done = AttemptEvent(dag: q.dag, run: q.run, task: q.task, attempt: q.attempt)
            done.worker = self.options.name
            switch result {
            case .succeeded(let output, let chosen):
                done.result = "succeeded"
                done.outputDigest = output?.digest
                done.branch = chosen
            case .failed(let why): (done.result, done.error) = ("failed", why)
            case .blocked(let why): (done.result, done.error) = ("blocked", why)
            case .skipped(let why): (done.result, done.error) = ("skipped", why)
            case .cancelled: done.result = "cancelled"
            case .lost(let why): (done.result, done.error) = ("failed", why)
            }
            recorder.emit(EventType.attemptCompleted, stream: q.stream, done)
            do {
                try await recorder.flush()
            } catch {
                options.logger.warning("the attempt's end was not recorded", metadata: ["stream": "\(q.stream)", "error": "\(error)"])
                return report("lost", "\(error)")
            }
            return report(done.result ?? "failed", done.error)
        }
    }

    /// Why the attempt cannot run here: a task the DAG does not have, a secret param not in the
    /// worker's environment, an input not in the ledger.
    private func setUpProblem(_ q: AttemptEvent, dag: DAG) -> String? {
        guard dag.spec.tasks.contains(where: { $0.id == q.task }) else { return "DAG \(q.dag) has no task \(q.task) on worker \(options.name)" }
        for (name, value) in q.params ?? [:] where value == "[REDACTED]" && Self.secret(name) == nil {
            return "param \(name) was recorded redacted; give worker \(options.name) its value as \(Self.secretVariable(name))"
        }
        return nil
    }

    static func secretVariable(_ name: String) -> String {
        "CLEW_PARAM_" + String(name.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    static func secret(_ name: String) -> String? { ProcessInfo.processInfo.environment[secretVariable(name)] }

    private func prepared(_ q: AttemptEvent, dag: DAG, engine: Engine) -> (RunExecution, TaskSpec, [String: RecordedValue]) {
        var params = q.params ?? [:]
        for (name, value) in params where value == "[REDACTED]" { params[name] = Self.secret(name) }
        var partition: Partition?
        if let key = q.partition, let s = q.intervalStart.flatMap(PartitionKey.parse), let e = q.intervalEnd.flatMap(PartitionKey.parse) {
            partition = Partition(key: key, start: s, end: e)
        }
        let execution = RunExecution(engine: engine, dag: dag, runID: q.run, params: params, partition: partition)
        let spec = dag.spec.tasks.first { $0.id == q.task }!
        let wanted = q.inputs ?? [:]
        var inputs = (try? execution.producedValues { wanted[$0.task] == $0.digest }) ?? [:]
        for (task, digest) in wanted where inputs[task] == nil {
            if let value = try? engine.values.load(digest: digest) { inputs[task] = value }
        }
        return (execution, spec, inputs)
    }
}

/// When a worker's last heartbeat was acknowledged.
private final class Acknowledged: Sendable {
    let instant = Mutex(ContinuousClock.now)
}
