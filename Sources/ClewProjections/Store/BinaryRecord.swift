import ClewCore
import ClewLedger

/// A view record stored in the views' compact binary form (views format 6): its fields in a fixed order,
/// with no names, a bitmap saying which optional fields are present, numbers as varints, SHA-256 digests
/// as their 32 bytes and well-known words (statuses, states) as one byte.
///
/// The form is positional: a field added to a record must be added to its `write` and `init(from:)` at
/// the same place, and the views' format bumped (every view is rebuilt from the log on open).
/// `ViewsTests.binaryRecordsRoundTrip` fails for a record whose sample leaves a field empty, so a new
/// field cannot be forgotten silently. Records stay `Codable` for the API's JSON.
protocol BinaryRecord: Equatable {
    /// How many optional fields `write` passes to ``RecordWriter/optional(_:_:)`` (the bitmap's size).
    static var optionals: Int { get }
    func write(to w: inout RecordWriter)
    init(from r: inout RecordReader) throws(RecordReader.Malformed)
}

extension BinaryRecord {
    /// The record's stored bytes.
    func encoded() -> [UInt8] {
        var w = RecordWriter(optionals: Self.optionals)
        write(to: &w)
        return w.bytes
    }

    /// A record from its stored bytes; every byte must be used.
    static func decoded(_ bytes: UnsafeRawBufferPointer) throws(RecordReader.Malformed) -> Self {
        var r = try RecordReader(bytes, optionals: optionals)
        let record = try Self(from: &r)
        try r.finish()
        return record
    }
}

/// Words the records store as one byte (their index + 1); any other string is stored as 0 and the
/// string. Append only: the indexes are part of the views' format.
enum RecordWords {
    static let words: [String] = [
        // ChunkStatus
        "pending", "producing", "ready", "consuming", "consumed", "failed", "invalid", "resubmitted",
        // run states
        "queued", "running", "succeeded", "cancelled",
        // task states
        "scheduled", "retrying", "blocked", "skipped", "upstream_failed", "queued (pool)", "cleared",
        // triggers
        "manual", "branch", "backfill",
    ]
    static let index: [String: UInt8] = Dictionary(
        uniqueKeysWithValues: words.enumerated().map { ($0.element, UInt8($0.offset + 1)) })
}

/// Writes a ``BinaryRecord``.
struct RecordWriter {
    private(set) var bytes: [UInt8]
    private let optionalCount: Int
    private var nextOptional = 0

    init(optionals: Int, capacity: Int = 160) {
        bytes = []
        bytes.reserveCapacity(capacity)
        optionalCount = optionals
        bytes.append(contentsOf: repeatElement(0, count: (optionals + 7) / 8))
    }

    mutating func varint(_ v: UInt64) { ProtoWire.appendVarint(v, to: &bytes) }

    /// A signed number, zigzag-encoded (small magnitudes of either sign take one byte).
    mutating func int(_ v: Int64) { varint(ProtoWire.zigzag(v)) }
    mutating func int(_ v: Int) { int(Int64(v)) }

    mutating func bool(_ b: Bool) { bytes.append(b ? 1 : 0) }

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { u in
            varint(UInt64(u.count))
            bytes.append(contentsOf: u)
        }
    }

    /// A string from ``RecordWords`` as one byte, any other as 0 and the string.
    mutating func word(_ s: String) {
        if let i = RecordWords.index[s] {
            bytes.append(i)
        } else {
            bytes.append(0)
            string(s)
        }
    }

    /// A SHA-256 as 64 lowercase hex digits as 1 and its 32 bytes; any other string as 0 and the string.
    mutating func digest(_ d: String) {
        if let raw = Hex.sha256Bytes(lowercase: d) {
            bytes.append(1)
            bytes.append(contentsOf: raw)
        } else {
            bytes.append(0)
            string(d)
        }
    }

    /// A string that often equals `base` or ends with it (a chunk's partition and location, by its key):
    /// 0 for `base`, an odd n for the `(n - 1) / 2` bytes before `base`, an even n for `n / 2 - 1` bytes.
    mutating func string(_ s: String, around base: String) {
        let su = s.utf8, bu = base.utf8
        if su.elementsEqual(bu) {
            varint(0)
        } else if !bu.isEmpty, su.count > bu.count, su.suffix(bu.count).elementsEqual(bu) {
            let n = su.count - bu.count
            varint(UInt64(n) * 2 + 1)
            bytes.append(contentsOf: su.prefix(n))
        } else {
            varint((UInt64(su.count) + 1) * 2)
            bytes.append(contentsOf: su)
        }
    }

    mutating func strings(_ a: [String]) {
        varint(UInt64(a.count))
        for s in a { string(s) }
    }

    /// A dictionary in key order (so equal dictionaries store equal bytes).
    mutating func map<V>(_ d: [String: V], key: (inout RecordWriter, String) -> Void, value: (inout RecordWriter, V) -> Void) {
        varint(UInt64(d.count))
        for (k, v) in d.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            key(&self, k)
            value(&self, v)
        }
    }

    /// An optional field: its bit in the bitmap, and its bytes when present.
    mutating func optional<T>(_ v: T?, _ write: (inout RecordWriter, T) -> Void) {
        let i = nextOptional
        nextOptional += 1
        precondition(i < optionalCount, "a record wrote more optional fields than it declares")
        guard let v else { return }
        bytes[i / 8] |= 1 << UInt8(i % 8)
        write(&self, v)
    }
}

