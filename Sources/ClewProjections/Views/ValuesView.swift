import ClewLedger
public import ClewModel
import Foundation

/// One recorded value or variable found by the value index.
public struct ValueHit: Sendable, Hashable, Codable {
    public var seq: UInt64
    public var dag: String
    public var run: String
    public var task: String
    public var attempt: Int
    /// The variable's step; nil for a task's output or input.
    public var step: Int?
    /// The variable name, `output` for a task's output (fields of a record output as `output.<field>`),
    /// `input` for a value a task read.
    public var name: String
    /// The value (JSON text, cut at 200 bytes), when it was indexed by value.
    public var value: String?
    public var digest: String?
}

/// What to look for in the value index.
public enum ValueMatch: Sendable, Hashable {
    /// Equal to a number, string or boolean.
    case equals(JSONTree)
    /// A number in a closed range (either bound may be open).
    case range(min: Double?, max: Double?)
    /// A string starting with the prefix.
    case prefix(String)
    /// Any value with this SHA-256 (of its canonical JSON), under any name, as output, input or variable.
    case digest(String)
    /// Every value of the name.
    case any
}

/// The value index: recorded variables, task outputs (and the top-level fields of record outputs) and
/// task inputs, by name and value, by task, and by digest.
///
/// Keys end with the seq of the event, so entries are unique, in log order within a value, and filter
/// `--as-of` by themselves. Tables (both ``GroupedTable``s): `by_name` (name, kind, value, seq) and
/// `by_digest` (digest, seq);
/// values are the hit (``ValueHit`` fields, binary: strings, varints, a SHA-256 as its 32 bytes), without
/// what the key holds: in `by_name` the name, and the value's text when the key gives it exactly; in
/// `by_digest` the digest. A hit carries the task, so a search by task reads the name's entries and keeps
/// that task's. Its run is a number: `run_ids` (dag, run → number) and `runs` (number → dag, run), also
/// grouped, intern each run the first time a hit names it, counting from 1 in log order (so a fresh fold
/// gives the same bytes); a run's id and DAG took ~30 bytes of every hit.
/// Value encodings: `b` + one byte for booleans, `n` + an order-preserving double for numbers, `s` + the
/// first 64 bytes of a string + 0; other shapes are found by digest.
final class ValuesProjection: Projection {
    static let name = "values"
    static let tables = ["by_name", "by_digest", "run_ids", "runs"]
    static let bulkTables = ["by_name", "by_digest"]
    static let interest: Fact.Interest = [.run]
    static let stringKeyBytes = 64
    static let maxFields = 32

    func apply(_ fact: Fact, _ h: EventHeader, _ txn: ViewTxn) throws {
        guard case .run(let key, let f) = fact else { return }
        switch f {
        case .value(let v):
            let produced = h.type == EventType.valueProduced
            let name = Self.indexed(name: produced ? "output" : (v.name ?? "?"))
            var hit = ValueHit(
                seq: h.seq, dag: key.dag, run: key.run, task: v.task, attempt: v.attempt ?? 1, step: produced ? nil : v.step,
                name: name, value: nil, digest: v.digest)
            try index(digest: v.digest, hit, txn)
            guard let value = v.value?.tree else { return }
            if case .object(let fields) = value {
                for (field, fv) in fields.sorted(by: { $0.key < $1.key }).prefix(Self.maxFields) {
                    var fieldHit = hit
                    fieldHit.name = Self.indexed(name: "\(name).\(field)")
                    fieldHit.digest = nil
                    try index(value: fv, fieldHit, txn)
                }
            } else {
                hit.value = String(value.text.utf8.prefix(200)) ?? value.text
                try index(value: value, hit, txn)
            }
        case .consumed(let c):
            guard let digest = c.digest else { return }
            let hit = ValueHit(
                seq: h.seq, dag: key.dag, run: key.run, task: c.task, attempt: c.attempt ?? 1, step: nil, name: "input",
                value: nil, digest: digest)
            try index(digest: digest, hit, txn)
        default:
            break
        }
    }

