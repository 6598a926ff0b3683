import ClewCore
import ClewLedger
import ClewModel
import Crypto
import Foundation

/// Lineage node ids: `dataset:<name>`, `task:<dag>/<task>`, `chunk:<dataset>/<key>`,
/// `attempt:<dag>/<run>/<task>/<n>`, `value:<sha256>`, `run:<dag>/<run>`, `field:<dataset>#<column>`.
public enum LineageNode {
    public static func dataset(_ name: String) -> String { "dataset:\(name)" }
    public static func task(dag: String, task: String) -> String { "task:\(dag)/\(task)" }
    public static func chunk(dataset: String, key: String) -> String { "chunk:\(dataset)/\(key)" }
    public static func attempt(dag: String, run: String, task: String, attempt: Int) -> String {
        "attempt:\(dag)/\(run)/\(task)/\(attempt)"
    }
    public static func value(_ digest: String) -> String { "value:\(digest)" }
    public static func run(dag: String, run: String) -> String { "run:\(dag)/\(run)" }
    /// A column of a dataset: `field:<dataset>#<column>`.
    public static func field(dataset: String, field: String) -> String { "field:\(dataset)#\(field)" }
    /// An operator's task action (clear, mark success, mark failed): `action:<dag>/<run>/<seq>`.
    public static func action(dag: String, run: String, seq: UInt64) -> String { "action:\(dag)/\(run)/\(seq)" }
}

/// What an edge says, from its source to its target.
public enum EdgeKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The target (a task or attempt) read the source (a dataset, chunk or value).
    case used = 1
    /// The source (a task or attempt) wrote the target.
    case generated = 2
    /// The source is a part or an instance of the target (chunk of a dataset, attempt of a task and run).
    case partOf = 3
    /// The source (an attempt) triggered the target (a run).
    case triggered = 4
    /// The target (a column) is derived from the source (a column of an input).
    case derived = 5
    /// The source (an operator's task action) set the state of the target (a task, in a run).
    case actedOn = 6

    public var description: String {
        switch self {
        case .used: return "used"
        case .generated: return "generated"
        case .partOf: return "part_of"
        case .triggered: return "triggered"
        case .derived: return "derived"
        case .actedOn: return "acted_on"
        }
    }

    /// Whether the edge carries data (the direction a value flows), rather than membership.
    public var isDataFlow: Bool { self == .used || self == .generated || self == .derived }
}

/// One edge of the lineage graph, with the seq of the event that first showed it.
public struct LineageEdge: Sendable, Hashable, Codable {
    public var from: String
    public var to: String
    public var kind: String
    public var firstSeq: UInt64
}

/// The lineage graph, cumulative over every run: dataset → task → dataset (from DAG definitions),
/// chunk → attempt → chunk and value → attempt → value (from what runs read and wrote), with membership
/// (chunk → dataset, attempt → task and run) and triggers (attempt → run).
///
/// Node ids are interned: each node gets an 8-byte number the first time an edge names it, its kind
/// (the part of its id before `:`, ``NodeKind``) in the top byte and a counter below, so an edge holds
/// numbers instead of two ids of 40-90 bytes, and a node's neighbours sort by kind (a dataset's tasks
/// are one range however many chunks it has). Numbers follow the order nodes first appear in the log,
/// so a fresh fold gives the same bytes, and the edges of new nodes are added at the end of `fwd` and
/// `bwd`.
///
/// Each id is stored once, in `names`. It is found from its *home* (``NodeName``): its kind and the first
/// 7 bytes of its SHA-256 (of a value, of the digest it names, so values' homes sort by digest). `ids`
/// maps a home to the node's counter; when two ids' homes collide, the later one takes the next free
/// home after its own.
///
/// Tables, all ``GroupedTable``s: `fwd` (a node's edges to others, ``EdgeEntry``s keyed by the node's
/// number and the other's), `bwd` (the same for edges from others), `names` (number → the id without its
/// kind's prefix, a value's digest as its 32 bytes), `ids` (home → counter), and `run_dags` (run id, dag
/// → nothing: to name the DAG of chunk events that do not carry it). Edges are never removed, so the
/// graph as of seq N is the edges whose first seq is ≤ N.
final class LineageProjection: Projection {
    static let name = "lineage"
    static let tables = ["fwd", "bwd", "names", "ids", "run_dags"]
    /// The edges: a rebuild sorts them and writes them once (``BulkLoad``); nothing in the fold reads them.
    static let bulkTables = ["fwd", "bwd"]
    /// The homes of node ids: keyed by a hash, so a rebuild writes them many at once
    /// (``DeferredInserts``); the fold reads them to find a node's number.
    static let deferredTables = ["ids"]
    static let interest: Fact.Interest = [.run, .chunks, .dags]