/// Reads a ``BinaryRecord``; every read is bounds-checked and throws ``Malformed`` past the end.
struct RecordReader {
    struct Malformed: Error, CustomStringConvertible {
        var reason: String
        var offset: Int
        var description: String { "\(reason) at byte \(offset)" }
    }

    private let bytes: UnsafeRawBufferPointer
    private var offset: Int
    private let optionalCount: Int
    private var nextOptional = 0

    init(_ bytes: UnsafeRawBufferPointer, optionals: Int) throws(Malformed) {
        self.bytes = bytes
        optionalCount = optionals
        offset = (optionals + 7) / 8
        guard offset <= bytes.count else { throw Malformed(reason: "shorter than its bitmap", offset: 0) }
    }

    func finish() throws(Malformed) {
        guard offset == bytes.count else { throw Malformed(reason: "\(bytes.count - offset) bytes left over", offset: offset) }
    }

    private mutating func take(_ n: Int) throws(Malformed) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - offset else { throw Malformed(reason: "a field runs past the end", offset: offset) }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n])
    }

    mutating func byte() throws(Malformed) -> UInt8 { try take(1)[0] }

    mutating func varint() throws(Malformed) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw Malformed(reason: "a varint longer than 10 bytes", offset: offset) }
            v |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    mutating func int64() throws(Malformed) -> Int64 {
        ProtoWire.unzigzag(try varint())
    }

    mutating func int() throws(Malformed) -> Int { Int(truncatingIfNeeded: try int64()) }

    mutating func bool() throws(Malformed) -> Bool {
        switch try byte() {
        case 0: return false
        case 1: return true
        default: throw Malformed(reason: "a boolean that is neither 0 nor 1", offset: offset - 1)
        }
    }

    private mutating func length() throws(Malformed) -> Int {
        let n = try varint()
        guard n <= UInt64(bytes.count - offset) else { throw Malformed(reason: "a length past the end", offset: offset) }
        return Int(n)
    }

    mutating func string() throws(Malformed) -> String {
        String(decoding: try take(try length()), as: UTF8.self)
    }

    mutating func word() throws(Malformed) -> String {
        let i = Int(try byte())
        if i == 0 { return try string() }
        guard i <= RecordWords.words.count else { throw Malformed(reason: "word \(i) is not known", offset: offset - 1) }
        return RecordWords.words[i - 1]
    }

    mutating func digest() throws(Malformed) -> String {
        switch try byte() {
        case 0: return try string()
        case 1: return try take(32).hex
        default: throw Malformed(reason: "a digest of unknown form", offset: offset - 1)
        }
    }

    mutating func string(around base: String) throws(Malformed) -> String {
        let n = try varint()
        if n == 0 { return base }
        guard n <= UInt64(bytes.count - offset) * 2 + 2 else { throw Malformed(reason: "a length past the end", offset: offset) }
        if n % 2 == 1 {
            var u = Array(try take(Int((n - 1) / 2)))
            u.append(contentsOf: base.utf8)
            return String(decoding: u, as: UTF8.self)
        }
        return String(decoding: try take(Int(n / 2 - 1)), as: UTF8.self)
    }

    mutating func strings() throws(Malformed) -> [String] {
        let n = try length()
        var a: [String] = []
        a.reserveCapacity(n)
        for _ in 0..<n { a.append(try string()) }
        return a
    }

    mutating func map<V>(
        key: (inout RecordReader) throws(Malformed) -> String, value: (inout RecordReader) throws(Malformed) -> V
    ) throws(Malformed) -> [String: V] {
        let n = try length()
        var d: [String: V] = [:]
        d.reserveCapacity(n)
        for _ in 0..<n {
            let k = try key(&self)
            d[k] = try value(&self)
        }
        return d
    }

    // The optional fields records have most.
    mutating func optionalString() throws(Malformed) -> String? { try optional { r throws(Malformed) in try r.string() } }
    mutating func optionalWord() throws(Malformed) -> String? { try optional { r throws(Malformed) in try r.word() } }
    mutating func optionalDigest() throws(Malformed) -> String? { try optional { r throws(Malformed) in try r.digest() } }
    mutating func optionalStrings() throws(Malformed) -> [String]? { try optional { r throws(Malformed) in try r.strings() } }
    mutating func optionalInt() throws(Malformed) -> Int? { try optional { r throws(Malformed) in try r.int() } }
    mutating func optionalInt64() throws(Malformed) -> Int64? { try optional { r throws(Malformed) in try r.int64() } }
    mutating func optionalVarint() throws(Malformed) -> UInt64? { try optional { r throws(Malformed) in try r.varint() } }
    mutating func optionalBool() throws(Malformed) -> Bool? { try optional { r throws(Malformed) in try r.bool() } }

    mutating func optional<T>(_ read: (inout RecordReader) throws(Malformed) -> T) throws(Malformed) -> T? {
        let i = nextOptional
        nextOptional += 1
        precondition(i < optionalCount, "a record read more optional fields than it declares")
        guard bytes[i / 8] & (1 << UInt8(i % 8)) != 0 else { return nil }
        return try read(&self)
    }
}
