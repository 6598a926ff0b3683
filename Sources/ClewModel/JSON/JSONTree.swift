import Foundation

/// Any JSON value: what a payload field of any shape holds (recorded values, definitions, unknown
/// fields), what OpenLineage events parse into, and what `clew` reads back. Numbers are doubles; an
/// object's members are unordered and written with sorted keys (``canonicalBytes``).
public indirect enum JSONTree: Codable, Sendable, Hashable, JSONWritable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONTree])
    case object([String: JSONTree])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONTree].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONTree].self))
        }
    }

    /// Compact JSON text (object keys sorted).
    public var text: String { String(decoding: canonicalBytes, as: UTF8.self) }

    /// Compact JSON as UTF-8 bytes, object keys sorted: the same bytes for the same value however its
    /// members were ordered (what OpenLineage ingest digests to recognise a retried event).
    public var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    /// Appends ``canonicalBytes`` to `out` (written in place: building a string per member was a tenth
    /// of ingest in a profile).
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: JSONTree.format(n).utf8)
        case .string(let s): JSON.appendQuoted(s, to: &out)
        case .array(let a): JSON.writeArray(a, to: &out)
        case .object(let o): JSON.writeObject(o.sorted { $0.key < $1.key }.lazy.map { ($0.key, $0.value) }, to: &out)
        }
    }

    /// A number as JSON: integral values without a fraction, non-finite ones as null.
    public static func format(_ n: Double) -> String {
        if n.isFinite, n == n.rounded(), abs(n) < 1e15 { return String(Int64(n)) }
        return n.isFinite ? String(n) : "null"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n):
            if n.isFinite, n == n.rounded(), abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// The member `key` of an object (nil for a missing key or a value that is not an object).
    public subscript(key: String) -> JSONTree? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var number: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// A number as an integer (truncated).
    public var int: Int? { number.map { Int($0) } }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The items of an array (empty for any other value).
    public var array: [JSONTree] {
        if case .array(let a) = self { return a }
        return []
    }
}
