internal import CLMDB
import Crypto
import Dispatch
import Foundation
import Logging
import Synchronization

/// The single writer: takes whole append requests off a queue and commits as many as fit in one group
/// (one LMDB write transaction, one durable commit), so concurrent appenders share the cost of a sync.
///
/// Encoding, compression and most of the leaf hashing happen on the appenders' threads (see
/// ``LogStore/prepare(_:now:dictionary:scratch:)``); the writer only assigns seqs, finishes leaf hashes, and puts.
final class Writer: @unchecked Sendable {
    // @unchecked Sendable: `state` is touched only on `queue` (a serial queue); everything else is
    // immutable or a Mutex.

    struct State {
        var lastSeq: UInt64
        var frontier: MerkleFrontier
    }

    struct Request {
        var events: [LogStore.Prepared]
        var continuation: CheckedContinuation<Range<UInt64>, any Error>
    }

    private let store: LogStore
    private let options: Ledger.Options
    private let queue = DispatchQueue(label: "clew.ledger.writer", qos: .userInitiated)
    private let pending = Mutex<[Request]>([])
    private let closed = Atomic<Bool>(false)
    private var state: State?
    private let changes: ChangeNotifier

    init(store: LogStore, options: Ledger.Options, changes: ChangeNotifier) {
        self.store = store
        self.options = options
        self.changes = changes
    }

    func submit(_ events: [LogStore.Prepared]) async throws -> Range<UInt64> {
        if closed.load(ordering: .acquiring) { throw LedgerError(.closed, "the ledger is closed") }
        return try await withCheckedThrowingContinuation { continuation in
            pending.withLock { $0.append(Request(events: events, continuation: continuation)) }
            queue.async { self.drain() }
        }
    }

    /// Waits for queued appends to finish and refuses new ones.
    /// Waits until queued appends (and dictionary training) have finished.
    func waitForIdle() {
        queue.sync {}
    }

    func shutdown() {
        closed.store(true, ordering: .releasing)
        queue.sync {}
    }

    private func takeGroup() -> [Request] {
        pending.withLock { queue in
            var count = 0
            var taken = 0
            for request in queue {
                if taken > 0 && count + request.events.count > options.maxGroupEvents { break }
                count += request.events.count
                taken += 1
            }
            let group = Array(queue.prefix(taken))
            queue.removeFirst(taken)
            return group
        }
    }

    private func drain() {
        let group = takeGroup()
        if group.isEmpty { return }
        do {
            let (ranges, newState) = try commit(group)
            state = newState
            for (request, range) in zip(group, ranges) { request.continuation.resume(returning: range) }
            changes.notify()
            // Training runs here, between groups: it reads at most 4,000 recent events and takes tens of
            // milliseconds, twice in a ledger's life by default, and then every later record compresses
            // with the new dictionary at once (training in the background let a fast writer fill the
            // log with dictionary-less records meanwhile: 115 instead of 91 bytes/event in the demo).
            trainDictionaryIfDue(lastSeq: newState.lastSeq)
        } catch {
            state = nil  // re-read from the log on the next group
            for request in group { request.continuation.resume(throwing: error) }
        }
    }

    private func commit(_ group: [Request]) throws -> ([Range<UInt64>], State) {
        if options.readOnly { throw LedgerError(.readOnly, "the ledger was opened read-only") }
        return try store.env.write { txn in
            var st = try currentState(txn)
            var ranges: [Range<UInt64>] = []
            ranges.reserveCapacity(group.count)
            for request in group {
                let first = st.lastSeq + 1
                for event in request.events {
                    try append(event, to: &st, txn)
                }
                ranges.append(first..<st.lastSeq + 1)
            }
            return (ranges, st)
        }
    }

