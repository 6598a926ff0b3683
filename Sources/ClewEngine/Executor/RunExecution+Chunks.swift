import ClewCore
import ClewLedger
import ClewModel
import Foundation
import Synchronization

extension RunExecution {
    struct Gate {
        var admitted: [ConsumedChunk] = []
        var producing: [(ref: ChunkRef, key: String, from: ChunkStatus?)] = []
        var blocked: String?
    }

    /// What a successful attempt leaves for the chunks it produced.
    struct ProducedFacts {
        var output: RecordedValue?
        var expectations: [Expectation]
        var declared: [(dataset: String, key: String, path: String)]
        /// The attempt's output directory (a URL is only built when a chunk needs it).
        var directory: String
    }

    /// Emits a payload to a dataset's stream.
    func emitToDataset<P: EventPayload>(_ type: String, _ dataset: String, _ payload: P) {
        recorder.emit(type, stream: StreamID.dataset(dataset), payload)
    }

    func emitChunk(_ change: ChunkChange) { recorder.emit(chunkEvent(change)) }

    func chunkEvent(_ change: ChunkChange) -> NewEvent {
        NewEvent(
            type: EventType.chunkStatusChanged, stream: StreamID.dataset(change.dataset), actor: recorder.actor,
            timestampMicros: Recorder.nowMicros(), payload: change.canonicalJSON)
    }

    func emitLease(_ lease: ChunkLease, acquired: Bool) {
        var lease = lease
        lease.dag = dag.name
        emitToDataset(acquired ? EventType.chunkLeaseAcquired : EventType.chunkLeaseReleased, lease.dataset, lease)
        engine.chunks.ownLeases.withLock { own in
            if acquired { own.insert(lease.lease) } else { own.remove(lease.lease) }
        }
    }

    func change(_ dataset: String, _ key: String, from: ChunkStatus?, to: ChunkStatus, task: String, attempt: Int) -> ChunkChange {
        var c = ChunkChange(dataset: dataset, chunk: key, from: from, to: to)
        c.dag = dag.name
        c.run = runID
        c.task = task
        c.attempt = attempt
        c.partition = partition?.key
        return c
    }

    /// Answers the five questions for every consumed chunk (taking reader leases) and checks that no reader
    /// holds a chunk the task is about to write. The log must be flushed first.
    ///
    /// The answers, leases and `consuming`/`producing` changes are appended in one compare-and-append on
    /// every dataset they were read from, scoped to the chunks read: when another process or host
    /// changed one of those chunks in between (took the same chunk's write lease, say), nothing is
    /// written and the questions are asked again on what it left, so of two racing writers one
    /// proceeds and the other is blocked with the reason. Changes to other chunks of the same datasets
    /// are no conflict (workers writing the shards of one dataset do not retry each other).
    func admit(_ spec: TaskSpec, attempt: Int) async throws -> Gate {
        var lastConflict = ""
        for round in 0..<Self.admissionRounds {
            if round > 0 {
                // Another process wrote to one of the datasets in between: catch up, wait a little, ask again.
                _ = try await engine.ledger.pull()
                try await Task.sleep(for: .microseconds(Int.random(in: 200...(1_000 << min(round, 5)))))
            }
            await engine.chunks.admission.enter()
            defer { engine.chunks.admission.leave() }
            var gate = Gate()
            do {
                // Decided in the recorder's turn, so this engine's other tasks cannot change the datasets
                // between the reading and the append; other processes' changes are the conflicts.
                try await recorder.append { () throws -> (events: [NewEvent], expecting: [StreamExpectation]) in
                    var pending: [NewEvent] = []
                    var read: [String: (lastSeq: UInt64, chunks: Set<String>)] = [:]
                    gate = try decideAdmission(spec, attempt: attempt, into: &pending, read: &read)
                    let expectations = gate.blocked == nil
                        ? read.sorted { $0.key < $1.key }.map {
                            StreamExpectation(
                                stream: StreamID.dataset($0.key), lastSeq: $0.value.lastSeq,
                                scope: PayloadScope(field: ChunkChange.CodingKeys.chunk.rawValue, values: $0.value.chunks))
                        } : []
                    return (pending, expectations)
                }
            } catch let error as LedgerError where error.code == .conflict && error.stream?.hasPrefix("dataset/") == true {
                lastConflict = error.message
                continue
            }
            engine.chunks.ownLeases.withLock { own in for c in gate.admitted { own.insert(c.lease) } }
            return gate
        }
        throw EngineError(.conflict, "task \(spec.id) could not take its chunks: their datasets changed under it \(Self.admissionRounds) times (last: \(lastConflict))")
    }

    /// How many times an admission is tried when other processes keep writing to its datasets.
    static let admissionRounds = 40

