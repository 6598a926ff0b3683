package import ClewCore
/// Protocol Buffers wire-format primitives (varints, tags, length-delimited fields).
///
/// The event envelope is specified as a `.proto` (docs/schema/clew/v1/event.proto) so any language can
/// decode the log with stock protobuf tooling; Clew itself encodes it with these few primitives, which
/// keeps the hot append and scan paths free of allocation and makes the canonical (hashed) bytes
/// exactly the bytes Clew wrote. Conformance is checked against `protoc --decode` in the tests.
package enum ProtoWire {
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    @inline(__always)
    static func varintSize(_ v: UInt64) -> Int {
        var n = 1
        var v = v >> 7
        while v != 0 {
            n += 1
            v >>= 7
        }
        return n
    }

    @inline(__always)
    package static func appendVarint(_ v: UInt64, to out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// A signed number as an unsigned one whose varint is short for small magnitudes of either sign
    /// (protobuf's zigzag: 0, -1, 1, -2 … become 0, 1, 2, 3 …).
    @inline(__always)
    package static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

    /// The signed number ``zigzag(_:)`` encoded.
    @inline(__always)
    package static func unzigzag(_ u: UInt64) -> Int64 { Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1))) }

    @inline(__always)
    static func appendTag(_ field: UInt32, _ type: WireType, to out: inout [UInt8]) {
        appendVarint(UInt64(field) << 3 | UInt64(type.rawValue), to: &out)
    }

    @inline(__always)
    static func appendBytes(field: UInt32, _ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        appendTag(field, .lengthDelimited, to: &out)
        appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    @inline(__always)
    static func appendString(field: UInt32, _ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { appendBytes(field: field, UnsafeRawBufferPointer($0), to: &out) }
    }
}

/// Reads protobuf wire format from a byte buffer, never past its end.
package struct ProtoReader {
    package let bytes: UnsafeRawBufferPointer
    package var offset = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package var isAtEnd: Bool { offset >= bytes.count }

    package struct Malformed: ClewError {
        let reason: String
        let offset: Int
        package var description: String { "\(reason) at byte \(offset)" }
        package var category: ErrorCategory { .corrupted }
    }

    @inline(__always)
    package mutating func varint() throws(Malformed) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count {
            let b = bytes[offset]
            offset += 1
            if shift == 63 && b > 1 { throw Malformed(reason: "varint overflows 64 bits", offset: offset) }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw Malformed(reason: "varint longer than 10 bytes", offset: offset) }
        }
        throw Malformed(reason: "varint runs past the end", offset: offset)
    }

    /// Next (field number, wire type), or nil at the end.
    @inline(__always)
    mutating func tag() throws(Malformed) -> (field: UInt32, type: UInt8)? {
        if isAtEnd { return nil }
        let t = try varint()
        let field = t >> 3
        guard field > 0, field <= 536_870_911 else { throw Malformed(reason: "invalid field number \(field)", offset: offset) }
        return (UInt32(field), UInt8(t & 7))
    }

    @inline(__always)
    package mutating func lengthDelimited() throws(Malformed) -> UnsafeRawBufferPointer {
        let n = try varint()
        guard n <= UInt64(bytes.count - offset) else {
            throw Malformed(reason: "field of \(n) bytes runs past the end", offset: offset)
        }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(n)])
        offset += Int(n)
        return slice
    }

    /// Skips a value of wire type `type`; returns the byte range it occupied (tag excluded).
    mutating func skip(type: UInt8) throws(Malformed) {
        switch type {
        case 0: _ = try varint()
        case 1:
            guard bytes.count - offset >= 8 else { throw Malformed(reason: "fixed64 runs past the end", offset: offset) }
            offset += 8
        case 2: _ = try lengthDelimited()
        case 5:
            guard bytes.count - offset >= 4 else { throw Malformed(reason: "fixed32 runs past the end", offset: offset) }
            offset += 4
        default: throw Malformed(reason: "unsupported wire type \(type)", offset: offset)
        }
    }
}
