import ClewLedger
import Crypto
public import ClewModel
import Foundation

/// One dataset as the chunk view sums it up: counts per status, stale and missing chunks, in O(1).
public struct DatasetSummary: Codable, Equatable, Sendable {
    public var name: String
    /// `time:<seconds>`, `sequence` or `key`: fixed when the first chunk arrives, from the dataset's
    /// declaration in a registered DAG (`key` when none was declared).
    public var partitioning: String
    /// Chunks per status (statuses with none are left out).
    public var counts: [String: UInt64] = [:]
    public var chunks: UInt64 = 0
    public var stale: UInt64 = 0
    /// Bounds of the chunks whose keys are in the partitioning's order (windows, sequence numbers).
    public var firstOrdinal: UInt64?
    public var lastOrdinal: UInt64?
    /// How many chunks have such keys.
    public var ordered: UInt64 = 0
    /// The ordinal the next free-form key gets.
    public var nextKeyOrdinal: UInt64 = ChunksProjection.keyOrdinalBase
    public var lastSeq: UInt64 = 0
    /// The columns, as a producer last described them (`dataset.described`).
    public var fields: [DatasetDescription.Field]?

    /// Windows or sequence numbers between the first and the last chunk that have no chunk.
    public var missing: UInt64 {
        guard let a = firstOrdinal, let b = lastOrdinal else { return 0 }
        return b - a + 1 - ordered
    }
}

/// One chunk as the chunk view holds it.
public struct ChunkRecord: Codable, Equatable, Sendable {
    public var key: String
    public var ordinal: UInt64
    public var status: String
    /// Seq and time of the change that set the status.
    public var since: UInt64
    public var sinceMicros: Int64
    public var dag: String?
    public var run: String?
    public var task: String?
    public var attempt: Int?
    public var partition: String?
    public var location: String?
    public var digest: String?
    public var bytes: Int64?
    public var validated: Bool?
    /// Seq of the change that last made it ready.
    public var producedSeq: UInt64?
    /// Set when a chunk it was derived from was produced again after it.
    public var staleBecause: String?
    /// Live reader leases.
    public var leases: [String] = []
    /// Transitions the life cycle does not allow (`ChunkStatus.canBecome`), with their seqs.
    public var anomalies: [String]?
}

/// The chunk status view: per dataset, every chunk's status, kept as range-compressed sets of chunk
/// ordinals so a million chunks in a status are one range, and a summary with counts.
///
/// Ordinals follow the partitioning: a time window's number since the epoch, a sequence number, or arrival
/// order for free-form keys (from 2^62 up, also for keys that do not fit the declared partitioning).
///
/// Tables: `datasets` (name → ``DatasetSummary``), `ordinals` (dataset, key → ordinal, only for keys
/// without a natural ordinal of their own), `chunks` (dataset, ordinal → ``ChunkRecord``), `sets`
/// (dataset, set, first ordinal → last ordinal), for staleness `consumers` (dataset, ordinal, attempt
/// digest) and `outputs` (attempt digest, dataset, ordinal), both ``GroupedTable``s, and for `--as-of`
/// `changes` and `snapshots` (``ChunkHistory``).
final class ChunksProjection: Projection {
    static let name = "chunks"
    static let tables = ["datasets", "ordinals", "chunks", "sets", "consumers", "outputs", "changes", "snapshots"]
    static let interest: Fact.Interest = [.chunks, .dags]
    static let keyOrdinalBase: UInt64 = 1 << 62
    static let staleSet: UInt8 = 0x40
    static let presentSet: UInt8 = 0x41

    static func setByte(_ status: String) -> UInt8 {
        UInt8(ChunkStatus.allCases.firstIndex { $0.rawValue == status } ?? 0x3f)
    }

