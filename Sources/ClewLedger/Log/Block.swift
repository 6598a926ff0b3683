import Crypto
import Foundation

/// The log of format 2 is a sequence of blocks: the events of one append (up to ``maxEvents`` events, or
/// as many as make a record of about ``recordTarget`` bytes; a larger append makes several) in one record of the
/// `blocks` table, keyed by the block's first seq (u64 big-endian).
///
/// A block record is
///
///     varint N | N × u32 LE hash tag | varint codec | body
///
/// (codec 0: plain body; 1: one magicless zstd frame; n ≥ 2: zstd with dictionary n − 1), and the body is,
/// for each of the N events in seq order,
///
///     varint envelope length | envelope | varint (payload length << 2 | payload state) | payload
///
/// The envelope (docs/event-schema.md) carries the payload's SHA-256 in field 8 and never the payload,
/// so an event's Merkle leaf, SHA-256(0x00 ‖ envelope ‖ seq), commits to its payload through the digest.
/// The payload state says where the bytes are: in the body (0), in `blobs` under that SHA-256 because
/// they are large (1), nowhere because they were erased (2), or in the body with field 8 left out of
/// the stored envelope (3): the digest of a payload that is there is computed again from it rather than
/// stored, since 32 random bytes per event do not compress (they were ~40% of the compressed log).
/// State 3 is written for an event without unknown fields, whose envelope then ends with field 8, so
/// the canonical envelope is the stored one followed by field 8 (``withCanonicalEnvelope(stored:payload:state:_:)``). Removing a payload
/// rewrites its block with the canonical envelope (state 2) and leaves every leaf, node, proof and
/// checkpoint as it was.
///
/// The hash tag of each event (the first 4 bytes of its leaf hash) stays outside the compressed body:
/// the writer fills it in once it knows the seqs, and `verify` compares it with the leaf recomputed
/// from the decoded envelope to name an exact seq whose bytes changed. Damage that stops a block from
/// decoding at all is named by the block's seq range.
enum Block {
    static let maxEvents = 512
    /// What a block record aims at: one LMDB overflow page holds 4,080 bytes of value (a 4 KiB page less
    /// its header), and aiming a little below it lets most records that compress worse than the ones
    /// before them still fit. Bodies of ~35 KB compress in about half the processor time per event and
    /// decompress about twice as fast as the ~8 KB bodies of the records four to a leaf page that format
    /// 2 wrote until 2026-12-04 (`clew bench ledger`, docs/benchmarks.md). The unused end of each page
    /// costs 8-10% more table bytes on that benchmark's events; a single read decodes its whole block in
    /// 11-16 µs (p50).
    static let recordTarget = 3_500
    /// The largest record before a block is split in two and compressed again: two overflow pages. A
    /// record that misses ``recordTarget`` takes a second page rather than costing a second compression
    /// (aiming at one page with a one-page limit, `clew bench ledger` split and compressed again 470-1,460
    /// blocks a run; with two, none).
    static let recordLimit = 8_160
    /// Bounds of the uncompressed body a block collects before it is compressed; within them the
    /// target follows the compression ratio seen so far (``LogStore/blockTarget``).
    static let minTargetBytes = 2 << 10
    static let maxTargetBytes = 64 << 10
    /// Payloads larger than this are stored in `blobs` (compressed on their own, content-addressed), so
    /// a block stays small enough to decode for a single read.
    static let blobThreshold = 1_900
    /// A block that claims more events than this is damaged.
    static let sanityLimit = 1 << 20

    enum PayloadState: UInt8 {
        /// In the body; the envelope names its SHA-256.
        case inline = 0
        /// In `blobs` under the SHA-256 the envelope names.
        case blob = 1
        /// Removed; the envelope still names its SHA-256.
        case erased = 2
        /// In the body; the stored envelope leaves out field 8, which is the SHA-256 of these bytes.
        case inlineDigestImplied = 3

        /// Whether the payload's bytes are in the body.
        var isInline: Bool { self == .inline || self == .inlineDigestImplied }
    }

    /// The bytes of field 8 (the payload's SHA-256) before the digest: its tag and length.
    static let digestFieldHead: [UInt8] = [UInt8(EnvelopeField.payloadRef << 3 | 2), 32]
    /// Bytes field 8 takes in an envelope.
    static let digestFieldSize = 34

    /// The canonical envelope of a stored one: the stored bytes, followed for state 3 by field 8 with
    /// the SHA-256 of `payload`.
    static func withCanonicalEnvelope<T>(
        stored: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, state: PayloadState, _ body: (UnsafeRawBufferPointer) throws -> T
    ) rethrows -> T {
        guard state == .inlineDigestImplied else { return try body(stored) }
        var out: [UInt8] = []
        out.reserveCapacity(stored.count + digestFieldSize)
        out.append(contentsOf: stored)
        out.append(contentsOf: digestFieldHead)
        SHA256State.hash(payload).withUnsafeBytes { out.append(contentsOf: $0) }
        return try out.withUnsafeBytes(body)
    }

