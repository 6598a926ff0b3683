import ClewLedger
import ClewModel
import Foundation

/// The chunk view's memory of the past, so `--as-of` questions about a dataset's status are answered
/// from the view instead of a refold of the log.
///
/// Every change the chunk projection makes to a dataset's summary or sets is also written as an
/// operation: a chunk ordinal entering or leaving a set (kind, set), moving from one set to another
/// (kind, from, to: a status change, one operation instead of two), the dataset's creation (with its
/// partitioning), new column descriptions, or a plain touch (the summary's `lastSeq` moved and nothing
/// else did). A set operation's ordinal is stored as the zigzag varint of its difference from the
/// previous ordinal of the same entry (from 0 at the entry's start): a dataset's changes mostly follow
/// its chunks in order, so that is one byte where the ordinal was three or more. The operations of up
/// to ``ChunkHistoryWriter/groupEvents`` consecutive events of one dataset are one entry of table
/// `changes`, keyed by the dataset and the first event's seq: for each event, its seq (as the
/// difference from the one before; 0 for the first), the length of its operations and the operations.
/// A snapshot closes the dataset's entry, so the entries after a snapshot hold only events after it.
/// (An entry per event cost ~39 bytes of key and LMDB overhead per event, as much as the operations
/// themselves.) After every
/// ``ChunkHistory/minimumSnapshotOps`` operations of a dataset (twice as many as its sets hold ranges,
/// when more), the dataset's whole state is written as a snapshot (table `snapshots`). The state at seq S
/// is the last snapshot at or before S with the operations after it, up to S, applied: a snapshot's
/// ranges and at most twice as many operations (or a few thousand), whatever the log's length.
///
/// The layout depends only on the events folded (never on batch sizes), so a view folded in many small
/// catch-ups and one rebuilt at once stay equal byte for byte.
enum ChunkHistory {
    /// Operations of one dataset between snapshots (at least; more when its sets are bigger).
    static let minimumSnapshotOps = 4_096

    /// Operations due before the next snapshot of a dataset whose last one held `ranges` ranges: the
    /// minimum, or twice the ranges when more. A snapshot then costs at most ~1.5 bytes per operation
    /// (a range is 2-3 bytes), and an as-of query applies at most twice a snapshot's ranges in
    /// operations after it. (Once as many operations as ranges, views format 10: on the 30M-event
    /// corpus, snapshots of ~3,700 ranges every ~4,000 operations were 77.6 MB, 2.4% of the views.)
    static func snapshotDue(minimumOps: Int, ranges: Int) -> Int { max(minimumOps, 2 * ranges) }

    enum Op: UInt8 {
        case insert = 1, remove = 2, touch = 3, created = 4, described = 5, move = 6
    }

    /// One operation as the projection makes it (``ChunkHistoryWriter`` encodes it into its entry, where
    /// the ordinal's encoding depends on the operations before it).
    enum Change: Equatable {
        case insert(set: UInt8, ordinal: UInt64)
        case remove(set: UInt8, ordinal: UInt64)
        case move(from: UInt8, to: UInt8, ordinal: UInt64)
        case touch
        case created(partitioning: String)
        case described([UInt8])

        static func described(_ fields: [DatasetDescription.Field]?) throws -> Change { .described(try fieldsJSON(fields)) }

        /// Appends the operation; `previous` is the entry's last ordinal, updated by set operations.
        func encode(into out: inout [UInt8], previous: inout UInt64) {
            func ordinal(_ o: UInt64) {
                ProtoWire.appendVarint(ProtoWire.zigzag(Int64(bitPattern: o &- previous)), to: &out)
                previous = o
            }
            func bytes(_ op: Op, _ b: [UInt8]) {
                out.append(op.rawValue)
                ProtoWire.appendVarint(UInt64(b.count), to: &out)
                out.append(contentsOf: b)
            }
            switch self {
            case .insert(let set, let o):
                out.append(Op.insert.rawValue)
                out.append(set)
                ordinal(o)
            case .remove(let set, let o):
                out.append(Op.remove.rawValue)
                out.append(set)
                ordinal(o)
            case .move(let from, let to, let o):
                out.append(Op.move.rawValue)
                out.append(from)
                out.append(to)
                ordinal(o)
            case .touch: out.append(Op.touch.rawValue)
            case .created(let partitioning): bytes(.created, Array(partitioning.utf8))
            case .described(let json): bytes(.described, json)
            }
        }
    }

