import ClewLedger
import ClewModel
import Foundation

/// One write transaction's worth of the log, read and decoded: what a fold hands the views.
struct DecodedBatch: Sendable {
    var headers: [EventHeader] = []
    var facts: [Fact] = []
    /// Seqs of the `ledger.payloads_erased` events in the batch.
    var erasures: [UInt64] = []
}

/// Reads a range of the log in batches and decodes each batch's payloads, for a fold to write.
///
/// A fold of more than one batch reads and decodes on a thread of its own, a batch ahead of the writes
/// (``pipelined(_:ahead:body:)``): decoding is about a third of a fold's work and the views' writes the
/// rest, so the two overlap. Decoding itself stays on one thread, as in the baseline that
/// `clew bench views` measures a rebuild against.
struct FoldReader: Sendable {
    let ledger: Ledger
    let batchEvents: Int
    /// What the targets that still need a batch's events want decoded, given the batch's first and last seq.
    let interest: @Sendable (UInt64, UInt64) -> Fact.Interest

    /// Calls `body` with each batch of `range`, in order, on the calling thread.
    func inline(_ range: ClosedRange<UInt64>, body: (DecodedBatch) throws -> Void) throws {
        let decoder = JSONDecoder()
        var events: [Event] = []
        events.reserveCapacity(batchEvents)
        var erasures: [UInt64] = []
        func emit() throws {
            guard let first = events.first?.seq, let last = events.last?.seq else { return }
            let wanted = interest(first, last)
            var batch = DecodedBatch(erasures: erasures)
            batch.headers.reserveCapacity(events.count)
            batch.facts.reserveCapacity(events.count)
            for event in events {
                batch.headers.append(EventHeader(seq: event.seq, timeMicros: event.timestampMicros, stream: event.stream, type: event.type))
                batch.facts.append(Fact.decode(event, wanted: wanted, decoder: decoder))
            }
            events.removeAll(keepingCapacity: true)
            erasures.removeAll()
            try body(batch)
        }
        try ledger.scan(range) { event in
            if event.type == EventType.payloadsErased { erasures.append(event.seq) }
            events.append(event)
            if events.count == batchEvents { try emit() }
            return true
        }
        try emit()
    }

    /// Calls `body` with each batch of `range`, in order, on the calling thread, while a reader thread
    /// reads and decodes the batches after it (at most `ahead` of them waiting). An error of either side
    /// ends both; the reader thread has ended when this returns.
    func pipelined(_ range: ClosedRange<UInt64>, ahead: Int = 1, body: (DecodedBatch) throws -> Void) throws {
        let handoff = Handoff<DecodedBatch>(capacity: ahead)
        let reader = self
        let thread = Thread {
            do {
                try reader.inline(range) { batch in
                    guard handoff.put(batch) else { throw CancellationError() }
                }
                handoff.finish(nil)
            } catch {
                handoff.finish(error)
            }
        }
        thread.name = "clew-fold-reader"
        thread.stackSize = 8 << 20
        thread.start()
        do {
            while let batch = try handoff.take() { try body(batch) }
        } catch {
            handoff.cancelAndWait()
            throw error
        }
    }
}

/// A bounded queue between one producing thread and one consuming thread, which the producer ends with
/// ``finish(_:)`` (with its error, if any) and the consumer may cancel.
final class Handoff<Item: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: every stored property is read and written with `condition` locked.
    private let condition = NSCondition()
    private let capacity: Int
    private var items: [Item] = []
    private var finished = false
    private var failure: (any Error)?
    private var cancelled = false

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Waits for room and enqueues `item`; false when the consumer cancelled (the producer should stop).
    func put(_ item: Item) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity, !cancelled { condition.wait() }
        guard !cancelled else { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    /// The producer's last call: no more items, and why it stopped when it failed.
    func finish(_ error: (any Error)?) {
        condition.lock()
        defer { condition.unlock() }
        finished = true
        failure = error
        condition.broadcast()
    }

    /// The next item, waiting for one; nil once the producer finished and every item was taken.
    /// - Throws: the producer's error, once the items before it were taken.
    func take() throws -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty, !finished { condition.wait() }
        if !items.isEmpty {
            let item = items.removeFirst()
            condition.broadcast()
            return item
        }
        if let failure { throw failure }
        return nil
    }

    /// Tells the producer to stop, drops what it queued, and waits until it has finished.
    func cancelAndWait() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        items.removeAll()
        condition.broadcast()
        while !finished { condition.wait() }
    }
}
