import Foundation

/// Field numbers of `clew.v1.Event` (docs/schema/clew/v1/event.proto).
enum EnvelopeField {
    static let seq: UInt32 = 1
    static let timestamp: UInt32 = 2
    static let actor: UInt32 = 3
    static let stream: UInt32 = 4
    static let type: UInt32 = 5
    static let schemaVersion: UInt32 = 6
    static let payload: UInt32 = 7
    static let payloadRef: UInt32 = 8
}

/// The stored envelope (everything but `seq`, which is the record's key) and the canonical bytes.
///
/// Canonical event bytes, the Merkle leaf input, are the stored envelope followed by field 1 (`seq`):
/// a valid `clew.v1.Event` message in any protobuf decoder, and byte-exact because they are the bytes
/// the ledger wrote rather than a re-encoding.
enum EnvelopeCodec {
    /// Encodes an envelope of format 2: the payload's SHA-256 (`payloadRef`) in place of the payload.
    static func encode(
        timestampMicros: Int64, actor: String, stream: String, type: String, schemaVersion: UInt32,
        payloadRef: UnsafeRawBufferPointer, unknownFields: [UInt8], into out: inout [UInt8]
    ) {
        encodeHead(timestampMicros: timestampMicros, actor: actor, stream: stream, type: type, schemaVersion: schemaVersion, into: &out)
        ProtoWire.appendBytes(field: EnvelopeField.payloadRef, payloadRef, to: &out)
        out.append(contentsOf: unknownFields)
    }

    /// Fields 2-6, the same in every format.
    private static func encodeHead(
        timestampMicros: Int64, actor: String, stream: String, type: String, schemaVersion: UInt32, into out: inout [UInt8]
    ) {
        ProtoWire.appendTag(EnvelopeField.timestamp, .varint, to: &out)
        ProtoWire.appendVarint(UInt64(bitPattern: timestampMicros), to: &out)
        ProtoWire.appendString(field: EnvelopeField.actor, actor, to: &out)
        ProtoWire.appendString(field: EnvelopeField.stream, stream, to: &out)
        ProtoWire.appendString(field: EnvelopeField.type, type, to: &out)
        if schemaVersion != 0 {
            ProtoWire.appendTag(EnvelopeField.schemaVersion, .varint, to: &out)
            ProtoWire.appendVarint(UInt64(schemaVersion), to: &out)
        }
    }

    /// Appends the canonical suffix (field 1, `seq`) to envelope bytes.
    static func appendSeq(_ seq: UInt64, to out: inout [UInt8]) {
        ProtoWire.appendTag(EnvelopeField.seq, .varint, to: &out)
        ProtoWire.appendVarint(seq, to: &out)
    }

    /// Bytes of the canonical suffix for `seq`, without allocating.
    @inline(__always)
    static func withSeqSuffix<T>(_ seq: UInt64, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        var buffer: (UInt64, UInt64) = (0, 0)  // 16 bytes: tag (1) + varint (<= 10)
        return withUnsafeMutableBytes(of: &buffer) { raw in
            raw[0] = UInt8(EnvelopeField.seq << 3)
            var n = 1
            var v = seq
            while v >= 0x80 {
                raw[n] = UInt8(truncatingIfNeeded: v) | 0x80
                v >>= 7
                n += 1
            }
            raw[n] = UInt8(v)
            return body(UnsafeRawBufferPointer(rebasing: raw[0..<n + 1]))
        }
    }

    struct Decoded {
        var seq: UInt64?
        var timestampMicros: Int64 = 0
        var actor = ""
        var stream = ""
        var type = ""
        var schemaVersion: UInt32 = 0
        var payload: Data?
        var payloadRef: [UInt8]?
        var unknownFields: [UInt8] = []
    }