    @inline(__always)
    private func append(_ event: LogStore.Prepared, to st: inout State, _ txn: Transaction) throws {
        let seq = st.lastSeq + 1
        var hasher = event.leafState
        EnvelopeCodec.withSeqSuffix(seq) { hasher.update(bufferPointer: $0) }
        let leaf = MerkleHash(hasher.finalize())
        try withUnsafeBytes(of: seq.bigEndian) { key in
            try txn.reserve(store.events, key, count: event.body.count + 4, flags: MDB_APPEND) { dst in
                event.body.withUnsafeBytes { dst.copyMemory(from: $0) }
                dst.storeBytes(of: leaf.tag.littleEndian, toByteOffset: event.body.count, as: UInt32.self)
            }
            var stream = event.stream
            _ = try stream.withUTF8 { try txn.put(store.streams, UnsafeRawBufferPointer($0), key) }
        }
        if let blob = event.blob {
            _ = try blob.key.withUnsafeBytes { k in
                try blob.value.withUnsafeBytes { try txn.put(store.blobs, k, $0, flags: MDB_NOOVERWRITE) }
            }
        }
        try st.frontier.append(leaf) { level, index, hash in
            guard level >= LogStore.storedMinLevel else { return }
            _ = try store.withNodeKey(level: level, index: index) { k in
                try hash.withUnsafeBytes { try txn.put(store.merkle, k, $0) }
            }
        }
        st.lastSeq = seq
    }

    /// The writer's state, re-read when another process (or a failed group) moved the log on.
    private func currentState(_ txn: Transaction) throws -> State {
        let last = try store.lastSeq(txn)
        if let state, state.lastSeq == last { return state }
        try store.refreshDictionary(txn)
        return State(lastSeq: last, frontier: try store.frontier(size: last, txn))
    }

    // MARK: Dictionary training

    private func trainDictionaryIfDue(lastSeq: UInt64) {
        let due = options.dictionaryTrainingPoints.filter { $0 <= lastSeq }.count
        let have = Int(store.currentDictionary.withLock { $0?.id } ?? 0)
        guard due > have else { return }
        do {
            let started = DispatchTime.now().uptimeNanoseconds
            let samples = try store.env.read { txn -> [[UInt8]] in
                try store.refreshDictionary(txn)
                let count = min(lastSeq, 4_000)
                var samples: [[UInt8]] = []
                var scratch: [UInt8] = []
                try txn.withCursor(store.events) { c in
                    var entry = try c.seek(lastSeq - count + 1)
                    while let e = entry {
                        _ = try store.envelope(ofRecord: e.value, seq: e.key.bigEndianUInt64, txn, into: &scratch)
                        samples.append(scratch)
                        entry = try c.next()
                    }
                }
                return samples
            }
            if Int(store.currentDictionary.withLock { $0?.id } ?? 0) >= due { return }
            let total = samples.reduce(0) { $0 + $1.count }
            let capacity = min(options.dictionaryCapacity, max(1024, total / 10))
            guard let dict = ZstdDictionary.train(samples: samples, capacity: capacity) else {
                options.logger.info("zstd dictionary training found too little to learn from", metadata: ["events": "\(samples.count)"])
                return
            }
            try store.env.write { txn in
                try store.refreshDictionary(txn)
                if Int(store.currentDictionary.withLock { $0?.id } ?? 0) >= due { return }
                let d = try store.storeDictionary(dict, txn)
                store.currentDictionary.withLock { $0 = d }
            }
            options.logger.info(
                "trained zstd dictionary",
                metadata: [
                    "bytes": "\(dict.count)", "samples": "\(samples.count)",
                    "ms": "\((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)",
                ])
        } catch {
            // Training is an optimisation: records stay readable without it.
            options.logger.warning("zstd dictionary training failed: \(error)")
        }
    }
}

/// Wakes followers (``Ledger/follow(after:)``) when this process commits.
final class ChangeNotifier: Sendable {
    private let waiters = Mutex<[UInt64: AsyncStream<Void>.Continuation]>([:])
    private let nextID = Atomic<UInt64>(0)

    func subscribe() -> (id: UInt64, stream: AsyncStream<Void>) {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        waiters.withLock { $0[id] = continuation }
        return (id, stream)
    }

    func unsubscribe(_ id: UInt64) {
        waiters.withLock { $0.removeValue(forKey: id) }?.finish()
    }

    func notify() {
        waiters.withLock { $0.values.forEach { $0.yield() } }
    }
}