    /// Appends one event's entry to a block body: its envelope, then its payload with its state (the
    /// bytes only for an inline payload).
    static func appendEntry(envelope: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer?, state: PayloadState, to body: inout [UInt8]) {
        ProtoWire.appendVarint(UInt64(envelope.count), to: &body)
        body.append(contentsOf: envelope)
        let bytes = state.isInline ? payload : nil
        ProtoWire.appendVarint(UInt64(bytes?.count ?? 0) << 2 | UInt64(state.rawValue), to: &body)
        if let bytes { body.append(contentsOf: bytes) }
    }

    /// Bytes of the record of `count` events whose codec word and body take `encoded` bytes.
    static func recordSize(count: Int, encoded: Int) -> Int {
        ProtoWire.varintSize(UInt64(count)) + 4 * count + encoded
    }

    /// A block record: the count, the events' hash tags, then the codec word and body (`encoded`).
    static func record(tags: [UInt32], encoded: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(10 + 4 * tags.count + encoded.count)
        ProtoWire.appendVarint(UInt64(tags.count), to: &out)
        for tag in tags { withUnsafeBytes(of: tag.littleEndian) { out.append(contentsOf: $0) } }
        out.append(contentsOf: encoded)
        return out
    }

    /// Where one event's envelope and payload are in a decoded body.
    struct Span {
        var envelope: Range<Int>
        var payload: Range<Int>
        var state: PayloadState
    }

    /// A block's record split into its parts (pointers into the record).
    struct Record {
        var count: Int
        var tags: UnsafeRawBufferPointer
        var codec: UInt64
        var body: UnsafeRawBufferPointer

        func tag(_ i: Int) -> UInt32 {
            UInt32(littleEndian: tags.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
        }
    }

    /// Splits a block record; `first` names the block in errors.
    static func parse(_ record: UnsafeRawBufferPointer, first: UInt64) throws -> Record {
        var reader = ProtoReader(record)
        do {
            let n = try reader.varint()
            guard n >= 1, n <= UInt64(sanityLimit), reader.offset + Int(n) * 4 <= record.count else {
                throw LedgerError(.corrupted, "the block at event \(first) has a damaged header (it claims \(n) events)")
            }
            let tags = UnsafeRawBufferPointer(rebasing: record[reader.offset..<reader.offset + Int(n) * 4])
            reader.offset += Int(n) * 4
            let codec = try reader.varint()
            return Record(count: Int(n), tags: tags, codec: codec, body: UnsafeRawBufferPointer(rebasing: record[reader.offset...]))
        } catch let error as ProtoReader.Malformed {
            throw LedgerError(.corrupted, "the block at event \(first) has a damaged header: \(error)")
        }
    }

    /// The spans of `count` events in a decoded body.
    static func spans(of body: UnsafeRawBufferPointer, count: Int, first: UInt64, into out: inout [Span]) throws {
        out.removeAll(keepingCapacity: true)
        var reader = ProtoReader(body)
        do {
            for i in 0..<count {
                let envLength = Int(try reader.varint())
                let envStart = reader.offset
                guard envLength <= body.count - envStart else { throw ProtoReader.Malformed(reason: "envelope runs past the end", offset: envStart) }
                reader.offset += envLength
                let word = try reader.varint()
                guard let state = PayloadState(rawValue: UInt8(word & 3)) else {
                    throw LedgerError(.corrupted, "event \(first + UInt64(i)) has an unknown payload state \(word & 3)")
                }
                let payLength = Int(word >> 2)
                let payStart = reader.offset
                guard payLength <= body.count - payStart else { throw ProtoReader.Malformed(reason: "payload runs past the end", offset: payStart) }
                reader.offset += payLength
                out.append(Span(envelope: envStart..<envStart + envLength, payload: payStart..<payStart + payLength, state: state))
            }
        } catch let error as ProtoReader.Malformed {
            throw LedgerError(.corrupted, "the block of events \(first)-\(first + UInt64(count) - 1) is damaged: \(error)")
        }
        guard reader.offset == body.count else {
            throw LedgerError(
                .corrupted, "the block of events \(first)-\(first + UInt64(count) - 1) holds \(body.count - reader.offset) bytes after its last event")
        }
    }
}

/// A block of an append, prepared on the appender's thread: its body encoded and compressed, each
/// event's leaf hash fed with 0x00 ‖ envelope (the writer adds the seq), its large payloads as blobs.
struct PreparedBlock: Sendable {
    var streams = StreamKeys()
    var leafStates: [SHA256State] = []
    /// varint codec followed by the body.
    var encoded: [UInt8] = []
    var blobs: [(key: [UInt8], value: [UInt8])] = []