    /// Numbers of nodes looked up or made in this batch and the ones before, up to ``cacheLimit``; then
    /// they become `olderNumbers` (the ones before those are dropped): most edges name a dataset, task,
    /// run or attempt named just before, and a node found here costs no search of `ids` and `names`.
    private var numbers: [String: UInt64] = [:]
    private var olderNumbers: [String: UInt64] = [:]
    static let cacheLimit = 1 << 16
    /// The counter the next new node takes (nil: read from the `names` table's entry count).
    private var nextCounter: UInt64?

    func apply(_ fact: Fact, _ h: EventHeader, _ txn: ViewTxn) throws {
        switch fact {
        case .dagRegistered(let d):
            for t in d.definition?.tasks ?? [] {
                let task = LineageNode.task(dag: d.dag, task: t.id)
                for c in t.consumes { try edge(LineageNode.dataset(c.dataset), task, .used, h, txn) }
                for p in t.produces { try edge(task, LineageNode.dataset(p.dataset), .generated, h, txn) }
            }
        case .run(let key, let f):
            switch f {
            case .queued:
                try GroupedTable.insert(KeyBuilder().string(key.run).raw(key.dag).bytes, [], into: "run_dags", txn)
            case .task(let t) where h.type == EventType.taskStarted:
                let a = LineageNode.attempt(dag: key.dag, run: key.run, task: t.task, attempt: t.attempt ?? 1)
                try edge(a, LineageNode.task(dag: key.dag, task: t.task), .partOf, h, txn)
                try edge(a, LineageNode.run(dag: key.dag, run: key.run), .partOf, h, txn)
            case .value(let v) where h.type == EventType.valueProduced:
                let a = LineageNode.attempt(dag: key.dag, run: key.run, task: v.task, attempt: v.attempt ?? 1)
                try edge(a, LineageNode.value(v.digest), .generated, h, txn)
            case .consumed(let c):
                let a = LineageNode.attempt(dag: key.dag, run: key.run, task: c.task, attempt: c.attempt ?? 1)
                if let ds = c.dataset, let chunk = c.chunk {
                    try edge(LineageNode.chunk(dataset: ds, key: chunk), a, .used, h, txn)
                } else if let digest = c.digest {
                    try edge(LineageNode.value(digest), a, .used, h, txn)
                }
            case .task(let t) where [EventType.taskCleared, EventType.taskMarkedSuccess, EventType.taskMarkedFailed].contains(h.type):
                let action = LineageNode.action(dag: key.dag, run: key.run, seq: h.seq)
                try edge(action, LineageNode.run(dag: key.dag, run: key.run), .actedOn, h, txn)
                for task in Set([t.task] + (t.cleared ?? [])).sorted() {
                    try edge(action, LineageNode.task(dag: key.dag, task: task), .actedOn, h, txn)
                }
            case .triggered(let t):
                let a = LineageNode.attempt(dag: key.dag, run: key.run, task: t.task, attempt: t.attempt ?? 1)
                try edge(a, LineageNode.run(dag: t.childDAG, run: t.childRun), .triggered, h, txn)
            default:
                break
            }
        case .described(let d):
            for f in d.fields ?? [] {
                try edge(LineageNode.field(dataset: d.dataset, field: f.name), LineageNode.dataset(d.dataset), .partOf, h, txn)
            }
            for (column, sources) in (d.columnLineage ?? [:]).sorted(by: { $0.key < $1.key }) {
                let target = LineageNode.field(dataset: d.dataset, field: column)
                try edge(target, LineageNode.dataset(d.dataset), .partOf, h, txn)
                for source in sources {
                    let from = LineageNode.field(dataset: source.dataset, field: source.field)
                    try edge(from, LineageNode.dataset(source.dataset), .partOf, h, txn)
                    try edge(from, target, .derived, h, txn)
                }
            }
        case .chunk(let c):
            let chunk = LineageNode.chunk(dataset: c.dataset, key: c.chunk)
            try edge(chunk, LineageNode.dataset(c.dataset), .partOf, h, txn)
            guard let run = c.run, let task = c.task else { return }
            let dag = try c.dag ?? dagOf(run: run, txn)
            let a = LineageNode.attempt(dag: dag, run: run, task: task, attempt: c.attempt ?? 1)
            if c.to == .ready && c.from == .producing { try edge(a, chunk, .generated, h, txn) }
            if c.to == .consuming { try edge(chunk, a, .used, h, txn) }
        default:
            break
        }
    }

