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
        var blocks: [PreparedBlock]
        var eventCount: Int
        var condition: Condition
        var continuation: CheckedContinuation<Range<UInt64>, any Error>
    }

    /// What must hold when a request's turn comes in its group, or it is refused with
    /// ``LedgerError/Code/conflict`` (and the rest of the group commits without it).
    struct Condition: Sendable {
        /// Each stream's last event is still the seq named (compare-and-append).
        var expectations: [StreamExpectation] = []
        /// The log's last seq is this one: a replica copying from its shared log, whose events must
        /// land on the seqs they have there (another process may have copied them first).
        var logLastSeq: UInt64?
        /// A replica's copy, allowed on a ledger that refuses appends of its own.
        var replicating = false

        static let none = Condition()
    }

    private let store: LogStore
    private let options: Ledger.Options
    private let queue = DispatchQueue(label: "clew.ledger.writer", qos: .userInitiated)
    /// Retrains dictionaries off the writer's queue (see ``trainDictionaryIfDue(lastSeq:)``).
    private let trainer = DispatchQueue(label: "clew.ledger.trainer", qos: .utility)
    private let training = Atomic<Bool>(false)
    private let pending = Mutex<[Request]>([])
    private let closed = Atomic<Bool>(false)
    /// What the groups committed since the ledger was opened held, and where their time went.
    private let stats = Mutex(CommitStats())
    private var state: State?
    private let changes: ChangeNotifier

    init(store: LogStore, options: Ledger.Options, changes: ChangeNotifier) {
        self.store = store
        self.options = options
        self.changes = changes
    }

    func submit(_ blocks: [PreparedBlock], _ condition: Condition = .none) async throws -> Range<UInt64> {
        if closed.load(ordering: .acquiring) { throw LedgerError(.closed, "the ledger is closed") }
        let count = blocks.reduce(0) { $0 + $1.count }
        return try await withCheckedThrowingContinuation { continuation in
            pending.withLock { $0.append(Request(blocks: blocks, eventCount: count, condition: condition, continuation: continuation)) }
            queue.async { self.drain() }
        }
    }

    /// The groups committed since the ledger was opened: what they held and the writer's time on them.
    var commitStats: CommitStats { stats.withLock { $0 } }

    /// Waits until queued appends and dictionary training have finished.
    func waitForIdle() {
        queue.sync {}
        trainer.sync {}
    }

    /// Waits for queued appends and training to finish and refuses new appends.
    func shutdown() {
        closed.store(true, ordering: .releasing)
        queue.sync {}
        trainer.sync {}
    }

    private func takeGroup() -> [Request] {
        pending.withLock { queue in
            var count = 0
            var taken = 0
            for request in queue {
                if taken > 0 && count + request.eventCount > options.maxGroupEvents { break }
                count += request.eventCount
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
            var timing = CommitStats()
            let (results, newState) = try commit(group, timing: &timing)
            state = newState
            stats.withLock { $0.add(timing) }
            for (request, result) in zip(group, results) { request.continuation.resume(with: result) }
            changes.notify()
            trainDictionaryIfDue(lastSeq: newState.lastSeq)
        } catch {
            state = nil  // re-read from the log on the next group
            for request in group { request.continuation.resume(throwing: error) }
        }
    }

    private func commit(_ group: [Request], timing: inout CommitStats) throws -> ([Result<Range<UInt64>, any Error>], State) {
        if options.readOnly { throw LedgerError(.readOnly, "the ledger was opened read-only") }
        let started = DispatchTime.now().uptimeNanoseconds
        // Room for the blocks, their blobs, the stream index, Merkle nodes and the pages a write
        // copies, estimated high (see `Environment.ensureRoom`).
        var bytes = 256 << 10
        for request in group {
            bytes += request.eventCount * 160
            for block in request.blocks { bytes += 3 * block.encoded.count + block.blobs.reduce(0) { $0 + 2 * $1.value.count } }
        }
        try store.env.ensureRoom(bytes)
        let writing = DispatchTime.now().uptimeNanoseconds
        var bodyNanos: UInt64 = 0
        let (results, st) = try store.env.write { txn in
            let bodyStarted = DispatchTime.now().uptimeNanoseconds
            defer { bodyNanos = DispatchTime.now().uptimeNanoseconds - bodyStarted }  // the last run's, if repeated
            var st = try currentState(txn)
            var results: [Result<Range<UInt64>, any Error>] = []
            results.reserveCapacity(group.count)
            for request in group {
                if let refusal = try refusal(request.condition, st, txn) {
                    results.append(.failure(refusal))
                    continue
                }
                let first = st.lastSeq + 1
                for block in request.blocks {
                    try append(block, to: &st, txn)
                }
                results.append(.success(first..<st.lastSeq + 1))
            }
            return (results, st)
        }
        let ended = DispatchTime.now().uptimeNanoseconds
        timing.groups = 1
        timing.requests = group.count
        timing.events = group.reduce(0) { $0 + $1.eventCount }
        timing.roomNanos = writing - started
        timing.bodyNanos = bodyNanos
        timing.commitNanos = ended - writing - min(bodyNanos, ended - writing)
        return (results, st)
    }

    /// Why a request may not be appended now, or nil when its condition holds.
    private func refusal(_ condition: Condition, _ st: State, _ txn: Transaction) throws -> LedgerError? {
        if store.replicaOf != nil, !condition.replicating {
            return LedgerError(
                .readOnly, "this ledger is a replica of \(store.replicaOf ?? "a shared log"); append through the shared log (--ledger URL)")
        }
        if let last = condition.logLastSeq, last != st.lastSeq {
            return LedgerError(.conflict, "the log's last seq is \(st.lastSeq), not \(last)")
        }
        for e in condition.expectations {
            let last = try store.lastSeq(inStream: e.stream, txn)
            guard last != e.lastSeq else { continue }
            guard let scope = e.scope, last > e.lastSeq else {
                return LedgerError(
                    .conflict, "stream \(e.stream)'s last event is \(last == 0 ? "none" : "seq \(last)"), not \(e.lastSeq == 0 ? "none" : "seq \(e.lastSeq)")", stream: e.stream)
            }
            if let seq = try firstInScope(e.stream, after: e.lastSeq, scope, txn) {
                return LedgerError(
                    .conflict, "stream \(e.stream)'s event \(seq), after seq \(e.lastSeq), concerns \(scope.field) \(scope.values.sorted().joined(separator: ", "))",
                    stream: e.stream)
            }
        }
        return nil
    }

    /// The first event of `stream` after `after` that `scope` contains, if any.
    private func firstInScope(_ stream: String, after: UInt64, _ scope: PayloadScope, _ txn: Transaction) throws -> UInt64? {
        var key = stream
        let seqs = try key.withUTF8 { k in
            try txn.withCursor(store.streams) { c in
                var out: [UInt64] = []
                var entry = try withUnsafeBytes(of: (after &+ 1).bigEndian) { try c.seek(UnsafeRawBufferPointer(k), value: $0) }
                while let e = entry {
                    out.append(e.value.bigEndianUInt64)
                    entry = try c.nextDuplicate()
                }
                return out
            }
        }
        var reader = BlockReader(store: store, txn: txn)
        var cache = StringCache()
        for seq in seqs {
            guard let i = try reader.locate(seq) else { return seq }
            let event = try reader.event(i, cache: &cache)
            if scope.contains(payload: event.payload, erased: event.payloadErased) { return seq }
        }
        return nil
    }


    /// Puts one block: its seqs, leaf tags, stream index entries, blobs and Merkle nodes.
    private func append(_ block: PreparedBlock, to st: inout State, _ txn: Transaction) throws {
        let first = st.lastSeq + 1
        var leaves: [MerkleHash] = []
        leaves.reserveCapacity(block.count)
        for (i, state) in block.leafStates.enumerated() {
            var hasher = state
            EnvelopeCodec.withSeqSuffix(first + UInt64(i)) { hasher.update($0) }
            leaves.append(hasher.finalize())
        }
        // The record is assembled here and put whole: with MDB_RESERVE, small values and MDB_APPEND, a
        // page split during an append that then hits the map's end corrupted LMDB 0.9.24's pages (the
        // "a full map grows on demand" test crashed inside LMDB every time).
        let record = Block.record(tags: leaves.map(\.tag), encoded: block.encoded)
        _ = try withUnsafeBytes(of: first.bigEndian) { key in
            try record.withUnsafeBytes { try txn.put(store.blocks, key, $0, flags: MDB_APPEND) }
        }
        // In key order through one cursor (sorted on the appender's thread); a stream's new seq is
        // always its greatest, so each is appended after its stream's last (`MDB_APPENDDUP`).
        try txn.withCursor(store.streams) { c in
            try block.streams.forEachInKeyOrder { i, stream in
                try withUnsafeBytes(of: (first + UInt64(i)).bigEndian) { try c.put(stream, $0, flags: MDB_APPENDDUP) }
            }
        }
        for blob in block.blobs {
            _ = try blob.key.withUnsafeBytes { k in
                try blob.value.withUnsafeBytes { try txn.put(store.blobs, k, $0, flags: MDB_NOOVERWRITE) }
            }
        }
        // Completed nodes come in the order of their keys in the completion layout: each goes at the
        // table's end.
        let nodeFlags = store.nodeKeys == .completion ? MDB_APPEND : 0
        for leaf in leaves {
            try st.frontier.append(leaf) { level, index, hash in
                guard level >= LogStore.storedMinLevel else { return }
                _ = try store.withNodeKey(level: level, index: index) { k in
                    try hash.withUnsafeBytes { try txn.put(store.merkle, k, $0, flags: nodeFlags) }
                }
            }
        }
        st.lastSeq = first + UInt64(block.count) - 1
    }

    /// The writer's state, re-read when another process (or a failed group) moved the log on.
    private func currentState(_ txn: Transaction) throws -> State {
        let last = try store.lastSeq(txn)
        if let state, state.lastSeq == last { return state }
        try store.refreshDictionary(txn)
        return State(lastSeq: last, frontier: try store.frontier(size: last, txn))
    }

    // MARK: Dictionary training

    /// A dictionary trained and not stored yet, with what its log line reports.
    struct TrainedDictionary {
        var bytes: [UInt8]
        var samples: Int
        var ms: UInt64
    }

    /// Trains a dictionary when the log passed a training point. The first one is trained here, between
    /// groups: until it exists every block compresses without one (training in the background let a fast
    /// writer fill the log with dictionary-less records meanwhile: 115 instead of 91 bytes/event in the
    /// demo). Later ones are trained on `trainer` while blocks keep using the current dictionary, and
    /// stored from the writer's queue: a retraining over 4,000 events blocked appends for ~100 ms.
    private func trainDictionaryIfDue(lastSeq: UInt64) {
        let due = options.dictionaryTrainingPoints.filter { $0 <= lastSeq }.count
        let have = Int(store.currentDictionary.withLock { $0?.id } ?? 0)
        guard due > have else { return }
        if have == 0 {
            if let trained = train(lastSeq: lastSeq) { keep(trained, due: due) }
            return
        }
        guard training.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        trainer.async {
            defer { self.training.store(false, ordering: .releasing) }
            guard !self.closed.load(ordering: .acquiring), let trained = self.train(lastSeq: lastSeq) else { return }
            self.queue.sync {
                if !self.closed.load(ordering: .acquiring) { self.keep(trained, due: due) }
            }
        }
    }

    /// A dictionary trained from the body entries (envelope and payload) of the most recent events, up to
    /// 4,000; nil when there is too little to learn from or the read fails.
    private func train(lastSeq: UInt64) -> TrainedDictionary? {
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            let samples = try store.env.read { txn -> [[UInt8]] in
                try store.refreshDictionary(txn)
                var samples: [[UInt8]] = []
                var reader = BlockReader(store: store, txn: txn)
                var seq = lastSeq
                while seq >= 1, samples.count < 4_000, let i = try reader.locate(seq) {
                    reader.body.withUnsafeBytes { raw in
                        for span in reader.spans[...i].reversed() where samples.count < 4_000 {
                            samples.append(Array(raw[span.envelope.lowerBound..<span.payload.upperBound]))
                        }
                    }
                    seq = reader.first - 1
                }
                return samples
            }
            let total = samples.reduce(0) { $0 + $1.count }
            let capacity = min(options.dictionaryCapacity, max(1024, total / 10))
            guard let dict = ZstdDictionary.train(samples: samples, capacity: capacity) else {
                options.logger.info("zstd dictionary training found too little to learn from", metadata: ["events": "\(samples.count)"])
                return nil
            }
            return TrainedDictionary(bytes: dict, samples: samples.count, ms: (DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)
        } catch {
            // Training is an optimisation: records stay readable without it.
            options.logger.warning("zstd dictionary training failed: \(error)")
            return nil
        }
    }

    /// Stores a trained dictionary and makes it current, unless another process stored one for the same
    /// training point meanwhile. Runs on the writer's queue.
    private func keep(_ trained: TrainedDictionary, due: Int) {
        do {
            try store.env.write { txn in
                try store.refreshDictionary(txn)
                if Int(store.currentDictionary.withLock { $0?.id } ?? 0) >= due { return }
                let d = try store.storeDictionary(trained.bytes, txn)
                store.currentDictionary.withLock { $0 = d }
            }
            options.logger.info(
                "trained zstd dictionary",
                metadata: ["bytes": "\(trained.bytes.count)", "samples": "\(trained.samples)", "ms": "\(trained.ms)"])
        } catch {
            options.logger.warning("storing a zstd dictionary failed: \(error)")
        }
    }
}

/// Group commits counted, and the writer's time on them split by step (``Writer/commitStats``).
package struct CommitStats: Sendable {
    /// Groups committed, the append calls (requests) and events they held.
    package var groups = 0
    package var requests = 0
    package var events = 0
    /// Checking the map has room ahead of the write, and growing it when it had not
    /// (``Environment/ensureRoom(_:)``).
    package var roomNanos: UInt64 = 0
    /// Inside the write transaction: conditions, leaf hashes, puts of blocks, stream index entries,
    /// blobs and Merkle nodes.
    package var bodyNanos: UInt64 = 0
    /// Beginning and committing the transaction: LMDB's writes of the dirty pages and its syncs.
    package var commitNanos: UInt64 = 0

    mutating func add(_ other: CommitStats) {
        groups += other.groups
        requests += other.requests
        events += other.events
        roomNanos += other.roomNanos
        bodyNanos += other.bodyNanos
        commitNanos += other.commitNanos
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