    /// The key of an entry of `changes` or `snapshots`: the dataset, then the seq.
    static func key(_ ds: String, seq: UInt64) -> [UInt8] { KeyBuilder().string(ds).u64(seq).bytes }
    static func prefix(_ ds: String) -> [UInt8] { KeyBuilder().string(ds).bytes }

    /// Column descriptions as sorted-key JSON, empty for none.
    static func fieldsJSON(_ fields: [DatasetDescription.Field]?) throws -> [UInt8] {
        guard let fields else { return [] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array(try encoder.encode(fields))
    }

    static func decodeFields(_ bytes: UnsafeRawBufferPointer, table: String, view: String) throws -> [DatasetDescription.Field]? {
        guard !bytes.isEmpty else { return nil }
        do {
            return try JSONDecoder().decode([DatasetDescription.Field].self, from: Data(bytes))
        } catch {
            throw ViewError(.corrupt, view: view, "view \(view), table \(table): a dataset's columns do not decode (\(error))")
        }
    }

    /// The events of one entry of `changes` whose key holds seq `first`, in order: each seq and its
    /// operations, until `body` returns false.
    static func events(
        _ entry: UnsafeRawBufferPointer, first: UInt64, view: String, _ body: (UInt64, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var r = ProtoReader(entry)
        var seq = first
        var n = 0
        do {
            while !r.isAtEnd {
                let delta = try r.varint()
                guard (n == 0) == (delta == 0) else {
                    throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(first) has events out of order")
                }
                let (next, overflow) = seq.addingReportingOverflow(delta)
                guard !overflow else { throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(first) runs past 2^64") }
                seq = next
                n += 1
                guard try body(seq, try r.lengthDelimited()) else { return }
            }
        } catch let e as ProtoReader.Malformed {
            throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(first) does not decode (\(e))")
        }
        if n == 0 { throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(first) is empty") }
    }

    /// One decoded operation: for `insert` and `remove` the set is `set`; for `move`, from `set` to `to`;
    /// `bytes` are a creation's partitioning or a description's JSON.
    struct Decoded {
        var op: Op
        var set: UInt8 = 0
        var to: UInt8 = 0
        var ordinal: UInt64 = 0
        var bytes = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// The operations of one event, in order. `previous` is the entry's last ordinal before the event
    /// (0 for its first event), updated as set operations are read.
    static func ops(
        _ entry: UnsafeRawBufferPointer, seq: UInt64, previous: inout UInt64, view: String, _ body: (Decoded) throws -> Void
    ) throws {
        if entry.isEmpty { throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(seq) is empty") }
        var r = ProtoReader(entry)
        func byte() throws -> UInt8 {
            guard !r.isAtEnd else {
                throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(seq) is cut short")
            }
            defer { r.offset += 1 }
            return entry[r.offset]
        }
        do {
            while !r.isAtEnd {
                let kind = try byte()
                guard let op = Op(rawValue: kind) else {
                    throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(seq) has an operation of unknown kind \(kind)")
                }
                var d = Decoded(op: op)
                switch op {
                case .insert, .remove, .move:
                    d.set = try byte()
                    if op == .move { d.to = try byte() }
                    previous &+= UInt64(bitPattern: ProtoWire.unzigzag(try r.varint()))
                    d.ordinal = previous
                case .touch:
                    break
                case .created, .described:
                    d.bytes = try r.lengthDelimited()
                }
                try body(d)
            }
        } catch let e as ProtoReader.Malformed {
            throw ViewError(.corrupt, view: view, "view \(view), table changes: the entry at seq \(seq) does not decode (\(e))")
        }
    }

    /// Every set a dataset can have: one per chunk status, then `stale` and `present`.
    static var setBytes: [UInt8] {
        (0..<UInt8(ChunkStatus.allCases.count)).map { $0 } + [ChunksProjection.staleSet, ChunksProjection.presentSet]
    }

    /// A dataset as the chunk view knew it at one seq: enough to rebuild its ``DatasetSummary`` and sets.
    struct State: Equatable {
        var partitioning: String
        var fields: [DatasetDescription.Field]?
        var lastSeq: UInt64
        var sets: [UInt8: RangeSet] = [:]

        var rangeCount: Int { sets.values.reduce(0) { $0 + $1.rangeCount } }

        func set(_ byte: UInt8) -> RangeSet { sets[byte] ?? RangeSet() }

        /// The summary the chunk projection keeps, derived: counts are the sizes of the status sets,
        /// the ordered bounds those of the present chunks with natural ordinals.
        func summary(_ name: String) -> DatasetSummary {
            var s = DatasetSummary(name: name, partitioning: partitioning)
            s.fields = fields
            s.lastSeq = lastSeq
            for (i, status) in ChunkStatus.allCases.enumerated() {
                let n = set(UInt8(i)).count
                if n > 0 { s.counts[status.rawValue] = n }
            }
            s.stale = set(ChunksProjection.staleSet).count
            let present = set(ChunksProjection.presentSet)
            s.chunks = present.count
            let base = ChunksProjection.keyOrdinalBase
            var natural: UInt64 = 0
            present.forEachRange { r in
                guard r.lowerBound < base else { return false }  // sorted: none after it is either
                let hi = min(r.upperBound, base - 1)
                if s.firstOrdinal == nil { s.firstOrdinal = r.lowerBound }
                s.lastOrdinal = hi
                natural += hi - r.lowerBound + 1
                return true
            }
            s.ordered = natural
            s.nextKeyOrdinal = base + (s.chunks - natural)
            return s
        }

        /// Applies one event's operations (the event at `seq`; `previous` as ``ChunkHistory/ops(_:seq:previous:view:_:)`` takes it).
        mutating func apply(_ entry: UnsafeRawBufferPointer, seq: UInt64, previous: inout UInt64, view: String) throws {
            lastSeq = seq
            try ChunkHistory.ops(entry, seq: seq, previous: &previous, view: view) { d in
                switch d.op {
                case .insert: sets[d.set, default: RangeSet()].insert(d.ordinal)
                case .remove: sets[d.set]?.remove(d.ordinal)
                case .move:
                    sets[d.set]?.remove(d.ordinal)
                    sets[d.to, default: RangeSet()].insert(d.ordinal)
                case .touch: break
                case .created: partitioning = String(decoding: d.bytes, as: UTF8.self)
                case .described: fields = try ChunkHistory.decodeFields(d.bytes, table: "changes", view: view)
                }
            }
        }

        /// Binary snapshot: partitioning and fields (JSON, empty for none), each length-prefixed, lastSeq,
        /// then each non-empty set as its byte, range count, and each range as the gap before it and its
        /// length - 1 (numbers as protobuf varints). The gap is the first ordinal's distance from the
        /// ordinal after the range before (from 0 for a set's first range): ranges a few ordinals apart
        /// take a byte each where ordinals in the millions took three or four (views format 11).
        func encoded() throws -> [UInt8] {
            var out: [UInt8] = []
            for bytes in [Array(partitioning.utf8), try ChunkHistory.fieldsJSON(fields)] {
                ProtoWire.appendVarint(UInt64(bytes.count), to: &out)
                out.append(contentsOf: bytes)
            }
            ProtoWire.appendVarint(lastSeq, to: &out)
            for (byte, set) in sets.sorted(by: { $0.key < $1.key }) where !set.isEmpty {
                out.append(byte)
                ProtoWire.appendVarint(UInt64(set.rangeCount), to: &out)
                var next: UInt64 = 0  // the first ordinal the next range may start at
                set.forEachRange { r in
                    ProtoWire.appendVarint(r.lowerBound - next, to: &out)
                    ProtoWire.appendVarint(r.upperBound - r.lowerBound, to: &out)
                    next = r.upperBound &+ 1
                    return true
                }
            }
            return out
        }

        init(partitioning: String, fields: [DatasetDescription.Field]?, lastSeq: UInt64, sets: [UInt8: RangeSet]) {
            self.partitioning = partitioning
            self.fields = fields
            self.lastSeq = lastSeq
            self.sets = sets.filter { !$0.value.isEmpty }
        }

        init(decoding raw: UnsafeRawBufferPointer, view: String) throws {
            var r = ProtoReader(raw)
            do {
                partitioning = String(decoding: try r.lengthDelimited(), as: UTF8.self)
                fields = try ChunkHistory.decodeFields(try r.lengthDelimited(), table: "snapshots", view: view)
                lastSeq = try r.varint()
                while !r.isAtEnd {
                    let byte = raw[r.offset]
                    r.offset += 1
                    let n = try r.varint()
                    guard n <= UInt64(raw.count - r.offset) / 2 else {
                        throw ViewError(.corrupt, view: view, "view \(view), table snapshots: a set claims \(n) ranges")
                    }
                    var ranges: [ClosedRange<UInt64>] = []
                    ranges.reserveCapacity(Int(n))
                    var next: UInt64 = 0
                    for i in 0..<n {
                        let (lo, o1) = next.addingReportingOverflow(try r.varint())
                        let (hi, o2) = lo.addingReportingOverflow(try r.varint())
                        // `next` is 0 after the first range only when the range before ended at 2^64 - 1.
                        guard !o1, !o2, i == 0 || next != 0 else {
                            throw ViewError(.corrupt, view: view, "view \(view), table snapshots: a range runs past 2^64")
                        }
                        ranges.append(lo...hi)
                        next = hi &+ 1
                    }
                    sets[byte] = RangeSet(ranges: ranges)
                }
            } catch let e as ProtoReader.Malformed {
                throw ViewError(.corrupt, view: view, "view \(view), table snapshots: a snapshot does not decode (\(e))")
            }
        }
    }

    /// The dataset `ds` as of `seq`, or nil when it did not exist yet: its last snapshot at or before
    /// `seq`, then the events of the entries after that snapshot up to `seq`.
    static func state(_ ds: String, asOf seq: UInt64, _ txn: Transaction, _ store: ViewStore) throws -> State? {
        let prefix = prefix(ds)
        var state: State?
        var from: UInt64 = 0
        try lastEntry(txn, store.table("snapshots"), prefix: prefix, atMost: seq, view: store.name, table: "snapshots") { k, v in
            from = UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value
            state = try State(decoding: v, view: store.name)
        }
        let start = KeyBuilder().string(ds).u64(from &+ 1).bytes
        try ViewTxn.scan(txn, store.table("changes"), prefix: prefix, from: start, view: store.name, table: "changes") { k, v in
            guard k.count == prefix.count + 8 else {
                throw ViewError(.corrupt, view: store.name, "view \(store.name), table changes: a key of \(ds) is \(k.count) bytes")
            }
            let first = UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value
            if first > seq { return false }
            var more = true
            var previous: UInt64 = 0
            try events(v, first: first, view: store.name) { at, ops in
                if at > seq {
                    more = false
                    return false
                }
                if state == nil {
                    // The first operation of a dataset is its creation.
                    guard ops.first == Op.created.rawValue else {
                        throw ViewError(.corrupt, view: store.name, "view \(store.name), table changes: \(ds) has operations before its creation")
                    }
                    state = State(partitioning: "", fields: nil, lastSeq: at, sets: [:])
                }
                try state!.apply(ops, seq: at, previous: &previous, view: store.name)
                return true
            }
            return more
        }
        return state
    }

    /// Calls `body` with the last entry whose key is `prefix` and 8 bytes (big-endian) of at most `atMost`.
    static func lastEntry(
        _ txn: Transaction, _ db: Database, prefix: [UInt8], atMost: UInt64, view: String, table: String,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let below = atMost == .max ? nil : prefix + KeyBuilder().u64(atMost + 1).bytes
        try ViewTxn.last(txn, db, prefix: prefix, below: below, view: view, table: table) { k, v in
            guard k.count == prefix.count + 8 else {
                throw ViewError(.corrupt, view: view, "view \(view), table \(table): a key is \(k.count) bytes")
            }
            try body(k, v)
        }
    }
}

/// What the chunk projection writes to ``ChunkHistory`` while it folds: each event's operations on each
/// dataset, once the event is done, added to the dataset's open entry (written at the end of each batch,
/// and when it is full or a snapshot closes it), and a snapshot of a dataset once enough operations
/// followed its last one.
struct ChunkHistoryWriter {
    /// Events of one dataset per entry of `changes`, at most.
    static let groupEvents = 32

    /// An entry of `changes` still taking events: its key's seq, its last event's seq, its events, the
    /// last ordinal its operations named.
    private struct Group {
        var first: UInt64
        var last: UInt64
        var events: Int
        var bytes: [UInt8]
        var ordinal: UInt64 = 0
    }

    /// Operations between snapshots, at least (``ChunkHistory/minimumSnapshotOps`` but in tests).
    let minimumOps: Int
    /// Operations written per dataset since its last snapshot, and how many are due before the next
    /// (loaded from the view the first time a dataset is seen in a fold).
    private var since: [String: (ops: Int, due: Int)] = [:]
    /// The seq being applied and its operations so far, per dataset.
    private var seq: UInt64 = 0
    private var pending: [String: [ChunkHistory.Change]] = [:]
    /// Each dataset's open entry (loaded with `since`), and those changed since they were last written.
    private var open: [String: Group] = [:]
    private var unwritten: Set<String> = []

    init(minimumOps: Int) { self.minimumOps = minimumOps }

    mutating func reset() {
        since.removeAll()
        pending.removeAll()
        open.removeAll()
        unwritten.removeAll()
        seq = 0
    }

    /// Starts event `seq`: writes the previous event's entries and returns its seq and the datasets it
    /// touched (to check them for a snapshot, now that the event is done).
    mutating func begin(_ seq: UInt64, _ txn: ViewTxn) throws -> (seq: UInt64, datasets: [String]) {
        guard seq != self.seq else { return (seq, []) }
        let done = try end(txn)
        self.seq = seq
        return done
    }

    /// Writes the current event's entries (at the end of a batch); returns its seq and datasets.
    mutating func end(_ txn: ViewTxn) throws -> (seq: UInt64, datasets: [String]) {
        let datasets = pending.keys.sorted()
        for ds in datasets {
            let entry = pending[ds]!
            try load(ds, txn)  // before the event is added: it counts the operations already written
            try add(ds, entry, txn)
            since[ds]!.ops += entry.count
        }
        pending.removeAll(keepingCapacity: true)
        defer { seq = 0 }
        return (seq, datasets)
    }

    /// Adds the current event's operations on `ds` to its open entry (a new one when it has none);
    /// an entry that reaches ``groupEvents`` events is written and closed.
    private mutating func add(_ ds: String, _ changes: [ChunkHistory.Change], _ txn: ViewTxn) throws {
        var g = open[ds] ?? Group(first: seq, last: seq, events: 0, bytes: [])
        var ops: [UInt8] = []
        for c in changes { c.encode(into: &ops, previous: &g.ordinal) }
        ProtoWire.appendVarint(seq - g.last, to: &g.bytes)
        ProtoWire.appendVarint(UInt64(ops.count), to: &g.bytes)
        g.bytes.append(contentsOf: ops)
        g.last = seq
        g.events += 1
        open[ds] = g
        unwritten.insert(ds)
        if g.events == Self.groupEvents { try close(ds, txn) }
    }

    /// Writes the open entry of `ds` (if it changed) and closes it: the next event starts a new one.
    private mutating func close(_ ds: String, _ txn: ViewTxn) throws {
        try write(ds, txn)
        open[ds] = nil
    }

    private mutating func write(_ ds: String, _ txn: ViewTxn) throws {
        guard unwritten.remove(ds) != nil, let g = open[ds] else { return }
        try txn.put(txn.store.table("changes"), ChunkHistory.key(ds, seq: g.first), g.bytes)
    }

    /// Writes every open entry that changed (at the end of a batch, after its snapshots); they stay open.
    mutating func flush(_ txn: ViewTxn) throws {
        for ds in unwritten.sorted() { try write(ds, txn) }
    }

    /// Whether the current event already has an operation for `ds`.
    func touched(_ ds: String) -> Bool { pending[ds] != nil }

    /// Adds an operation to the current event's entry for `ds`.
    mutating func write(_ ds: String, _ change: ChunkHistory.Change) {
        pending[ds, default: []].append(change)
    }

    /// Whether `ds` is due a snapshot.
    mutating func due(_ ds: String, _ txn: ViewTxn) throws -> Bool {
        try load(ds, txn)
        let s = since[ds]!
        return s.ops >= s.due
    }

    /// Writes `state` as the snapshot of `ds` at `seq`.
    mutating func snapshot(_ ds: String, _ state: ChunkHistory.State, at seq: UInt64, _ txn: ViewTxn) throws {
        try txn.put(txn.store.table("snapshots"), ChunkHistory.key(ds, seq: seq), try state.encoded())
        since[ds] = (0, ChunkHistory.snapshotDue(minimumOps: minimumOps, ranges: state.rangeCount))
        // The entries after a snapshot hold only events after it.
        try close(ds, txn)
    }

    private mutating func load(_ ds: String, _ txn: ViewTxn) throws {
        guard since[ds] == nil else { return }
        let store = txn.store
        let prefix = ChunkHistory.prefix(ds)
        var last: UInt64 = 0
        var due = minimumOps
        try ChunkHistory.lastEntry(txn.txn, store.table("snapshots"), prefix: prefix, atMost: .max, view: store.name, table: "snapshots") { k, v in
            last = UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value
            due = ChunkHistory.snapshotDue(minimumOps: minimumOps, ranges: try ChunkHistory.State(decoding: v, view: store.name).rangeCount)
        }
        var ops = 0
        var latest: Group?
        try txn.scan(store.table("changes"), prefix: prefix, from: KeyBuilder().string(ds).u64(last &+ 1).bytes, table: "changes") { k, v in
            guard k.count == prefix.count + 8 else {
                throw ViewError(.corrupt, view: store.name, "view \(store.name), table changes: a key of \(ds) is \(k.count) bytes")
            }
            let first = UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value
            var g = Group(first: first, last: first, events: 0, bytes: Array(v))
            try ChunkHistory.events(v, first: first, view: store.name) { at, entry in
                g.last = at
                g.events += 1
                try ChunkHistory.ops(entry, seq: at, previous: &g.ordinal, view: store.name) { _ in ops += 1 }
                return true
            }
            latest = g
            return true
        }
        since[ds] = (ops, due)
        // The last entry takes more events unless it is full (one a snapshot closed is before `last`).
        if let latest, latest.events < Self.groupEvents { open[ds] = latest }
    }
}