    /// The DAG of a run id, for chunk events written before they named it: the last DAG that queued a run
    /// of that id ("?" when none did).
    private func dagOf(run: String, _ txn: ViewTxn) throws -> String {
        var dag = "?"
        let prefix = KeyBuilder().string(run).bytes
        try GroupedTable.scan(txn.txn, txn.store.table("run_dags"), prefix: prefix, view: Self.name, table: "run_dags") { k, _ in
            dag = String(decoding: k[prefix.count...], as: UTF8.self)
            return true
        }
        return dag
    }

    private func edge(_ from: String, _ to: String, _ kind: EdgeKind, _ h: EventHeader, _ txn: ViewTxn) throws {
        let a = try number(of: from, txn)
        let b = try number(of: to, txn)
        // An edge keeps the seq that first wrote it: a repeated one writes nothing. (A bulk load takes
        // both, and keeps the first of each: the same edge, as `fwd` and `bwd` were first written together.)
        let value = EdgeEntry.value(kind, seq: h.seq)
        if try txn.add(EdgeEntry.key(a, b), value, grouped: "fwd") {
            try txn.add(EdgeEntry.key(b, a), value, grouped: "bwd")
        }
    }

    /// The number of node `id`, made (the next counter) when it has none yet.
    private func number(of id: String, _ txn: ViewTxn) throws -> UInt64 {
        if let n = numbers[id] ?? olderNumbers[id] { return n }
        let node = NodeName(id)
        let s = txn.store
        let n: UInt64
        switch try node.find(txn.txn, s, ids: { try txn.get($0, grouped: "ids") }) {
        case .found(let number):
            n = number
        case .free(let slot):
            let counter = try nextCounter ?? NodeName.count(txn.txn, s) + 1
            nextCounter = counter + 1
            n = node.kind.base | counter & NodeName.homeMask
            try GroupedTable.insert(KeyBuilder().u64(n).bytes, node.stored, into: "names", txn)
            try txn.add(KeyBuilder().u64(slot).bytes, KeyBuilder().varint(counter).bytes, grouped: "ids")
        }
        if numbers.count >= Self.cacheLimit {
            swap(&numbers, &olderNumbers)
            numbers.removeAll(keepingCapacity: true)
        }
        numbers[id] = n
        return n
    }

    // Nothing else is kept between events: a set of the edges already written (up to a million) made no
    // rebuild faster (68-70k events/s with it, 71-74k without, on two corpora of 300k and 442k events)
    // and held up to ~200 MiB in `clew serve`, growing with every run ingested.
    func flush(_ txn: ViewTxn) throws {
        // The counter is read again from the table by the next batch (another process may fold too).
        nextCounter = nil
    }