    /// One round of ``admit(_:attempt:)`` over the datasets as folded now: the events to append and
    /// the last seq of each dataset read, and the chunks read in it.
    private func decideAdmission(
        _ spec: TaskSpec, attempt: Int, into pending: inout [NewEvent], read: inout [String: (lastSeq: UInt64, chunks: Set<String>)]
    ) throws -> Gate {
        var gate = Gate()
        var leases: [NewEvent] = []
        for ref in spec.consumes {
            let key = resolve(ref.key)
            let dataset = datasetSpec(ref.dataset)
            let state = try engine.chunks.state(of: ref.dataset)
            read[ref.dataset, default: (state.lastSeq, [])].chunks.insert(key)  // the first read's seq: what the answers saw
            let answers = engine.chunks.ask(dataset: dataset, key: key, state: state)
            pending.append(recorder.event(
                EventType.questionAnswered, stream: stream,
                QuestionAnswered(
                    task: spec.id, attempt: attempt, dataset: ref.dataset, chunk: key, ready: answers.ready.recorded,
                    right: answers.right.recorded, location: answers.location.recorded, validated: answers.validated.recorded,
                    safe: answers.safe.recorded, allYes: answers.allYes)))
            guard answers.allYes else {
                return Gate(blocked: answers.blockingReason)
            }
            let chunk = state.chunks[key]
            var lease = ChunkLease(
                dataset: ref.dataset, chunk: key, lease: "\(runID)/\(spec.id)/\(attempt)/\(UInt32.random(in: 0...UInt32.max))",
                run: runID, task: spec.id, pid: getpid(), host: ChunkBook.host)
            lease.dag = dag.name
            leases.append(recorder.event(EventType.chunkLeaseAcquired, stream: StreamID.dataset(ref.dataset), lease))
            leases.append(chunkEvent(change(ref.dataset, key, from: chunk?.status, to: .consuming, task: spec.id, attempt: attempt)))
            gate.admitted.append(ConsumedChunk(
                dataset: ref.dataset, key: key, location: chunk?.produced?.location, digest: chunk?.produced?.digest, lease: lease.lease))
        }
        for ref in spec.produces {
            let key = resolve(ref.key)
            let state = try engine.chunks.state(of: ref.dataset)
            read[ref.dataset, default: (state.lastSeq, [])].chunks.insert(key)  // the first read's seq: what the answers saw
            let chunk = state.chunks[key]
            let readers = engine.chunks.liveLeases(chunk).filter { !gate.admitted.map(\.lease).contains($0.lease) }
            if let r = readers.first {
                return Gate(blocked: "chunk \(ref.dataset)/\(key) is not safe to write: run \(r.run) task \(r.task) holds reader lease \(r.lease)")
            }
            if chunk?.status == .producing, let p = chunk?.produced, p.run != runID {
                return Gate(blocked: "chunk \(ref.dataset)/\(key) is being written by run \(p.run ?? "?") task \(p.task ?? "?")\(p.attempt.map { " attempt \($0)" } ?? "")")
            }
            gate.producing.append((ref, key, chunk?.status))
        }
        pending += leases
        for p in gate.producing {
            pending.append(chunkEvent(change(p.ref.dataset, p.key, from: p.from, to: .producing, task: spec.id, attempt: attempt)))
        }
        return gate
    }

    func releaseAdmitted(_ admitted: [ConsumedChunk], spec: TaskSpec, attempt: Int, consumed: Bool) {
        for c in admitted {
            emitChunk(change(c.dataset, c.key, from: .consuming, to: consumed ? .consumed : .ready, task: spec.id, attempt: attempt))
            emitLease(
                ChunkLease(dataset: c.dataset, chunk: c.key, lease: c.lease, run: runID, task: spec.id, pid: getpid(), host: ChunkBook.host),
                acquired: false)
        }
    }