    private var summaries = RecordCache<DatasetSummary>(table: "datasets")
    private var chunks = RecordCache<ChunkRecord>(table: "chunks")
    private var ordinals: [ByteKey: UInt64] = [:]
    /// Sets read or changed, kept from batch to batch up to ``setCacheRanges`` ranges in all (then
    /// dropped whole after a flush): a set is read from the view once, not again by every batch that
    /// changes it. At 100M events a dataset of 12M chunks with scattered failures has a range per
    /// failure, and reading its sets in every batch cost four times what it cost at 10M.
    private var sets: [ByteKey: SetEntry] = [:]
    static let setCacheRanges = 1 << 20

    /// A set as the view has it (`original`), as the fold made it, and whether the fold changed it since.
    struct SetEntry {
        var original: RangeSet
        var current: RangeSet
        var changed = false

        mutating func update(_ ordinal: UInt64, insert: Bool) {
            if insert { current.insert(ordinal) } else { current.remove(ordinal) }
            changed = true
        }
    }
    private var history: ChunkHistoryWriter

    init(snapshotOps: Int) { history = ChunkHistoryWriter(minimumOps: snapshotOps) }

    static func summaryKey(_ ds: String) -> [UInt8] { KeyBuilder().raw(ds).bytes }
    static func ordinalKey(_ ds: String, _ key: String) -> [UInt8] { KeyBuilder().string(ds).raw(key).bytes }
    static func chunkKey(_ ds: String, _ ordinal: UInt64) -> [UInt8] { KeyBuilder().string(ds).u64(ordinal).bytes }
    static func setPrefix(_ ds: String, _ set: UInt8) -> [UInt8] { KeyBuilder().string(ds).byte(set).bytes }
    /// An attempt as `consumers` and `outputs` name it: the first 16 bytes of the SHA-256 of its DAG,
    /// run, task and number. Staleness only compares attempts, never reads them back, so a fixed-size
    /// digest (no collision in 2^64 attempts, as near as matters) replaced ~40 bytes of ids in each key.
    static func attemptID(dag: String?, run: String, task: String, attempt: Int?) -> [UInt8] {
        let id = KeyBuilder().string(dag ?? "").string(run).string(task).u64(UInt64(max(attempt ?? 0, 0))).bytes
        return Array(SHA256.hash(data: id).prefix(attemptIDBytes))
    }
    static let attemptIDBytes = 16

    func apply(_ fact: Fact, _ h: EventHeader, _ txn: ViewTxn) throws {
        let previous = try history.begin(h.seq, txn)
        try snapshotIfDue(previous, txn)
        switch fact {
        case .dagRegistered(let d):
            for spec in d.definition?.datasets ?? [] {
                let key = Self.summaryKey(spec.name)
                if try summaries.get(key, txn, txn.store.table("datasets")) == nil {
                    var s = DatasetSummary(name: spec.name, partitioning: Self.partitioning(spec.partitioning))
                    s.lastSeq = h.seq
                    summaries.set(key, s)
                    history.write(spec.name, .created(partitioning: s.partitioning))
                }
            }
        case .chunk(let c):
            try change(c, h, txn)
            touch(c.dataset)
        case .described(let d):
            guard let fields = d.fields else { return }
            var s = try summary(d.dataset, txn)
            s.fields = fields
            s.lastSeq = h.seq
            summaries.set(Self.summaryKey(d.dataset), s)
            history.write(d.dataset, try .described(fields))
        case .lease(let l, let acquired):
            var (summary, ordinal) = try locate(l.dataset, l.chunk, txn)
            summary.lastSeq = h.seq
            var rec = try chunk(l.dataset, ordinal, txn) ?? newChunk(l.chunk, ordinal, h, &summary, txn)
            if acquired {
                if !rec.leases.contains(l.lease) { rec.leases.append(l.lease) }
                rec.leases.sort()
            } else {
                rec.leases.removeAll { $0 == l.lease }
            }
            chunks.set(Self.chunkKey(l.dataset, ordinal), rec)
            summaries.set(Self.summaryKey(l.dataset), summary)
            touch(l.dataset)
        default:
            break
        }
    }