    func reset() {
        numbers.removeAll()
        olderNumbers.removeAll()
        nextCounter = nil
    }
}

/// The kind of a lineage node, from the part of its id before `:`; the top byte of its number, so a
/// node's neighbours of one kind are one key range.
enum NodeKind: UInt8, CaseIterable {
    case other = 0, dataset, task, chunk, attempt, value, run, field, action

    static let prefixes: [(String, NodeKind)] = [
        ("dataset:", .dataset), ("task:", .task), ("chunk:", .chunk), ("attempt:", .attempt), ("value:", .value), ("run:", .run),
        ("field:", .field), ("action:", .action),
    ]

    init(of id: String) {
        self = Self.prefixes.first { id.hasPrefix($0.0) }?.1 ?? .other
    }

    /// The kind whose ids are exactly those starting with `prefix` (`task:`), if there is one.
    init?(exactPrefix prefix: String) {
        guard let kind = Self.prefixes.first(where: { $0.0 == prefix })?.1 else { return nil }
        self = kind
    }

    /// What its ids start with (`task:`; "" for ``other``).
    var prefix: String { Self.prefixes.first { $0.1 == self }?.0 ?? "" }

    /// The lowest number of the kind.
    var base: UInt64 { UInt64(rawValue) << 56 }
}

/// A lineage node id as the `names` table stores it, and its home in `ids`.
struct NodeName: Equatable {
    static let homeMask: UInt64 = 1 << 56 - 1

    let kind: NodeKind
    /// The id without its kind's prefix; for a value, a 1 and the 32 bytes of its SHA-256 (64 lowercase
    /// hex digits), else a 0 and the text.
    let stored: [UInt8]
    /// Its kind and the first 7 bytes of its SHA-256 (of a value, of its digest): where `ids` has it,
    /// unless another node's home was the same.
    let home: UInt64

