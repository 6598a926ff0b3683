import CoreMetrics
import Dispatch
import Foundation
import Synchronization

extension Ledger {
    /// Appends one event and returns its seq once the commit is durable.
    ///
    /// ```swift
    /// let seq = try await ledger.append(NewEvent(type: "task.started", stream: "run/etl/7"))
    /// ```
    /// - Throws: ``LedgerError`` `.invalidInput` naming a bad field, `.mapFull` when the map limit is
    ///   reached, `.readOnly`; nothing is written when it throws.
    @discardableResult
    public func append(_ event: NewEvent) async throws -> UInt64 {
        try await append(contentsOf: [event]).lowerBound
    }

    /// Appends events atomically (all or none, consecutive seqs) and returns their seqs once durable.
    ///
    /// Concurrent calls are grouped into shared commits; a batch is never split across commits.
    /// - Parameter events: the events, validated before anything is written.
    /// - Returns: the seqs assigned, empty for an empty batch.
    @discardableResult
    public func append(contentsOf events: [NewEvent]) async throws -> Range<UInt64> {
        if events.isEmpty { return 0..<0 }
        let started = ContinuousClock.now
        defer { Self.recordAppend(since: started) }
        if let upstream { return try await appendShared(upstream, events, expecting: []) }
        let prepared = try prepare(events)
        return try await writer.submit(prepared)
    }

    /// The metric every append (to durable) is timed into: a histogram in `clew serve`'s `/metrics`,
    /// nothing where no metrics backend is set up (swift-metrics' default).
    public static let appendTimerLabel = "clew_ledger_append_seconds"

    static func recordAppend(since started: ContinuousClock.Instant) {
        let d = ContinuousClock.now - started
        CoreMetrics.Timer(label: appendTimerLabel).recordNanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }

    /// Compare-and-append: appends `events` atomically only if the last event of `stream` is still
    /// `lastSeq` (0: the stream has none yet), the check and the append in one write (one transaction
    /// of the shared log), so two processes or hosts that read the same state cannot both act on it.
    ///
    /// ```swift
    /// let last = try ledger.seqs(inStream: "lease/sales/2026-11-21").last ?? 0
    /// try await ledger.append(contentsOf: [claim], ifStream: "lease/sales/2026-11-21", lastSeqIs: last)
    /// ```
    /// - Throws: ``LedgerError`` `.conflict` naming the stream's actual last seq when it moved; nothing is
    ///   written.
    @discardableResult
    public func append(contentsOf events: [NewEvent], ifStream stream: String, lastSeqIs lastSeq: UInt64) async throws -> Range<UInt64> {
        try await append(contentsOf: events, expecting: [StreamExpectation(stream: stream, lastSeq: lastSeq)])
    }

    /// Compare-and-append over several streams: appends `events` only if every expectation holds (each
    /// stream's last event is still the seq it names), all checked in the same write as the append. A
    /// worker fenced by its lease and checking the chunk it is about to write uses two.
    /// - Throws: ``LedgerError`` `.conflict` naming the first stream that moved; nothing is written.
    @discardableResult
    public func append(contentsOf events: [NewEvent], expecting expectations: [StreamExpectation]) async throws -> Range<UInt64> {
        let started = ContinuousClock.now
        defer { Self.recordAppend(since: started) }
        if let upstream { return try await appendShared(upstream, events, expecting: expectations) }
        if events.isEmpty { return 0..<0 }
        return try await writer.submit(try prepare(events), .init(expectations: expectations))
    }

    /// Encodes, compresses and pre-hashes events as blocks: a batch of at least twice
    /// ``preparePartEvents`` events in contiguous parts of at least that many, on up to one thread per
    /// core (blocks are independent; the writer gives them their seqs in order), a smaller one on the
    /// caller's thread.
    ///
    /// An appender waits for its batch's durable commit before it prepares the next, so with one or two
    /// appenders a core sat idle through most of every batch's preparation (1.2-1.35 of 2 cores busy).
    func prepare(_ events: [NewEvent]) throws -> [PreparedBlock] {
        let now = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
        let dictionary = store.currentDictionary.withLock { $0 }
        let parts = min(ProcessInfo.processInfo.activeProcessorCount, events.count / Self.preparePartEvents)
        if parts <= 1 { return try store.prepare(events, now: now, dictionary: dictionary) }
        let store = store
        let results = PartResults(count: parts)
        let size = (events.count + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { k in
            let range = k * size..<min(events.count, (k + 1) * size)
            results.set(k, Result { try store.prepare(events[range], of: events.count, now: now, dictionary: dictionary) })
        }
        // Each part stops at its first invalid event, so the first failing part names the batch's first.
        var out: [PreparedBlock] = []
        for k in 0..<parts { out += try results.take(k).get() }
        return out
    }

    /// The fewest events of a part of a batch prepared on a thread of its own.
    static let preparePartEvents = 500
}

/// One slot per part of a batch prepared concurrently, each written by exactly one iteration of
/// `concurrentPerform` and read after it returns (which orders the writes before the reads).
private final class PartResults: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<Result<[PreparedBlock], any Error>?>

    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }

    func set(_ k: Int, _ result: Result<[PreparedBlock], any Error>) { slots[k] = result }

    func take(_ k: Int) -> Result<[PreparedBlock], any Error> {
        guard let result = slots[k] else { preconditionFailure("part \(k) of a batch was not prepared") }
        return result
    }
}