    /// Releases consumed chunks and settles produced ones: ready (or invalid when an expectation failed)
    /// after a success, failed after a failure. Returns a problem that fails the attempt (a declared chunk
    /// that was not written).
    @discardableResult
    func finishChunks(
        _ spec: TaskSpec, attempt: Int, admitted: [ConsumedChunk], producing: [(ref: ChunkRef, key: String, from: ChunkStatus?)],
        produced: ProducedFacts?, reason: String?
    ) -> String? {
        guard let produced else {
            releaseAdmitted(admitted, spec: spec, attempt: attempt, consumed: false)
            for p in producing {
                var c = change(p.ref.dataset, p.key, from: .producing, to: .failed, task: spec.id, attempt: attempt)
                c.reason = reason
                emitChunk(c)
            }
            return nil
        }
        var problem: String?
        var targets: [(dataset: String, key: String, path: String?, declaredNow: Bool)] =
            producing.map { ($0.ref.dataset, $0.key, $0.ref.path, false) }
        for d in produced.declared {
            let key = resolve(d.key)
            if let i = targets.firstIndex(where: { $0.dataset == d.dataset && $0.key == key }) {
                targets[i].path = d.path
            } else {
                targets.append((d.dataset, key, d.path, true))
            }
        }
        let failedExpectations = produced.expectations.filter { !$0.passed }
        for t in targets {
            if t.declaredNow {
                emitChunk(change(t.dataset, t.key, from: nil, to: .producing, task: spec.id, attempt: attempt))
            }
            var c = change(t.dataset, t.key, from: .producing, to: .ready, task: spec.id, attempt: attempt)
            let file = URL(fileURLWithPath: produced.directory).appendingPathComponent(t.path ?? t.dataset)
            if FileManager.default.fileExists(atPath: file.path) {
                c.location = file.path
                c.digest = FileDigest.sha256(file)
                c.bytes = FileDigest.size(file)
            } else if spec.kind == .command || t.path != nil {
                c.to = .failed
                c.reason = "the task did not write \(file.path)"
                problem = problem ?? "chunk \(t.dataset)/\(t.key) was declared at \(file.path) but not written"
            } else if let output = produced.output {
                c.location = "value:\(output.digest)"
                c.digest = output.digest
                c.bytes = Int64(output.json.count)
            }
            if !produced.expectations.isEmpty {
                c.validated = failedExpectations.isEmpty
                c.expectations = produced.expectations.map { "\($0.name): \($0.passed ? "passed" : "failed")\($0.message.isEmpty ? "" : " (\($0.message))")" }
                if !failedExpectations.isEmpty, c.to == .ready {
                    c.to = .invalid
                    c.reason = "expectation failed: \(failedExpectations.map(\.name).joined(separator: ", "))"
                }
            }
            emitChunk(c)
        }
        let ok = problem == nil && failedExpectations.isEmpty
        releaseAdmitted(admitted, spec: spec, attempt: attempt, consumed: ok)
        return problem
    }
}

/// What a resubmitted run starts from, read from its recorded events.
struct ResubmitPlan: Sendable {
    var params: [String: String]
    var partition: Partition?
    var previousStatus: String
    var previousVersion: String?
    var succeeded: Set<String> = []
    var outputs: [String: RecordedValue] = [:]
    var chosen: [String: [String]] = [:]
    var lastAttempt: [String: Int] = [:]

    init(engine: Engine, dag: DAG, runID: String, overrides: [String: String], rerun: Set<String> = []) throws {
        let stream = StreamID.run(dag: dag.name, run: runID)
        let events = try engine.ledger.events(inStream: stream)
        let decoder = JSONDecoder()
        guard let queued = events.first(where: { $0.type == EventType.runQueued }) else {
            throw EngineError(.notFound, "run \(runID) of DAG \(dag.name) is not in the ledger (stream \(stream) is empty)")
        }
        let q = try decoder.decode(RunQueued.self, from: queued.payload)
        previousVersion = q.dagVersion
        var params = q.params ?? [:]
        for (k, v) in overrides { params[k] = v }
        if let missing = params.first(where: { $0.value == "[REDACTED]" })?.key {
            throw EngineError("param \(missing) of run \(runID) was recorded redacted; pass it again with --param \(missing)=…")
        }
        self.params = params
        if let key = q.partition, let s = q.intervalStart.flatMap(PartitionKey.parse), let e = q.intervalEnd.flatMap(PartitionKey.parse) {
            partition = Partition(key: key, start: s, end: e)
        }
        let lastStart = events.lastIndex { $0.type == EventType.runStarted } ?? 0
        let terminal = events[lastStart...].last { [EventType.runSucceeded, EventType.runFailed, EventType.runCancelled].contains($0.type) }
        let known = Set(dag.spec.tasks.map(\.id))
        if let unknown = rerun.subtracting(known).sorted().first {
            throw EngineError(.notFound, "DAG \(dag.name) has no task \(unknown) to run again (tasks: \(known.sorted().joined(separator: ", ")))")
        }
        // A task marked failed since the run succeeded is something to run again (task actions).
        let markedFailed = terminal.map { t in events.contains { $0.seq > t.seq && $0.type == EventType.taskMarkedFailed } } ?? false
        if terminal?.type == EventType.runSucceeded, rerun.isEmpty, !markedFailed {
            throw EngineError(.conflict, "run \(runID) of DAG \(dag.name) succeeded; there is nothing to resubmit")
        }
        if terminal == nil, let started = events[lastStart...].first(where: { $0.type == EventType.runStarted }) {
            let s = try decoder.decode(RunStarted.self, from: started.payload)
            if let pid = s.pid.map(Int32.init), s.host == ChunkBook.host, pid != getpid(), ChunkBook.isAlive(pid) {
                throw EngineError(.conflict, "run \(runID) of DAG \(dag.name) is still running in process \(pid); cancel it first")
            }
        }
        previousStatus = terminal.map { String($0.type.dropFirst(4)) } ?? "interrupted"
        let values = engine.values
        for e in events {
            switch e.type {
            case EventType.taskStarted:
                let t = try decoder.decode(TaskEvent.self, from: e.payload)
                lastAttempt[t.task] = max(lastAttempt[t.task] ?? 0, t.attempt ?? 0)
            case EventType.taskSucceeded:
                let t = try decoder.decode(TaskEvent.self, from: e.payload)
                succeeded.insert(t.task)
                if let b = t.branch { chosen[t.task] = b.tasks }
            case EventType.taskMarkedSuccess:
                // Kept as succeeded, with no output: its children run with what they get (task actions).
                succeeded.insert(try decoder.decode(TaskEvent.self, from: e.payload).task)
            case EventType.taskMarkedFailed:
                let t = try decoder.decode(TaskEvent.self, from: e.payload)
                succeeded.remove(t.task)
                chosen[t.task] = nil
            case EventType.valueProduced:
                let v = try decoder.decode(ValueEvent.self, from: e.payload)
                if let value = try values.value(in: v) { outputs[v.task] = value }
            default:
                break
            }
        }
        // Tasks to run again, and every task after them in the DAG.
        var again = rerun
        var grew = true
        while grew {
            grew = false
            for t in dag.spec.tasks where !again.contains(t.id) && t.upstream.contains(where: again.contains) {
                again.insert(t.id)
                grew = true
            }
        }
        succeeded.subtract(again)
        for t in again { chosen[t] = nil }
        outputs = outputs.filter { succeeded.contains($0.key) }
    }
}