    static func encode(_ value: JSONTree) -> [UInt8]? {
        switch value {
        case .bool(let b): return [UInt8(ascii: "b"), b ? 1 : 0]
        case .number(let n): return KeyBuilder(UInt8(ascii: "n")).double(n).bytes
        case .string(let s):
            var k = KeyBuilder(UInt8(ascii: "s"))
            k.bytes.append(contentsOf: s.utf8.prefix(stringKeyBytes))
            k.bytes.append(0)
            return k.bytes
        default: return nil
        }
    }

    /// A name as the index keeps it: a 0 byte, which ends a name in a key, as U+FFFD (a search by that
    /// name is mapped the same way).
    static func indexed(name: String) -> String {
        guard name.utf8.contains(0) else { return name }
        return String(decoding: name.utf8.flatMap { $0 == 0 ? [0xef, 0xbf, 0xbd] : [$0] }, as: UTF8.self)
    }

    /// The JSON text of a value as its key encodes it (``encode(_:)``), when the key holds all of it; a
    /// stored hit leaves its text out when this gives the text exactly (always for numbers and booleans,
    /// for strings up to ``stringKeyBytes``).
    static func text(ofEncoded e: UnsafeRawBufferPointer) -> String? {
        guard let tag = e.first else { return nil }
        switch tag {
        case UInt8(ascii: "b") where e.count == 2: return e[1] == 1 ? "true" : "false"
        case UInt8(ascii: "n") where e.count == 9:
            return JSONTree.format(KeyBuilder.double(fromOrderPreserving: UnsafeRawBufferPointer(rebasing: e[1...]).bigEndianUInt64Value))
        case UInt8(ascii: "s") where e.last == 0:
            return JSON.quote(String(decoding: UnsafeRawBufferPointer(rebasing: e[1..<(e.count - 1)]), as: UTF8.self))
        default: return nil
        }
    }

    /// A hit as stored: the run's number, the task, attempt, step, then in `by_name` the digest and in
    /// `by_digest` the name (each table's key holds the other), then the value's text: 0 none, 1 the
    /// key's value (``text(ofEncoded:)``), 2 and the text.
    static func encodeHit(_ h: ValueHit, run: UInt64, byName encoded: [UInt8]?) -> [UInt8] {
        var k = KeyBuilder().varint(run).string(h.task).varint(UInt64(max(h.attempt, 0)))
            .varint(h.step.map { UInt64(max($0, 0)) + 1 } ?? 0)
        k = encoded == nil ? k.string(h.name) : k.digest(h.digest ?? "")
        guard let value = h.value else { return k.byte(0).bytes }
        if let encoded, encoded.withUnsafeBytes({ text(ofEncoded: $0) }) == value { return k.byte(1).bytes }
        return k.byte(2).raw(value).bytes
    }