    var count: Int { leafStates.count }
}

/// The stream of each event of a prepared block, as UTF-8 keys end to end in one buffer: the writer puts
/// them into the stream index from one contiguous allocation made on the appender's thread, instead of
/// retaining and reading one string object per event (made on another core: a cache miss each).
struct StreamKeys: Sendable {
    private var bytes: [UInt8] = []
    private var ends: [Int] = []
    /// The events' indices in the order of their keys (LMDB's: bytes, then length), events of one stream
    /// in their own order; empty until ``sortForIndex()``.
    private var order: [Int32] = []

    var count: Int { ends.count }

    mutating func append(_ stream: String) {
        bytes.append(contentsOf: stream.utf8)
        ends.append(bytes.count)
        order.removeAll()
    }

    /// The keys of events `range` (not sorted).
    subscript(range: Range<Int>) -> StreamKeys {
        var out = StreamKeys()
        guard !range.isEmpty else { return out }
        let start = range.lowerBound == 0 ? 0 : ends[range.lowerBound - 1]
        out.bytes = Array(bytes[start..<ends[range.upperBound - 1]])
        out.ends = ends[range].map { $0 - start }
        return out
    }

    /// Sorts the events by key, on the appender's thread, for ``forEachInKeyOrder(_:)``. The writer then
    /// puts a block's index entries with one cursor that moves forward (each key found from the last,
    /// on a page it already holds) and appends each seq after its stream's last (`MDB_APPENDDUP`): the
    /// writer's time on the stream index went from 0.30 to 0.11 µs per event (docs/benchmarks.md).
    mutating func sortForIndex() {
        order = bytes.withUnsafeBytes { raw in
            (0..<Int32(ends.count)).sorted { a, b in
                let x = key(Int(a), in: raw)
                let y = key(Int(b), in: raw)
                let shared = min(x.count, y.count)
                let c = shared == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, shared)
                if c != 0 { return c < 0 }
                return x.count != y.count ? x.count < y.count : a < b
            }
        }
    }

    /// Calls `body` with each event's index and key, in the order of the keys (see ``sortForIndex()``;
    /// in the events' order when not sorted).
    func forEachInKeyOrder(_ body: (Int, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { raw in
            if order.count != ends.count {
                var start = 0
                for (i, end) in ends.enumerated() {
                    try body(i, UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                    start = end
                }
                return
            }
            for i in order { try body(Int(i), key(Int(i), in: raw)) }
        }
    }

    /// Event `i`'s key in `raw`, this value's `bytes`.
    private func key(_ i: Int, in raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[(i == 0 ? 0 : ends[i - 1])..<ends[i]])
    }
}

/// Decodes blocks within one transaction, keeping the last one decoded, so reading neighbouring seqs
/// (a stream's events, a scan, the ≤ 15 leaves of a Merkle subtree) decompresses each block once.
struct BlockReader {
    let store: LogStore
    let txn: Transaction
    /// First seq of the current block (0: none).
    private(set) var first: UInt64 = 0
    private(set) var tags: [UInt32] = []
    private(set) var body: [UInt8] = []
    private(set) var spans: [Block.Span] = []
    var count: Int { spans.count }

    init(store: LogStore, txn: Transaction) {
        self.store = store
        self.txn = txn
    }

    /// Makes the block holding `seq` current and returns the event's index in it; nil when the log does
    /// not reach `seq`.
    mutating func locate(_ seq: UInt64) throws -> Int? {
        if first != 0, seq >= first, seq - first < UInt64(count) { return Int(seq - first) }
        guard seq >= 1 else { return nil }
        let blocks = store.blocks
        let found: (UInt64, UnsafeRawBufferPointer)? = try txn.withCursor(blocks) { c in
            var e = try c.seek(seq)
            if let x = e, x.key.bigEndianUInt64 == seq { return (seq, x.value) }
            e = e == nil ? try c.last() : try c.previous()
            return e.map { ($0.key.bigEndianUInt64, $0.value) }
        }
        guard let (key, record) = found else { return nil }
        try load(record: record, first: key)
        guard seq - first < UInt64(count) else { return nil }
        return Int(seq - first)
    }

    /// Decodes the block record `record` whose first seq is `first`.
    mutating func load(record: UnsafeRawBufferPointer, first: UInt64) throws {
        self.first = 0
        let r = try decompress(record: record, first: first)
        try body.withUnsafeBytes { try Block.spans(of: $0, count: r.count, first: first, into: &spans) }
        tags.removeAll(keepingCapacity: true)
        for i in 0..<r.count { tags.append(r.tag(i)) }
        self.first = first
    }

