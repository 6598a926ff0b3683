public import ClewLedger
public import ClewModel
import Foundation
import Synchronization

/// Write-behind event recording for the engine: events are stamped and queued in the order they are
/// emitted and appended in batches by one drain loop, so a task does not wait for a durable commit per
/// event; ``flush()`` waits until everything emitted so far is durable.
///
/// The engine flushes before a run starts executing, before the five questions are asked (they read the
/// log), before a child DAG is triggered and when a run ends, so a run's outcome is acknowledged only
/// once every event of it is durable.
public final class Recorder: Sendable {
    let ledger: Ledger
    let actor: String

    struct Waiter {
        let target: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    struct State {
        var buffer: [NewEvent] = []
        var draining = false
        var emitted: UInt64 = 0
        var durable: UInt64 = 0
        var waiters: [Waiter] = []
        var failure: (any Error)?
    }

    let state = Mutex(State())

    public init(ledger: Ledger, actor: String = "clew-engine") {
        self.ledger = ledger
        self.actor = actor
    }

    /// Queues one event for the stream, stamped now.
    public func emit<P: EventPayload>(_ type: String, stream: String, _ payload: P) {
        assert(P.eventTypes.contains(type), "\(P.self) is not the payload of \(type)")
        emit(NewEvent(type: type, stream: stream, actor: actor, timestampMicros: Self.nowMicros(), payload: payload.payloadData))
    }

    /// Queues a prepared event.
    public func emit(_ event: NewEvent) {
        let start = state.withLock { s -> Bool in
            s.buffer.append(event)
            s.emitted += 1
            if s.draining { return false }
            s.draining = true
            return true
        }
        if start { Task.detached { await self.drain() } }
    }

    /// Waits until every event emitted before the call is durable.
    /// - Throws: the ledger's error if an append failed (every later flush reports it too).
    public func flush() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let resumeNow: Result<Void, any Error>? = state.withLock { s in
                if let failure = s.failure { return .failure(failure) }
                if s.durable >= s.emitted { return .success(()) }
                s.waiters.append(Waiter(target: s.emitted, continuation: continuation))
                return nil
            }
            if let resumeNow { continuation.resume(with: resumeNow) }
        }
    }

    /// Events emitted so far.
    public var emittedCount: UInt64 { state.withLock { $0.emitted } }

    func drain() async {
        while true {
            let batch: [NewEvent] = state.withLock { s in
                let b = s.buffer
                s.buffer.removeAll(keepingCapacity: true)
                if b.isEmpty { s.draining = false }
                return b
            }
            if batch.isEmpty { return }
            var result: Result<Void, any Error> = .success(())
            do {
                try await ledger.append(contentsOf: batch)
            } catch {
                result = .failure(error)
            }
            let ready: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)] = state.withLock { s in
                s.durable += UInt64(batch.count)
                if case .failure(let e) = result, s.failure == nil { s.failure = e }
                var out: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)] = []
                s.waiters.removeAll { w in
                    if let f = s.failure {
                        out.append((w.continuation, .failure(f)))
                        return true
                    }
                    if w.target <= s.durable {
                        out.append((w.continuation, .success(())))
                        return true
                    }
                    return false
                }
                return out
            }
            for (c, r) in ready { c.resume(with: r) }
        }
    }

    static func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}