    init(_ id: String) {
        kind = NodeKind(of: id)
        let rest = id.utf8.dropFirst(kind.prefix.utf8.count)
        if kind == .value {
            if let raw = Hex.sha256Bytes(lowercase: String(Substring(rest))) {
                stored = [1] + raw
                home = kind.base | raw[0..<7].reduce(0) { $0 << 8 | UInt64($1) }
                return
            }
            stored = [0] + Array(rest)
        } else {
            stored = Array(rest)
        }
        home = kind.base | SHA256.hash(data: Array(id.utf8)).prefix(7).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The homes of the values whose digests start with the hex digits `digits` (lowercase, at most 64),
    /// as a closed range of numbers; nil when `digits` are not such.
    static func valueRange(_ digits: Substring) -> (low: UInt64, high: UInt64)? {
        let u = digits.utf8
        guard u.count <= 64, u.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        var low: UInt64 = 0
        var high: UInt64 = 0
        var it = u.makeIterator()
        for _ in 0..<14 {
            if let c = it.next() {
                let d = UInt64(c <= 0x39 ? c - 0x30 : c - 0x61 + 10)
                low = low << 4 | d
                high = high << 4 | d
            } else {
                low <<= 4
                high = high << 4 | 0xf
            }
        }
        return (NodeKind.value.base | low, NodeKind.value.base | high)
    }

    /// Where a node stands: its number, or else the free home it would take.
    enum Place: Equatable {
        case found(UInt64)
        case free(UInt64)
    }

    /// Looks the node up from its home along the homes after it, up to the first free one. `ids` reads
    /// the `ids` table (a fold's reads include its deferred insertions).
    func find(_ txn: Transaction, _ store: ViewStore, ids: (([UInt8]) throws -> [UInt8]?)? = nil) throws -> Place {
        let table = store.table("ids")
        let names = store.table("names")
        let get = ids ?? { try GroupedTable.get($0, txn, table, view: "lineage", table: "ids") }
        var home = self.home
        while let counter = try get(KeyBuilder().u64(home).bytes) {
            let n = try Self.number(home: home, counter: counter)
            guard let stored = try GroupedTable.get(KeyBuilder().u64(n).bytes, txn, names, view: "lineage", table: "names") else {
                throw ViewError(.corrupt, view: "lineage", "view lineage: home \(home) names node number \(n), which the view does not have")
            }
            if stored == self.stored { return .found(n) }
            home = Self.next(after: home)
        }
        return .free(home)
    }

    /// How many nodes the graph has: the greatest counter (counters run from 1 over all kinds, in the
    /// order nodes first appear), from the last `names` entry of each kind.
    static func count(_ txn: Transaction, _ store: ViewStore) throws -> UInt64 {
        var greatest: UInt64 = 0
        for kind in NodeKind.allCases {
            guard let (key, _) = try GroupedTable.last(txn, store.table("names"), prefix: [kind.rawValue], view: "lineage", table: "names") else { continue }
            guard key.count == 8 else { throw ViewError(.corrupt, view: "lineage", "view lineage, table names: a key of \(key.count) bytes") }
            greatest = max(greatest, key.withUnsafeBytes { $0.bigEndianUInt64Value } & homeMask)
        }
        return greatest
    }

    /// The number of the node whose home is `home` and whose `ids` record is `counter`.
    static func number<C: BidirectionalCollection<UInt8>>(home: UInt64, counter: C) throws -> UInt64 {
        guard let last = counter.last, last < 0x80, counter.count <= 8 else {
            throw ViewError(.corrupt, view: "lineage", "view lineage, table ids: the counter of home \(home) (\(counter.count) bytes) does not decode")
        }
        let value = counter.reversed().reduce(UInt64(0)) { $0 << 7 | UInt64($1 & 0x7f) }
        return home & ~homeMask | value
    }

    /// The home probed after `home` when it holds another node: the next of the same kind.
    static func next(after home: UInt64) -> UInt64 { home & ~homeMask | (home &+ 1) & homeMask }

    /// The id of node `number` whose `names` record is `stored`.
    static func id(number: UInt64, stored: UnsafeRawBufferPointer) -> String {
        let kind = NodeKind(rawValue: UInt8(number >> 56)) ?? .other
        if kind == .value, let form = stored.first {
            let rest = UnsafeRawBufferPointer(rebasing: stored[1...])
            return kind.prefix + (form == 1 ? rest.hex : String(decoding: rest, as: UTF8.self))
        }
        return kind.prefix + String(decoding: stored, as: UTF8.self)
    }
}

/// An edge as `fwd` and `bwd` keep it: one entry of a ``GroupedTable``, keyed by the node's number and
/// the other end's (so a node's edges are neighbours, by the other end's kind then counter), holding the
/// edge's kind and, as a varint, the seq that first showed it. A group shares each key's node and most of
/// the other end's number with the entry before it: an edge takes ~10 bytes where a record of its own
/// took ~45.
enum EdgeEntry {
    static func key(_ node: UInt64, _ other: UInt64) -> [UInt8] { KeyBuilder().u64(node).u64(other).bytes }

    static func value(_ kind: EdgeKind, seq: UInt64) -> [UInt8] { KeyBuilder().byte(kind.rawValue).varint(seq).bytes }

    /// The other end, kind and first seq of entry `key` → `value`.
    static func decode(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, table: String) throws -> (other: UInt64, kind: EdgeKind, seq: UInt64) {
        var r = KeyReader(value)
        guard key.count == 16, !r.isAtEnd, let kind = EdgeKind(rawValue: r.byte()), let seq = r.wholeVarint(), r.isAtEnd else {
            throw ViewError(.corrupt, view: LineageProjection.name, "view lineage, table \(table): an edge of \(key.count) + \(value.count) bytes does not decode")
        }
        return (UnsafeRawBufferPointer(rebasing: key[8...]).bigEndianUInt64Value, kind, seq)
    }
}
