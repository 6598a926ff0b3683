public import ClewCore
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
///
/// A worker's recorder is *fenced* by its lease: every batch it appends also requires the lease's
/// stream (`attempt/…`) to end with the worker's own claim or heartbeat, checked in the same write, so
/// once the coordinator has expired the lease nothing more of the attempt is recorded (the recorder
/// fails with ``Fenced``).
public final class Recorder: Sendable {
    let ledger: Ledger
    let actor: String
    /// The lease every append is conditional on, its last seq moved by each heartbeat appended here.
    let fence: Mutex<StreamExpectation?>
    /// One append at a time: the drain's batches and ``append(_:expecting:)``'s checked ones, so each
    /// sees the fence as the previous one left it.
    let turn = Turnstile()

    /// The worker no longer holds the lease its recorder is fenced on: the coordinator expired it (or
    /// the run was cancelled). Nothing more is recorded for the attempt.
    public struct Fenced: ClewError {
        public var stream: String
        public var message: String
        public var description: String { "lease lost: \(message); nothing more is recorded for this attempt (stream \(stream))" }
        public var category: ErrorCategory { .conflict }
    }

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

    public init(ledger: Ledger, actor: String = "clew-engine", fence: StreamExpectation? = nil) {
        self.ledger = ledger
        self.actor = actor
        self.fence = Mutex(fence)
    }

    /// Appends `events` now, after everything emitted before, only if every expectation holds (and the
    /// fence, for a worker's recorder): a claim or lease taken from what was read.
    /// - Throws: ``LedgerError`` `.conflict` when an expectation failed (nothing written), ``Fenced``
    ///   when the lease is lost.
    @discardableResult
    public func append(_ events: [NewEvent], expecting expectations: [StreamExpectation]) async throws -> Range<UInt64> {
        try await flush()
        return try await appendInTurn(events, expecting: expectations)
    }

    /// Like ``append(_:expecting:)``, with the events and expectations decided in this recorder's turn,
    /// after everything emitted before is durable and before anything emitted later is appended: what
    /// `build` reads of the log cannot be changed by this recorder in between, only by other processes
    /// (whose changes the expectations catch).
    @discardableResult
    func append(building build: () throws -> (events: [NewEvent], expecting: [StreamExpectation])) async throws -> Range<UInt64> {
        try await flush()
        await turn.enter()
        defer { turn.leave() }
        let (events, expectations) = try build()
        return try await appendHoldingTurn(events, expecting: expectations)
    }

    private func appendInTurn(_ events: [NewEvent], expecting extra: [StreamExpectation]) async throws -> Range<UInt64> {
        await turn.enter()
        defer { turn.leave() }
        return try await appendHoldingTurn(events, expecting: extra)
    }

    /// One append: with the fence's expectation first, moving the fence to the last event of its stream
    /// in the batch (a heartbeat).
    private func appendHoldingTurn(_ events: [NewEvent], expecting extra: [StreamExpectation]) async throws -> Range<UInt64> {
        if events.isEmpty { return 0..<0 }
        let fenced = fence.withLock { $0 }
        let expectations = (fenced.map { [$0] } ?? []) + extra
        do {
            let range = expectations.isEmpty
                ? try await ledger.append(contentsOf: events) : try await ledger.append(contentsOf: events, expecting: expectations)
            if let f = fenced, let i = events.lastIndex(where: { $0.stream == f.stream }) {
                fence.withLock { $0?.lastSeq = range.lowerBound + UInt64(i) }
            }
            return range
        } catch let error as LedgerError where error.code == .conflict && fenced != nil && error.stream == fenced?.stream {
            throw Fenced(stream: fenced!.stream, message: error.message)
        }
    }

    /// Queues one event for the stream, stamped now.
    public func emit<P: EventPayload>(_ type: String, stream: String, _ payload: P) {
        emit(event(type, stream: stream, payload))
    }

    /// The event ``emit(_:stream:_:)`` would queue, for ``append(_:expecting:)``.
    public func event<P: EventPayload>(_ type: String, stream: String, _ payload: P) -> NewEvent {
        assert(P.eventTypes.contains(type), "\(P.self) is not the payload of \(type)")
        return NewEvent(type: type, stream: stream, actor: actor, timestampMicros: Self.nowMicros(), payload: payload.payloadData)
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
                try await appendInTurn(batch, expecting: [])
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

/// An async lock handing turns out in arrival order (a recorder's appends take one each).
final class Turnstile: Sendable {
    private let state = Mutex<(busy: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func enter() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.busy {
                    s.busy = true
                    return true
                }
                s.waiting.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiting.isEmpty {
                s.busy = false
                return nil
            }
            return s.waiting.removeFirst()
        }
        next?.resume()
    }
}