    // MARK: history (--as-of)

    /// Records that the event moved `ds`'s `lastSeq` when it wrote no other operation for it.
    private func touch(_ ds: String) {
        if !history.touched(ds) { history.write(ds, .touch) }
    }

    /// Snapshots each dataset the event at `done.seq` touched whose operations since its last snapshot
    /// reached the due count, with the state it has now (after that event, before any later one).
    private func snapshotIfDue(_ done: (seq: UInt64, datasets: [String]), _ txn: ViewTxn) throws {
        for ds in done.datasets where try history.due(ds, txn) {
            let s = try summary(ds, txn)
            var current: [UInt8: RangeSet] = [:]
            for byte in ChunkHistory.setBytes {
                current[byte] = try sets[ByteKey(Self.setPrefix(ds, byte))]?.current ?? loadSet(ds, byte, txn)
            }
            let state = ChunkHistory.State(partitioning: s.partitioning, fields: s.fields, lastSeq: s.lastSeq, sets: current)
            try history.snapshot(ds, state, at: done.seq, txn)
        }
    }

    static func partitioning(_ p: DatasetSpec.Partitioning) -> String {
        switch p {
        case .time(let seconds): return "time:\(seconds)"
        case .sequence: return "sequence"
        case .key: return "key"
        }
    }

    /// The ordinal a key has in its dataset's order, or nil for keys outside it.
    static func naturalOrdinal(_ key: String, _ partitioning: String) -> UInt64? {
        if partitioning == "sequence" {
            guard let n = UInt64(key), n < keyOrdinalBase else { return nil }
            return n
        }
        if partitioning.hasPrefix("time:"), let seconds = Int64(partitioning.dropFirst(5)), seconds > 0,
            let micros = PartitionKey.parse(key), micros >= 0, micros % (seconds * 1_000_000) == 0
        {
            return UInt64(micros / (seconds * 1_000_000))
        }
        return nil
    }

    /// The key of a natural ordinal (for listing missing chunks).
    static func naturalKey(_ ordinal: UInt64, _ partitioning: String) -> String? {
        if partitioning == "sequence" { return String(ordinal) }
        if partitioning.hasPrefix("time:"), let seconds = Int64(partitioning.dropFirst(5)) {
            return PartitionKey.string(micros: Int64(ordinal) * seconds * 1_000_000)
        }
        return nil
    }

    /// The dataset's summary; a dataset seen for the first time (no declaration) is created with `key`
    /// partitioning.
    private func summary(_ ds: String, _ txn: ViewTxn) throws -> DatasetSummary {
        if let s = try summaries.get(Self.summaryKey(ds), txn, txn.store.table("datasets")) { return s }
        let s = DatasetSummary(name: ds, partitioning: "key")
        summaries.set(Self.summaryKey(ds), s)
        history.write(ds, .created(partitioning: s.partitioning))
        return s
    }

