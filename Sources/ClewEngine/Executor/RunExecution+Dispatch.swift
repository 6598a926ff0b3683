import ClewCore
import ClewLedger
import ClewModel
import Foundation
import Logging

/// A run's side of an attempt run by a worker (``Engine/Options/queue``): the attempt is queued in the
/// log, one worker claims it under a lease and records it as it would run here; the run waits for its
/// end, and expires the lease when the worker's heartbeats stop, cleaning up what the worker left.
extension RunExecution {
    func dispatch(_ spec: TaskSpec, attempt: Int, inputs: [String: RecordedValue]) async -> AttemptResult {
        guard let queue = engine.options.queue else { return .failed("no queue to dispatch to") }
        var queued = AttemptEvent(dag: dag.name, run: runID, task: spec.id, attempt: attempt)
        queued.queue = queue
        queued.dagVersion = dag.version
        queued.params = Redaction.redact(params: params)
        queued.partition = partition?.key
        queued.intervalStart = partition.map { PartitionKey.string(micros: $0.start) }
        queued.intervalEnd = partition.map { PartitionKey.string(micros: $0.end) }
        queued.inputs = inputs.mapValues(\.digest)
        queued.leaseMillis = engine.options.leaseMillis
        do {
            // The inputs' values must be durable before a worker looks for them.
            recorder.emit(EventType.attemptQueued, stream: StreamID.queue(queue), queued)
            try await recorder.flush()
        } catch {
            return .failed("could not queue the attempt on \(queue): \(error)")
        }
        let logger = engine.options.logger
        logger.debug("queued", metadata: ["task": "\(spec.id)", "attempt": "\(attempt)", "queue": "\(queue)"])
        let stream = queued.stream
        let signals = engine.ledger.changeSignals(every: .milliseconds(max(50, min(1_000, engine.options.leaseMillis / 5))))
        var wakeups = signals.makeAsyncIterator()
        var last: UInt64 = 0
        var claimedAt: UInt64 = 0
        var holder: String?
        var lease = Duration.milliseconds(engine.options.leaseMillis)
        var beat = ContinuousClock.now
        let decoder = JSONDecoder()
        while true {
            if Task.isCancelled {
                if await expire(spec, attempt: attempt, stream: stream, last: last, worker: holder, reason: "the run was cancelled") {
                    return .cancelled
                }
            }
            do {
                for event in try engine.ledger.events(inStream: stream, after: last) {
                    last = event.seq
                    let e = try decoder.decode(AttemptEvent.self, from: event.payload)
                    switch event.type {
                    case EventType.attemptClaimed:
                        holder = e.worker
                        claimedAt = event.seq
                        lease = .milliseconds(e.leaseMillis ?? engine.options.leaseMillis)
                        beat = .now
                    case EventType.attemptHeartbeat:
                        beat = .now
                    case EventType.attemptCompleted:
                        return try outcome(of: e, spec: spec, after: claimedAt)
                    case EventType.attemptExpired:
                        return .lost("the lease of worker \(e.worker ?? "?") on attempt \(attempt) was expired by \(e.by ?? "?"): \(e.reason ?? "")")
                    default:
                        break
                    }
                }
            } catch {
                logger.warning("reading attempt stream failed", metadata: ["stream": "\(stream)", "error": "\(error)"])
            }
            if let worker = holder, ContinuousClock.now - beat > lease {
                let why = "worker \(worker) lost its lease on \(spec.id) attempt \(attempt): no heartbeat for \(lease.milliseconds) ms"
                if await expire(spec, attempt: attempt, stream: stream, last: last, worker: worker, reason: why) { return .lost(why) }
                // A heartbeat or the end landed first: read it.
                _ = try? await engine.ledger.pull()
                continue
            }
            if await wakeups.next() == nil { return .cancelled }
        }
    }

    /// The attempt's end as its worker recorded it.
    private func outcome(of e: AttemptEvent, spec: TaskSpec, after claim: UInt64) throws -> AttemptResult {
        switch e.result {
        case "succeeded":
            var output: RecordedValue?
            if let digest = e.outputDigest {
                output = try producedValues(after: claim) { $0.task == spec.id && $0.digest == digest && $0.attempt == e.attempt }[spec.id]
            }
            return .succeeded(output, chosen: e.branch)
        case "skipped": return .skipped(e.error ?? "")
        case "blocked": return .blocked(e.error ?? "blocked")
        case "cancelled": return .cancelled
        default: return .failed(e.error ?? "failed on worker \(e.worker ?? "?")")
        }
    }

    /// The values tasks produced, by task, from the `value.produced` events of the run's stream after
    /// `seq` that `wanted` picks (the latest of each task), in one pass.
    func producedValues(after seq: UInt64 = 0, _ wanted: (ValueEvent) -> Bool) throws -> [String: RecordedValue] {
        let decoder = JSONDecoder()
        var out: [String: RecordedValue] = [:]
        for event in try engine.ledger.events(inStream: stream, after: seq) where event.type == EventType.valueProduced {
            let v = try decoder.decode(ValueEvent.self, from: event.payload)
            if wanted(v), let value = try engine.values.value(in: v) { out[v.task] = value }
        }
        return out
    }

    /// Ends a worker's lease (a compare-and-append on the attempt's stream, so it races fairly with the
    /// worker's heartbeat) and undoes what the attempt left: `task.failed`, its reader leases released,
    /// the chunks it was writing failed. False when the stream moved first.
    private func expire(_ spec: TaskSpec, attempt: Int, stream: String, last: UInt64, worker: String?, reason: String) async -> Bool {
        var expired = AttemptEvent(dag: dag.name, run: runID, task: spec.id, attempt: attempt)
        expired.worker = worker
        expired.reason = reason
        expired.by = "\(ChunkBook.host):\(getpid())"
        do {
            try await recorder.append([recorder.event(EventType.attemptExpired, stream: stream, expired)], expecting: [StreamExpectation(stream: stream, lastSeq: last)])
        } catch {
            return false
        }
        guard worker != nil else { return true }
        emit(EventType.taskFailed, TaskEvent(task: spec.id, attempt: attempt, error: reason))
        let prefix = "\(runID)/\(spec.id)/\(attempt)/"
        try? releaseLeases(
            in: Set((spec.consumes + spec.produces).map(\.dataset)), held: { $0.lease.hasPrefix(prefix) }, unleased: false
        ) { name, key in
            var c = change(name, key, from: .consuming, to: .ready, task: spec.id, attempt: attempt)
            c.reason = "reader lease of a lost worker released"
            return c
        } settle: { name, chunk in
            guard chunk.status == .producing, let p = chunk.produced, p.run == runID, p.task == spec.id, p.attempt == attempt else { return nil }
            var c = change(name, chunk.key, from: .producing, to: .failed, task: spec.id, attempt: attempt)
            c.reason = reason
            return c
        }
        return true
    }
}