typealias ResumeState = ResubmitPlan

extension RunExecution {
    /// Records the resubmission and undoes what the interrupted run left behind: its half-written or failed
    /// chunks become `resubmitted`, its reader leases are released.
    func cleanUpForResubmit(plan: ResubmitPlan, version: String) async throws {
        try await recorder.flush()
        let rerun = tasks.map(\.id).filter { !plan.succeeded.contains($0) }
        emit(
            EventType.runResubmitted,
            RunResubmitted(
                run: runID, previousStatus: plan.previousStatus, dagVersion: version, previousVersion: plan.previousVersion,
                reused: tasks.map(\.id).filter { plan.succeeded.contains($0) }, rerun: rerun))
        try await releasePools(reason: "run \(runID) resubmitted")
        let datasets = Set(tasks.flatMap { ($0.consumes + $0.produces).map(\.dataset) } + dag.spec.datasets.map(\.name))
        try releaseLeases(in: datasets, held: { $0.run == runID }, unleased: true) { name, key in
            var c = ChunkChange(dataset: name, chunk: key, from: .consuming, to: .ready)
            c.dag = dag.name
            c.run = runID
            c.reason = "reader lease of the resubmitted run released"
            return c
        } settle: { name, chunk in
            guard let p = chunk.produced, p.run == runID, [.producing, .failed, .invalid].contains(chunk.status) else { return nil }
            var c = ChunkChange(dataset: name, chunk: chunk.key, from: chunk.status, to: .resubmitted)
            c.dag = dag.name
            c.run = runID
            c.task = p.task
            c.partition = p.partition
            c.reason = "run \(runID) resubmitted"
            return c
        }
    }

    /// Releases the reader leases `held` picks in `datasets`, returns a consuming chunk whose readers
    /// were only those (or, with `unleased`, that has none) to ready with `ready`'s change, and emits
    /// `settle`'s change for a chunk this run was writing: what a lost attempt or a resubmitted run
    /// leaves behind.
    func releaseLeases(
        in datasets: Set<String>, held: (ChunkLease) -> Bool, unleased: Bool, ready: (String, String) -> ChunkChange,
        settle: (String, ChunkState) -> ChunkChange?
    ) throws {
        for name in datasets.sorted() {
            let state = try engine.chunks.state(of: name)
            for chunk in state.chunks.values.sorted(by: { $0.key < $1.key }) {
                let leases = chunk.leases.values.filter(held)
                for lease in leases { emitLease(lease, acquired: false) }
                if chunk.status == .consuming, unleased || !leases.isEmpty, chunk.leases.count == leases.count {
                    emitChunk(ready(name, chunk.key))
                }
                if let c = settle(name, chunk) { emitChunk(c) }
            }
        }
    }
}