    /// The dataset's summary and the chunk's ordinal, assigning one (and counting the chunk) when new.
    ///
    /// A key in the partitioning's order takes its natural ordinal, and is found again by the chunk record
    /// there, so `ordinals` holds only the other keys: free-form ones, and a second spelling of a taken
    /// window or number (`2026-11-21T10:00Z` beside `2026-11-21T10:00:00Z`, `07` beside `7`), which is a
    /// chunk of its own with the next free-form ordinal.
    private func locate(_ ds: String, _ key: String, _ txn: ViewTxn) throws -> (DatasetSummary, UInt64) {
        var s = try summary(ds, txn)
        let k = Self.ordinalKey(ds, key)
        if let o = ordinals[ByteKey(k)] { return (s, o) }
        if let n = Self.naturalOrdinal(key, s.partitioning) {
            guard let taken = try chunk(ds, n, txn) else {
                s.firstOrdinal = min(s.firstOrdinal ?? n, n)
                s.lastOrdinal = max(s.lastOrdinal ?? n, n)
                s.ordered += 1
                return (try added(ds, k, n, &s, txn), n)
            }
            if taken.key == key {
                ordinals[ByteKey(k)] = n
                return (s, n)
            }
        }
        if let bytes = try txn.get(txn.store.table("ordinals"), k, table: "ordinals") {
            guard bytes.count == 8 else {
                throw ViewError(.corrupt, view: Self.name, "view chunks, table ordinals: the ordinal of \(ds)/\(key) has \(bytes.count) bytes, not 8")
            }
            let o = bytes.withUnsafeBytes { $0.bigEndianUInt64Value }
            ordinals[ByteKey(k)] = o
            return (s, o)
        }
        let o = s.nextKeyOrdinal
        s.nextKeyOrdinal += 1
        try txn.put(txn.store.table("ordinals"), k, KeyBuilder().u64(o).bytes)
        return (try added(ds, k, o, &s, txn), o)
    }

    /// Counts a new chunk of `ds` at `ordinal` (its ``ordinalKey(_:_:)`` `ordinalKey`) and adds it to the
    /// present set.
    private func added(_ ds: String, _ ordinalKey: [UInt8], _ ordinal: UInt64, _ s: inout DatasetSummary, _ txn: ViewTxn) throws -> DatasetSummary {
        s.chunks += 1
        ordinals[ByteKey(ordinalKey)] = ordinal
        try setMember(ds, Self.presentSet, ordinal, true, txn)
        summaries.set(Self.summaryKey(ds), s)
        return s
    }

    private func chunk(_ ds: String, _ ordinal: UInt64, _ txn: ViewTxn) throws -> ChunkRecord? {
        try chunks.get(Self.chunkKey(ds, ordinal), txn, txn.store.table("chunks"))
    }

    private func newChunk(_ key: String, _ ordinal: UInt64, _ h: EventHeader, _ s: inout DatasetSummary, _ txn: ViewTxn) throws -> ChunkRecord {
        try move(s.name, ordinal, from: nil, to: "pending", &s, txn)
        return ChunkRecord(key: key, ordinal: ordinal, status: "pending", since: h.seq, sinceMicros: h.timeMicros)
    }

    func loadSet(_ ds: String, _ set: UInt8, _ txn: ViewTxn) throws -> RangeSet {
        try Self.readSet(ds, set, txn.txn, txn.store)
    }

    static func readSet(_ ds: String, _ set: UInt8, _ txn: Transaction, _ store: ViewStore) throws -> RangeSet {
        var ranges: [ClosedRange<UInt64>] = []
        try scanSet(ds, set, txn, store) { r in
            ranges.append(r)
            return true
        }
        return RangeSet(ranges: ranges)
    }

    /// Calls `body` with each range of a set of `ds`, in order, until it returns false.
    static func scanSet(
        _ ds: String, _ set: UInt8, _ txn: Transaction, _ store: ViewStore, _ body: (ClosedRange<UInt64>) throws -> Bool
    ) throws {
        let prefix = setPrefix(ds, set)
        try ViewTxn.scan(txn, store.table("sets"), prefix: prefix, view: store.name, table: "sets") { k, v in
            let lo = UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value
            let hi = v.bigEndianUInt64Value
            return hi >= lo ? try body(lo...hi) : true
        }
    }

    /// Puts `ordinal` in (`insert`) or out of a set of `ds`, and writes the operation to the history.
    private func setMember(_ ds: String, _ set: UInt8, _ ordinal: UInt64, _ insert: Bool, _ txn: ViewTxn) throws {
        try update(ds, set, ordinal, insert, txn)
        history.write(ds, insert ? .insert(set: set, ordinal: ordinal) : .remove(set: set, ordinal: ordinal))
    }