    /// Splits the block record and decompresses its body into ``body`` (no event is decoded).
    @discardableResult
    mutating func decompress(record: UnsafeRawBufferPointer, first: UInt64) throws -> Block.Record {
        let r = try Block.parse(record, first: first)
        let last = first + UInt64(r.count) - 1
        switch r.codec {
        case 0:
            body.removeAll(keepingCapacity: true)
            body.append(contentsOf: r.body)
        case 1:
            do { try store.codec.decompress(r.body, dictionary: nil, into: &body) } catch {
                throw LedgerError(.corrupted, "the block of events \(first)-\(last) does not decompress: \(error)")
            }
        default:
            guard r.codec <= UInt64(UInt32.max) else {
                throw LedgerError(.corrupted, "the block of events \(first)-\(last) names dictionary \(r.codec - 1), out of range")
            }
            let dict = try store.dictionary(UInt32(r.codec - 1), txn)
            do { try store.codec.decompress(r.body, dictionary: dict, into: &body) } catch {
                throw LedgerError(.corrupted, "the block of events \(first)-\(last) does not decompress: \(error)")
            }
        }
        return r
    }

    /// Calls `body` with the envelope bytes of the event at `index` of the current block as stored (for
    /// payload state 3, without field 8).
    func withStoredEnvelope<T>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try self.body.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[spans[index].envelope])) }
    }

    /// Calls `body` with the canonical envelope of the event at `index` of the current block: the bytes
    /// its leaf hashes (before the seq), field 8 computed again for payload state 3.
    func withEnvelope<T>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let span = spans[index]
        return try self.body.withUnsafeBytes { raw in
            try Block.withCanonicalEnvelope(
                stored: UnsafeRawBufferPointer(rebasing: raw[span.envelope]), payload: UnsafeRawBufferPointer(rebasing: raw[span.payload]),
                state: span.state, body)
        }
    }

    /// The leaf hash of the event at `index`, from its canonical envelope and seq (for payload state 3,
    /// the stored envelope, then field 8 from the payload's SHA-256, hashed without a copy).
    func leafHash(_ index: Int) -> MerkleHash {
        let span = spans[index]
        guard span.state == .inlineDigestImplied else {
            return withStoredEnvelope(index) { LogStore.leafHash(envelope: $0, seq: first + UInt64(index)) }
        }
        return body.withUnsafeBytes { raw in
            var h = Merkle.leafHasher
            h.update(UnsafeRawBufferPointer(rebasing: raw[span.envelope]))
            Block.digestFieldHead.withUnsafeBytes { h.update($0) }
            SHA256State.hash(UnsafeRawBufferPointer(rebasing: raw[span.payload])).withUnsafeBytes { h.update($0) }
            EnvelopeCodec.withSeqSuffix(first + UInt64(index)) { h.update($0) }
            return h.finalize()
        }
    }

    /// The stored envelope of the event at `index`, decoded (an inline payload's digest, state 3, is not in
    /// it). Decoded in a closure of a concrete type: through the generic ``withStoredEnvelope(_:_:)`` the
    /// result was copied and destroyed by value witnesses, ~15% of a scan.
    func envelope(_ index: Int, cache: inout StringCache) throws -> EnvelopeCodec.Decoded {
        let span = spans[index].envelope
        return try body.withUnsafeBytes { raw -> EnvelopeCodec.Decoded in
            try EnvelopeCodec.decode(UnsafeRawBufferPointer(rebasing: raw[span]), cache: &cache)
        }
    }

    /// The event at `index` of the current block, its payload read from the body or its blob.
    func event(_ index: Int, cache: inout StringCache) throws -> Event {
        let seq = first + UInt64(index)
        let span = spans[index]
        var d = try envelope(index, cache: &cache)
        var payload = Data()
        switch span.state {
        case .inline, .inlineDigestImplied:
            if !span.payload.isEmpty {
                payload = body.withUnsafeBytes { Data(bytes: $0.baseAddress! + span.payload.lowerBound, count: span.payload.count) }
            }
        case .blob:
            guard let ref = d.payloadRef else { throw LedgerError(.corrupted, "event \(seq) keeps its payload in a blob but names none") }
            payload = try store.blob(ref, seq: seq, txn)
        case .erased:
            break
        }
        // The names and unknown fields are moved out of `d`, not copied: a copy retained each and the end
        // of `d` released it again (with the `Data` of the payload, most of what a scan spends per event).
        var actor = "", stream = "", type = "", unknown: [UInt8] = []
        swap(&actor, &d.actor)
        swap(&stream, &d.stream)
        swap(&type, &d.type)
        swap(&unknown, &d.unknownFields)
        return Event(
            seq: seq, timestampMicros: d.timestampMicros, actor: actor, stream: stream, type: type,
            schemaVersion: d.schemaVersion, payload: payload, unknownFields: unknown, payloadErased: span.state == .erased)
    }
}