    /// Decodes envelope (or canonical) bytes. Strings repeated across a scan come from `cache`.
    static func decode(_ bytes: UnsafeRawBufferPointer, cache: inout StringCache) throws -> Decoded {
        var reader = ProtoReader(bytes)
        var d = Decoded()
        do {
            while true {
                let tagStart = reader.offset
                guard let (field, type) = try reader.tag() else { break }
                switch (field, type) {
                case (EnvelopeField.seq, 0): d.seq = try reader.varint()
                case (EnvelopeField.timestamp, 0): d.timestampMicros = Int64(bitPattern: try reader.varint())
                case (EnvelopeField.actor, 2): d.actor = try cache.string(try reader.lengthDelimited())
                case (EnvelopeField.stream, 2): d.stream = try cache.string(try reader.lengthDelimited())
                case (EnvelopeField.type, 2): d.type = try cache.string(try reader.lengthDelimited())
                case (EnvelopeField.schemaVersion, 0): d.schemaVersion = UInt32(truncatingIfNeeded: try reader.varint())
                case (EnvelopeField.payload, 2): d.payload = Data(try reader.lengthDelimited())
                case (EnvelopeField.payloadRef, 2): d.payloadRef = Array(try reader.lengthDelimited())
                default:
                    // Unknown (future) field: keep its tag and value bytes verbatim.
                    try reader.skip(type: type)
                    d.unknownFields.append(contentsOf: bytes[tagStart..<reader.offset])
                }
            }
        } catch let error as ProtoReader.Malformed {
            throw LedgerError(.corrupted, "malformed event envelope: \(error)")
        }
        return d
    }
}

/// Reuses the String for bytes seen recently, so a scan does not validate and allocate the same actor,
/// stream and type strings once per event. A direct-mapped table of 128 slots keyed by the bytes' length,
/// first and last eight bytes, so the names a stretch of the log repeats (a few actors, a few dozen
/// types, the streams of the runs under way) mostly stay in it. One slot per field, as before, missed on
/// every event of interleaved streams: half a scan's time went to validating and allocating them again.
struct StringCache {
    /// A name's bytes as the slot compares them: its length, its first and last eight bytes (which, for
    /// up to 16 bytes, are all of them), and for longer names the bytes between.
    private struct Slot {
        var count = 0
        var head: UInt64 = 0
        var tail: UInt64 = 0
        var middle: [UInt8] = []
        var value = ""
    }

    private let slotBits: Int
    /// Allocated on the first string, so a cache made and never used costs nothing.
    private var slots: [Slot] = []

    /// A cache of `1 << slotBits` strings: 128 by default, for scans; 1 (`slotBits` 0) for reading
    /// one event, where a table would cost more than it saves.
    init(slotBits: Int = 7) {
        self.slotBits = slotBits
    }

    /// The string of the UTF-8 bytes `raw`, from the cache when the same bytes were seen.
    /// - Throws: ``LedgerError/Code/corrupted`` when they are not valid UTF-8.
    mutating func string(_ raw: UnsafeRawBufferPointer) throws -> String {
        let n = raw.count
        if n == 0 { return "" }
        if slots.isEmpty { slots = [Slot](repeating: Slot(), count: 1 << slotBits) }
        var head: UInt64 = 0
        var tail: UInt64 = 0
        if n >= 8 {
            head = raw.loadUnaligned(as: UInt64.self)
            tail = raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        } else {
            for (k, b) in raw.enumerated() { head |= UInt64(b) << (8 * UInt64(k)) }
        }
        let i = slotBits == 0 ? 0 : Self.slot(head: head, tail: tail, count: n, bits: slotBits)
        // Compared word by word: names of up to 16 bytes (most types and actors) need no memcmp at all.
        if slots[i].count == n, slots[i].head == head, slots[i].tail == tail,
            n <= 16 || slots[i].middle.withUnsafeBytes({ memcmp($0.baseAddress!, raw.baseAddress! + 8, n - 16) == 0 })
        {
            return slots[i].value
        }
        let s = try Self.decode(raw)
        slots[i] = Slot(count: n, head: head, tail: tail, middle: n > 16 ? Array(raw[8..<n - 8]) : [], value: s)
        return s
    }

    /// Validates and decodes UTF-8: all-ASCII bytes (nearly every name) take the direct path, others the
    /// standard library's validation, both on a typed buffer (the generic path on a raw buffer spent most
    /// of its time looking up type metadata).
    static func decode(_ raw: UnsafeRawBufferPointer) throws -> String {
        let bytes = raw.assumingMemoryBound(to: UInt8.self)
        var high: UInt8 = 0
        for b in bytes { high |= b }
        if high < 0x80 { return String(decoding: bytes, as: UTF8.self) }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw LedgerError(.corrupted, "an envelope string is not valid UTF-8")
        }
        return s
    }

    /// The slot of a name of `count` bytes whose first and last eight bytes are `head` and `tail`.
    @inline(__always)
    private static func slot(head: UInt64, tail: UInt64, count: Int, bits: Int) -> Int {
        let mixed = (head ^ (tail &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(count)) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: mixed >> UInt64(64 - bits))
    }
}