    /// Puts `ordinal` in or out of a set of `ds` (its caller writes the history).
    private func update(_ ds: String, _ set: UInt8, _ ordinal: UInt64, _ insert: Bool, _ txn: ViewTxn) throws {
        let id = ByteKey(Self.setPrefix(ds, set))
        if sets[id] == nil {
            let loaded = try loadSet(ds, set, txn)
            sets[id] = SetEntry(original: loaded, current: loaded)
        }
        sets[id]!.update(ordinal, insert: insert)
    }

    private func move(_ ds: String, _ ordinal: UInt64, from: String?, to: String, _ s: inout DatasetSummary, _ txn: ViewTxn) throws {
        let toSet = Self.setByte(to)
        if let from {
            let fromSet = Self.setByte(from)
            try update(ds, fromSet, ordinal, false, txn)
            try update(ds, toSet, ordinal, true, txn)
            history.write(ds, .move(from: fromSet, to: toSet, ordinal: ordinal))
            let n = (s.counts[from] ?? 1) - 1
            s.counts[from] = n == 0 ? nil : n
        } else {
            try setMember(ds, toSet, ordinal, true, txn)
        }
        s.counts[to, default: 0] += 1
    }

    private func change(_ c: ChunkChange, _ h: EventHeader, _ txn: ViewTxn) throws {
        var (s, ordinal) = try locate(c.dataset, c.chunk, txn)
        s.lastSeq = h.seq
        let to = c.to.rawValue
        var rec: ChunkRecord
        if let existing = try chunk(c.dataset, ordinal, txn) {
            rec = existing
            let old = ChunkStatus(rawValue: rec.status) ?? .pending
            if old.isAnomalous(c.to) {
                var a = rec.anomalies ?? []
                if a.count < 16 { a.append("seq \(h.seq): \(old.rawValue) -> \(to)") }
                rec.anomalies = a
            }
            if rec.status != to { try move(c.dataset, ordinal, from: rec.status, to: to, &s, txn) }
        } else {
            rec = ChunkRecord(key: c.chunk, ordinal: ordinal, status: to, since: h.seq, sinceMicros: h.timeMicros)
            try move(c.dataset, ordinal, from: nil, to: to, &s, txn)
        }
        rec.status = to
        rec.since = h.seq
        rec.sinceMicros = h.timeMicros
        if c.run != nil {
            rec.dag = c.dag
            rec.run = c.run
            rec.task = c.task
            rec.attempt = c.attempt
        }
        if c.to == .producing || c.location != nil || c.validated != nil {
            rec.partition = c.partition
            rec.location = c.location
            rec.digest = c.digest
            rec.bytes = c.bytes
            rec.validated = c.validated
        }
        var reproduced = false
        if c.to == .ready, c.from == .producing {
            reproduced = rec.producedSeq != nil
            rec.producedSeq = h.seq
            if rec.staleBecause != nil {
                rec.staleBecause = nil
                try setMember(c.dataset, Self.staleSet, ordinal, false, txn)
                s.stale -= 1
            }
            if let run = c.run, let task = c.task {
                let out = Self.attemptID(dag: c.dag, run: run, task: task, attempt: c.attempt) + Self.chunkKey(c.dataset, ordinal)
                try GroupedTable.insert(out, [], into: "outputs", txn)
            }
        }
        if c.to == .consuming, let run = c.run, let task = c.task {
            let k = Self.chunkKey(c.dataset, ordinal) + Self.attemptID(dag: c.dag, run: run, task: task, attempt: c.attempt)
            try GroupedTable.insert(k, [], into: "consumers", txn)
        }
        chunks.set(Self.chunkKey(c.dataset, ordinal), rec)
        summaries.set(Self.summaryKey(c.dataset), s)
        if reproduced { try markDownstreamStale(c.dataset, ordinal, key: c.chunk, h, txn) }
    }

