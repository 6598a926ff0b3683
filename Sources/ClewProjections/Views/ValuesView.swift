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
/// `--as-of` by themselves. Tables: `by_name` (name, kind, value, seq) and `by_digest` (digest, seq);
/// values are the hit (``ValueHit`` fields, binary: strings, varints, a SHA-256 as its 32 bytes, and in
/// `by_digest` no digest, which is the key's), which carries the task, so a search by task reads the
/// name's entries and keeps that task's.
/// Value encodings: `b` + one byte for booleans, `n` + an order-preserving double for numbers, `s` + the
/// first 64 bytes of a string + 0; other shapes are found by digest.
final class ValuesProjection: Projection {
    static let name = "values"
    static let tables = ["by_name", "by_digest"]
    static let interest: Fact.Interest = [.run]
    static let stringKeyBytes = 64
    static let maxFields = 32

    func apply(_ fact: Fact, _ h: EventHeader, _ txn: ViewTxn) throws {
        guard case .run(let key, let f) = fact else { return }
        switch f {
        case .value(let v):
            let produced = h.type == EventType.valueProduced
            let name = produced ? "output" : (v.name ?? "?")
            var hit = ValueHit(
                seq: h.seq, dag: key.dag, run: key.run, task: v.task, attempt: v.attempt ?? 1, step: produced ? nil : v.step,
                name: name, value: nil, digest: v.digest)
            try index(digest: v.digest, hit, txn)
            guard let value = v.value?.tree else { return }
            if case .object(let fields) = value {
                for (field, fv) in fields.sorted(by: { $0.key < $1.key }).prefix(Self.maxFields) {
                    var fieldHit = hit
                    fieldHit.name = "\(name).\(field)"
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

    /// A hit as stored: its digest left out when the key holds it (`by_digest`).
    static func encodeHit(_ h: ValueHit, withDigest: Bool = true) -> [UInt8] {
        var k = KeyBuilder().string(h.dag).string(h.run).string(h.task).string(h.name).varint(UInt64(max(h.attempt, 0)))
            .varint(h.step.map { UInt64(max($0, 0)) + 1 } ?? 0)
        if withDigest { k = k.digest(h.digest ?? "") }
        return k.raw(h.value ?? "").bytes
    }

    /// A stored hit; `digest` is the key's, for a hit stored without one.
    static func decodeHit(_ bytes: UnsafeRawBufferPointer, seq: UInt64, digest keyDigest: String? = nil) -> ValueHit {
        var r = KeyReader(bytes)
        let dag = r.string(), run = r.string(), task = r.string(), name = r.string()
        let attempt = Int(truncatingIfNeeded: r.varint())
        let step = r.varint()
        let digest = keyDigest ?? r.digest()
        let value = r.isAtEnd ? "" : r.string()
        return ValueHit(
            seq: seq, dag: dag, run: run, task: task, attempt: attempt, step: step == 0 ? nil : Int(truncatingIfNeeded: step - 1), name: name,
            value: value.isEmpty ? nil : value, digest: digest.isEmpty ? nil : digest)
    }

    private func index(value: JSONTree, _ hit: ValueHit, _ txn: ViewTxn) throws {
        guard let encoded = Self.encode(value) else { return }
        var hit = hit
        if hit.value == nil { hit.value = String(value.text.utf8.prefix(200)) ?? value.text }
        let bytes = Self.encodeHit(hit)
        let s = txn.store
        try txn.put(s.table("by_name"), KeyBuilder().string(hit.name).bytes + encoded + KeyBuilder().u64(hit.seq).bytes, bytes)
    }

    private func index(digest: String, _ hit: ValueHit, _ txn: ViewTxn) throws {
        try txn.put(txn.store.table("by_digest"), KeyBuilder().digest(digest).u64(hit.seq).bytes, Self.encodeHit(hit, withDigest: false))
    }

    func flush(_ txn: ViewTxn) throws {}
    func reset() {}
}