    /// A stored hit, with the parts its key holds: for `by_name` the name and the value's encoding, for
    /// `by_digest` the digest; `runs` names the run of a number.
    static func decodeHit(
        _ bytes: UnsafeRawBufferPointer, seq: UInt64, name keyName: String? = nil, encoded: UnsafeRawBufferPointer? = nil,
        digest keyDigest: String? = nil, runs: inout RunNumbers
    ) throws -> ValueHit {
        var r = KeyReader(bytes)
        let (dag, run) = try runs.run(r.varint())
        let task = r.string()
        let attempt = Int(truncatingIfNeeded: r.varint())
        let step = r.varint()
        let name = keyName ?? r.string()
        let digest = keyDigest ?? r.digest()
        guard !r.isAtEnd else { throw ViewError(.corrupt, view: Self.name, "view values: a hit ends before its value's form") }
        let value: String?
        switch r.byte() {
        case 0: value = nil
        case 1:
            guard let text = encoded.flatMap({ text(ofEncoded: $0) }) else {
                throw ViewError(.corrupt, view: Self.name, "view values: a hit takes its value from a key that holds none")
            }
            value = text
        case 2: value = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r.offset...]), as: UTF8.self)
        case let form: throw ViewError(.corrupt, view: Self.name, "view values: a hit's value has form \(form), not 0, 1 or 2")
        }
        return ValueHit(
            seq: seq, dag: dag, run: run, task: task, attempt: attempt, step: step == 0 ? nil : Int(truncatingIfNeeded: step - 1), name: name,
            value: value, digest: digest.isEmpty ? nil : digest)
    }

    private func index(value: JSONTree, _ hit: ValueHit, _ txn: ViewTxn) throws {
        guard let encoded = Self.encode(value) else { return }
        var hit = hit
        if hit.value == nil { hit.value = String(value.text.utf8.prefix(200)) ?? value.text }
        let bytes = Self.encodeHit(hit, run: try number(dag: hit.dag, run: hit.run, txn), byName: encoded)
        try txn.add(KeyBuilder().string(hit.name).bytes + encoded + KeyBuilder().u64(hit.seq).bytes, bytes, grouped: "by_name")
    }

    private func index(digest: String, _ hit: ValueHit, _ txn: ViewTxn) throws {
        let run = try number(dag: hit.dag, run: hit.run, txn)
        try txn.add(KeyBuilder().digest(digest).u64(hit.seq).bytes, Self.encodeHit(hit, run: run, byName: nil), grouped: "by_digest")
    }

    /// Runs looked up or numbered in this batch and the ones before, up to ``cacheLimit`` (then dropped
    /// whole).
    private var numbers: [ByteKey: UInt64] = [:]
    static let cacheLimit = 1 << 16
    /// The number the next new run takes (nil: read from `runs`' entry count).
    private var nextNumber: UInt64?

    /// The number of run `dag`/`run`, made when it has none yet.
    private func number(dag: String, run: String, _ txn: ViewTxn) throws -> UInt64 {
        let key = KeyBuilder().string(dag).raw(run).bytes
        if let n = numbers[ByteKey(key)] { return n }
        let s = txn.store
        let n: UInt64
        if let stored = try GroupedTable.get(key, txn.txn, s.table("run_ids"), view: Self.name, table: "run_ids") {
            guard stored.count == 8 else {
                throw ViewError(.corrupt, view: Self.name, "view values, table run_ids: the number of \(dag)/\(run) has \(stored.count) bytes, not 8")
            }
            n = stored.withUnsafeBytes { $0.bigEndianUInt64Value }
        } else {
            n = try nextNumber ?? Self.lastRunNumber(txn) + 1
            nextNumber = n + 1
            try GroupedTable.insert(key, KeyBuilder().u64(n).bytes, into: "run_ids", txn)
            try GroupedTable.insert(KeyBuilder().u64(n).bytes, key, into: "runs", txn)
        }
        if numbers.count >= Self.cacheLimit { numbers.removeAll(keepingCapacity: true) }
        numbers[ByteKey(key)] = n
        return n
    }

    /// The greatest run number given so far (0 for none): the last key of `runs`.
    static func lastRunNumber(_ txn: ViewTxn) throws -> UInt64 {
        guard let (key, _) = try GroupedTable.last(txn.txn, txn.store.table("runs"), prefix: [], view: name, table: "runs") else { return 0 }
        guard key.count == 8 else { throw ViewError(.corrupt, view: name, "view values, table runs: a key of \(key.count) bytes") }
        return key.withUnsafeBytes { $0.bigEndianUInt64Value }
    }

    func flush(_ txn: ViewTxn) throws {
        // Read again from the table by the next batch (another process may fold too).
        nextNumber = nil
    }

    func reset() {
        numbers.removeAll()
        nextNumber = nil
    }
}

/// The runs of the value index's numbers in one read, each looked up once.
struct RunNumbers {
    let store: ViewStore
    let txn: Transaction
    private var names: [UInt64: (dag: String, run: String)] = [:]

    init(store: ViewStore, txn: Transaction) {
        self.store = store
        self.txn = txn
    }

    mutating func run(_ number: UInt64) throws -> (dag: String, run: String) {
        if let r = names[number] { return r }
        guard let bytes = try GroupedTable.get(KeyBuilder().u64(number).bytes, txn, store.table("runs"), view: "values", table: "runs") else {
            throw ViewError(.corrupt, view: "values", "view values: a hit names run number \(number), which the view does not have")
        }
        let r = bytes.withUnsafeBytes { b -> (String, String) in
            var k = KeyReader(b)
            return (k.string(), k.string())
        }
        names[number] = r
        return r
    }
}
