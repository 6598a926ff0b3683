import CoreMetrics
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

    /// Encodes, compresses and pre-hashes events as blocks on the caller's thread.
    func prepare(_ events: [NewEvent]) throws -> [PreparedBlock] {
        let now = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
        return try store.prepare(events, now: now, dictionary: store.currentDictionary.withLock { $0 })
    }
}
