import ClewCore
#if canImport(Glibc)
import Glibc
#endif

/// Builds composite LMDB keys whose byte order is the order queries want: strings end with a 0 byte (so a
/// prefix never sorts inside a longer string), integers are big-endian, doubles order-preserving.
struct KeyBuilder {
    var bytes: [UInt8]

    init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    init(_ tag: UInt8) {
        self.init()
        bytes.append(tag)
    }

    consuming func string(_ s: String) -> KeyBuilder {
        var k = self
        var s = s
        s.withUTF8 { k.bytes.append(contentsOf: $0) }
        k.bytes.append(0)
        return k
    }

    /// A string with no terminator (the last component, or a prefix to seek to).
    consuming func raw(_ s: String) -> KeyBuilder {
        var k = self
        var s = s
        s.withUTF8 { k.bytes.append(contentsOf: $0) }
        return k
    }

    consuming func u64(_ v: UInt64) -> KeyBuilder {
        var k = self
        withUnsafeBytes(of: v.bigEndian) { k.bytes.append(contentsOf: $0) }
        return k
    }

    consuming func i64(_ v: Int64) -> KeyBuilder { u64(UInt64(bitPattern: v) ^ (1 << 63)) }

    /// An unsigned LEB128 varint (1 byte below 128): for values, not for parts of a key that must sort.
    consuming func varint(_ v: UInt64) -> KeyBuilder {
        var k = self
        k.appendVarint(v)
        return k
    }

    /// ``varint(_:)`` in place, for a loop that builds one value.
    mutating func appendVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// A SHA-256 written as 64 lowercase hex digits, as its 32 bytes after a 1; any other string (or
    /// none, "") as 0 and the 0-terminated string. Read back exactly by ``KeyReader/digest()``.
    consuming func digest(_ d: String) -> KeyBuilder {
        var k = self
        if let raw = Hex.sha256Bytes(lowercase: d) {
            k.bytes.append(1)
            k.bytes.append(contentsOf: raw)
            return k
        }
        k.bytes.append(0)
        return k.string(d)
    }

    consuming func byte(_ b: UInt8) -> KeyBuilder {
        var k = self
        k.bytes.append(b)
        return k
    }

    /// A double whose bytes sort like the number (sign bit flipped for positives, all bits for negatives).
    consuming func double(_ d: Double) -> KeyBuilder {
        u64(KeyBuilder.orderPreserving(d))
    }

    static func orderPreserving(_ d: Double) -> UInt64 {
        let d = d == 0 ? 0 : d  // -0 and 0 are one key
        let bits = d.bitPattern
        return bits & (1 << 63) == 0 ? bits | (1 << 63) : ~bits
    }

    static func double(fromOrderPreserving u: UInt64) -> Double {
        Double(bitPattern: u & (1 << 63) != 0 ? u & ~(1 << 63) : ~u)
    }
}

/// Reads back the parts of a key written by ``KeyBuilder``.
struct KeyReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// A reader of `bytes` from `offset` on.
    init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    var isAtEnd: Bool { offset >= bytes.count }

    /// Moves past `n` bytes.
    mutating func skip(_ n: Int) { offset += n }

    mutating func byte() -> UInt8 {
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A 0-terminated string (or the rest of the key when there is no terminator).
    mutating func string() -> String {
        var end = offset
        while end < bytes.count, bytes[end] != 0 { end += 1 }
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self)
        offset = min(end + 1, bytes.count)
        return s
    }

    mutating func u64() -> UInt64 {
        defer { offset += 8 }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 8]).bigEndianUInt64Value
    }

    mutating func i64() -> Int64 { Int64(bitPattern: u64() ^ (1 << 63)) }

    /// A varint written by ``KeyBuilder/varint(_:)`` (0 past the end or when malformed).
    mutating func varint() -> UInt64 { wholeVarint() ?? 0 }

    /// A varint written by ``KeyBuilder/varint(_:)``; nil when the bytes end before it does.
    mutating func wholeVarint() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let b = bytes[offset]
            offset += 1
            v |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        return nil
    }

    /// A digest written by ``KeyBuilder/digest(_:)``.
    mutating func digest() -> String {
        guard !isAtEnd else { return "" }
        if byte() == 1 {
            guard offset + 32 <= bytes.count else { return "" }
            defer { offset += 32 }
            return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 32]).hex
        }
        return string()
    }
}

extension UnsafeRawBufferPointer {
    var bigEndianUInt64Value: UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: self[0..<8])) }
        return UInt64(bigEndian: v)
    }
}

extension Array where Element == UInt8 {
    /// Whether the array starts with `prefix`.
    func hasPrefix(_ prefix: [UInt8]) -> Bool {
        count >= prefix.count && self[0..<prefix.count].elementsEqual(prefix)
    }
}

extension Array where Element == UInt8 {
    /// The bytes, copied in one `memcpy` (appending a raw buffer as a sequence copies it byte by byte).
    init(copying bytes: UnsafeRawBufferPointer) {
        self = bytes.isEmpty ? [] : bytes.withMemoryRebound(to: UInt8.self) { Array($0) }
    }

    /// Appends the bytes with one `memcpy`.
    mutating func append(copying bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        bytes.withMemoryRebound(to: UInt8.self) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    func hasPrefix(_ prefix: [UInt8]) -> Bool {
        count >= prefix.count && self[0..<prefix.count].elementsEqual(prefix)
    }
}

/// A byte string as a dictionary or set key, hashed in one call (`[UInt8]` hashes byte by byte), and
/// ordered as LMDB orders keys (`memcmp`, then length): sorting a batch's keys by
/// `lexicographicallyPrecedes` took a tenth of a rebuild.
struct ByteKey: Hashable, Comparable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: ByteKey, b: ByteKey) -> Bool { a.bytes == b.bytes }

    static func < (a: ByteKey, b: ByteKey) -> Bool {
        a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in
                let n = min(x.count, y.count)
                let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
                return c != 0 ? c < 0 : x.count < y.count
            }
        }
    }
}