    /// A chunk was produced again: every readable chunk derived from it (through the attempts that read
    /// it, transitively) and produced before now is stale.
    private func markDownstreamStale(_ ds: String, _ ordinal: UInt64, key: String, _ h: EventHeader, _ txn: ViewTxn) throws {
        let because = "\(ds)/\(key) was produced again at seq \(h.seq)"
        var work: [(String, UInt64)] = [(ds, ordinal)]
        var seen: Set<ByteKey> = [ByteKey(Self.chunkKey(ds, ordinal))]
        while let (d, o) = work.popLast() {
            var attempts: [[UInt8]] = []
            let prefix = Self.chunkKey(d, o)
            try GroupedTable.scan(txn.txn, txn.store.table("consumers"), prefix: prefix, view: Self.name, table: "consumers") { k, _ in
                attempts.append(Array(k[prefix.count...]))
                return true
            }
            for a in attempts {
                var outputs: [(String, UInt64)] = []
                try GroupedTable.scan(txn.txn, txn.store.table("outputs"), prefix: a, view: Self.name, table: "outputs") { k, _ in
                    var r = KeyReader(UnsafeRawBufferPointer(rebasing: k[a.count...]))
                    outputs.append((r.string(), r.u64()))
                    return true
                }
                for (d2, o2) in outputs where seen.insert(ByteKey(Self.chunkKey(d2, o2))).inserted {
                    guard var rec = try chunk(d2, o2, txn), let status = ChunkStatus(rawValue: rec.status), status.isReadable,
                        (rec.producedSeq ?? 0) < h.seq
                    else { continue }
                    if rec.staleBecause == nil {
                        var s = try summary(d2, txn)
                        s.stale += 1
                        s.lastSeq = h.seq
                        try setMember(d2, Self.staleSet, o2, true, txn)
                        summaries.set(Self.summaryKey(d2), s)
                    }
                    rec.staleBecause = because
                    chunks.set(Self.chunkKey(d2, o2), rec)
                    work.append((d2, o2))
                }
            }
        }
    }

    func flush(_ txn: ViewTxn) throws {
        try snapshotIfDue(try history.end(txn), txn)
        try history.flush(txn)
        let s = txn.store
        try summaries.flush(txn, s.table("datasets"))
        try chunks.flush(txn, s.table("chunks"))
        let db = s.table("sets")
        for id in sets.keys.filter({ sets[$0]!.changed }).sorted() {
            let e = sets[id]!
            sets[id] = SetEntry(original: e.current, current: e.current)
            if e.original == e.current { continue }
            let prefix = id.bytes
            // Both sorted, so what changed is found by walking them together (no set of every range).
            let old = e.original.ranges
            let new = e.current.ranges
            for r in Self.missing(old, from: new) {
                try txn.delete(db, prefix + KeyBuilder().u64(r.lowerBound).bytes)
            }
            for r in Self.missing(new, from: old) {
                try txn.put(db, prefix + KeyBuilder().u64(r.lowerBound).bytes, KeyBuilder().u64(r.upperBound).bytes)
            }
        }
        if sets.values.reduce(0, { $0 + $1.current.rangeCount }) > Self.setCacheRanges { sets.removeAll(keepingCapacity: true) }
        ordinals.removeAll(keepingCapacity: true)
    }

    /// The ranges of `a` that `b` does not hold as they are; both sorted, as a ``RangeSet`` keeps them
    /// (so no two share a lower bound).
    static func missing(_ a: [ClosedRange<UInt64>], from b: [ClosedRange<UInt64>]) -> [ClosedRange<UInt64>] {
        var out: [ClosedRange<UInt64>] = []
        var j = 0
        for r in a {
            while j < b.count, b[j].lowerBound < r.lowerBound { j += 1 }
            if j == b.count || b[j] != r { out.append(r) }
        }
        return out
    }

    func reset() {
        history.reset()
        summaries.reset()
        chunks.reset()
        sets.removeAll()
        ordinals.removeAll()
    }
}
