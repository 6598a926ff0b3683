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
        let prepared = try prepare(events)
        return try await writer.submit(prepared)
    }

    /// Encodes, compresses and pre-hashes events as blocks on the caller's thread.
    func prepare(_ events: [NewEvent]) throws -> [PreparedBlock] {
        let now = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
        return try store.prepare(events, now: now, dictionary: store.currentDictionary.withLock { $0 })
    }
}
