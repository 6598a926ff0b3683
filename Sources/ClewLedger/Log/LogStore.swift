internal import CLMDB
import Crypto
import Foundation
import Synchronization

/// The log's LMDB environment and its tables, and the record format. Knows bytes, not domain.
///
/// Tables (named databases of the `log/` environment):
/// - `events`: seq (u64 big-endian) -> record. Appended with `MDB_APPEND`; keys have no gaps.
/// - `streams`: stream id -> seq, sorted duplicates (the stream index).
/// - `merkle`: level (u8) + index (u64 BE) -> 32-byte hash of each perfect subtree of 2^level leaves,
///   for levels >= ``LogStore/storedMinLevel`` (smaller subtrees are rehashed from their <= 15 events).
/// - `blobs`: SHA-256 of a payload -> compressed payload, for payloads too big to keep a record on its page.
/// - `dicts`: dictionary id (u32 BE) -> zstd dictionary.
/// - `checkpoints`: tree size (u64 BE) -> signed checkpoint (JSON).
/// - `meta`: format version, current dictionary id.
///
/// A record is: codec (varint: 0 plain, 1 zstd, n >= 2 zstd with dictionary n - 1), the envelope
/// (plain or one magicless zstd frame), then the first 4 bytes of the event's Merkle leaf hash, which
/// lets `verify` name the exact seq of a damaged record (LMDB has no page checksums).
final class LogStore: Sendable {
    static let storedMinLevel = 4
    /// Records whose compressed envelope would pass this size move their payload to `blobs`, so every
    /// record stays on its leaf page (LMDB moves values above ~2 KB of a 4 KB page to overflow pages).
    static let inlineLimit = 1900
    static let formatVersion: UInt32 = 1

    let env: Environment
    let events: Database
    let streams: Database
    let merkle: Database
    let blobs: Database
    let dicts: Database
    let checkpoints: Database
    let meta: Database
    let codec: ZstdCodec
    private let dictionaries = Mutex<[UInt32: ZstdDictionary]>([:])
    /// Dictionary new records are compressed with (nil until the first one is trained).
    let currentDictionary = Mutex<ZstdDictionary?>(nil)

    init(env: Environment, compressionLevel: Int32) throws {
        self.env = env
        self.codec = ZstdCodec(level: compressionLevel)
        events = try env.openDatabase("events")
        streams = try env.openDatabase("streams", flags: MDB_DUPSORT | MDB_DUPFIXED)
        merkle = try env.openDatabase("merkle")
        blobs = try env.openDatabase("blobs")
        dicts = try env.openDatabase("dicts")
        checkpoints = try env.openDatabase("checkpoints")
        meta = try env.openDatabase("meta")
        try env.read { txn in try refreshDictionary(txn) }
    }

    // MARK: Meta

    static let currentDictionaryKey = Array("dict.current".utf8)

    /// Picks up a dictionary trained by this or another process since the last look.
    func refreshDictionary(_ txn: Transaction) throws {
        guard let raw = try Self.currentDictionaryKey.withUnsafeBytes({ try txn.get(meta, $0) }), raw.count == 4 else {
            return
        }
        let id = UInt32(bigEndian: raw.loadUnaligned(as: UInt32.self))
        if currentDictionary.withLock({ $0?.id }) == id { return }
        let dict = try dictionary(id, txn)
        currentDictionary.withLock { $0 = dict }
    }

    func dictionary(_ id: UInt32, _ txn: Transaction) throws -> ZstdDictionary {
        if let d = dictionaries.withLock({ $0[id] }) { return d }
        guard let bytes = try withUnsafeBytes(of: id.bigEndian, { try txn.get(dicts, $0) }) else {
            throw LedgerError(.corrupted, "a record names zstd dictionary \(id), which the ledger does not have")
        }
        let d = try ZstdDictionary(id: id, bytes: Array(bytes), level: codec.level)
        dictionaries.withLock { $0[id] = d }
        return d
    }

    /// Stores a new dictionary and makes it current (inside the caller's write transaction).
    func storeDictionary(_ bytes: [UInt8], _ txn: Transaction) throws -> ZstdDictionary {
        var next: UInt32 = 1
        try txn.withCursor(dicts) { c in
            if let last = try c.last() { next = UInt32(bigEndian: last.key.loadUnaligned(as: UInt32.self)) + 1 }
        }
        _ = try withUnsafeBytes(of: next.bigEndian) { k in
            try bytes.withUnsafeBytes { try txn.put(dicts, k, $0) }
        }
        _ = try Self.currentDictionaryKey.withUnsafeBytes { k in
            try withUnsafeBytes(of: next.bigEndian) { try txn.put(meta, k, $0) }
        }
        let d = try ZstdDictionary(id: next, bytes: bytes, level: codec.level)
        dictionaries.withLock { $0[next] = d }
        return d
    }

    // MARK: Records

    /// Last seq in the log (0 when empty).
    func lastSeq(_ txn: Transaction) throws -> UInt64 {
        try txn.withCursor(events) { c in try c.last().map { $0.key.bigEndianUInt64 } ?? 0 }
    }

    /// An event prepared outside the writer: compressed record body and the leaf hash state over
    /// 0x00 || envelope, finished by the writer once it knows the seq.
    struct Prepared: @unchecked Sendable {
        // @unchecked Sendable: `leafState` (swift-crypto's SHA256, not marked Sendable) is a copy-on-write
        // value handed from the preparing thread to the writer and never used by both.
        var stream: String
        var body: [UInt8]
        var leafState: SHA256
        var blob: (key: [UInt8], value: [UInt8])?
    }

    func prepare(_ event: NewEvent, now: Int64, dictionary: ZstdDictionary?, scratch: inout [UInt8]) throws -> Prepared {
        try event.validate()
        let time = event.timestampMicros ?? now
        func encode(payloadRef: [UInt8]?) {
            scratch.removeAll(keepingCapacity: true)
            EnvelopeCodec.encode(
                timestampMicros: time, actor: event.actor, stream: event.stream, type: event.type,
                schemaVersion: event.schemaVersion, payload: payloadRef == nil ? event.payload : nil,
                payloadRef: payloadRef, unknownFields: event.unknownFields, into: &scratch)
        }
        encode(payloadRef: nil)
        var body = try compressRecord(scratch, dictionary: dictionary)
        var blob: (key: [UInt8], value: [UInt8])?
        if body.count + 4 > Self.inlineLimit, !event.payload.isEmpty {
            let key = Array(SHA256.hash(data: event.payload))
            var value: [UInt8] = []
            ProtoWire.appendVarint(1, to: &value)
            try event.payload.withUnsafeBytes { try codec.compress($0, dictionary: nil, into: &value) }
            blob = (key, value)
            encode(payloadRef: key)
            body = try compressRecord(scratch, dictionary: dictionary)
        }
        var leaf = Merkle.leafHasher
        scratch.withUnsafeBytes { leaf.update(bufferPointer: $0) }
        return Prepared(stream: event.stream, body: body, leafState: leaf, blob: blob)
    }

    private func compressRecord(_ envelope: [UInt8], dictionary: ZstdDictionary?) throws -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(envelope.count / 2 + 16)
        ProtoWire.appendVarint(dictionary.map { UInt64($0.id) + 1 } ?? 1, to: &body)
        try envelope.withUnsafeBytes { try codec.compress($0, dictionary: dictionary, into: &body) }
        if body.count >= envelope.count + 1 {
            body.removeAll(keepingCapacity: true)
            body.append(0)
            body.append(contentsOf: envelope)
        }
        return body
    }

    /// Decodes a record's envelope into `envelope` (replacing its contents) and returns the stored tag.
    func envelope(ofRecord record: UnsafeRawBufferPointer, seq: UInt64, _ txn: Transaction, into envelope: inout [UInt8])
        throws -> UInt32
    {
        guard record.count >= 5 else {
            throw LedgerError(.corrupted, "record \(seq) is \(record.count) bytes, too short to be a record")
        }
        var reader = ProtoReader(UnsafeRawBufferPointer(rebasing: record[0..<record.count - 4]))
        let codecWord: UInt64
        do { codecWord = try reader.varint() } catch {
            throw LedgerError(.corrupted, "record \(seq) has a malformed codec header: \(error)")
        }
        let body = UnsafeRawBufferPointer(rebasing: record[reader.offset..<record.count - 4])
        let tag = UInt32(littleEndian: UnsafeRawBufferPointer(rebasing: record[record.count - 4..<record.count]).loadUnaligned(as: UInt32.self))
        switch codecWord {
        case 0:
            envelope.removeAll(keepingCapacity: true)
            envelope.append(contentsOf: body)
        case 1:
            do { try codec.decompress(body, dictionary: nil, into: &envelope) } catch {
                throw LedgerError(.corrupted, "record \(seq) does not decompress: \(error)")
            }
        default:
            guard codecWord <= UInt64(UInt32.max) else {
                throw LedgerError(.corrupted, "record \(seq) names dictionary \(codecWord - 1), out of range")
            }
            let dict = try dictionary(UInt32(codecWord - 1), txn)
            do { try codec.decompress(body, dictionary: dict, into: &envelope) } catch {
                throw LedgerError(.corrupted, "record \(seq) does not decompress: \(error)")
            }
        }
        return tag
    }

    /// Leaf hash of `seq` from its envelope bytes.
    static func leafHash(envelope: [UInt8], seq: UInt64) -> MerkleHash {
        var h = Merkle.leafHasher
        envelope.withUnsafeBytes { h.update(bufferPointer: $0) }
        EnvelopeCodec.withSeqSuffix(seq) { h.update(bufferPointer: $0) }
        return MerkleHash(h.finalize())
    }

    /// Reads and decodes the event at `seq` from a record, resolving a blob payload.
    func decodeEvent(
        record: UnsafeRawBufferPointer, seq: UInt64, _ txn: Transaction,
        scratch: inout [UInt8], cache: inout StringCache
    ) throws -> Event {
        _ = try envelope(ofRecord: record, seq: seq, txn, into: &scratch)
        let d = try scratch.withUnsafeBytes { try EnvelopeCodec.decode($0, cache: &cache) }
        var payload = d.payload ?? Data()
        if let ref = d.payloadRef {
            payload = try blob(ref, seq: seq, txn)
        }
        return Event(
            seq: seq, timestampMicros: d.timestampMicros, actor: d.actor, stream: d.stream, type: d.type,
            schemaVersion: d.schemaVersion, payload: payload, unknownFields: d.unknownFields)
    }

    /// A blob-stored payload, checked against its content address.
    func blob(_ key: [UInt8], seq: UInt64, _ txn: Transaction) throws -> Data {
        guard key.count == 32, let raw = try key.withUnsafeBytes({ try txn.get(blobs, $0) }) else {
            throw LedgerError(.corrupted, "the payload blob of record \(seq) is missing")
        }
        var reader = ProtoReader(raw)
        let codecWord = (try? reader.varint()) ?? UInt64.max
        let body = UnsafeRawBufferPointer(rebasing: raw[reader.offset...])
        var out: [UInt8] = []
        switch codecWord {
        case 0: out = Array(body)
        case 1:
            do { try codec.decompress(body, dictionary: nil, into: &out) } catch {
                throw LedgerError(.corrupted, "the payload blob of record \(seq) does not decompress: \(error)")
            }
        default: throw LedgerError(.corrupted, "the payload blob of record \(seq) has an unknown codec")
        }
        guard Array(SHA256.hash(data: out)) == key else {
            throw LedgerError(.corrupted, "the payload blob of record \(seq) does not match its SHA-256 address")
        }
        return Data(out)
    }

    // MARK: Merkle nodes

    func withNodeKey<T>(level: Int, index: UInt64, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        var key: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (UInt8(level), 0, 0, 0, 0, 0, 0, 0, 0)
        return try withUnsafeMutableBytes(of: &key) { raw in
            raw.storeBytes(of: index.bigEndian, toByteOffset: 1, as: UInt64.self)
            return try body(UnsafeRawBufferPointer(raw))
        }
    }

    func storedNode(level: Int, index: UInt64, _ txn: Transaction) throws -> MerkleHash? {
        try withNodeKey(level: level, index: index) { k in
            try txn.get(merkle, k).map { try MerkleHash(bytes: $0) }
        }
    }

    /// The leaf hash of the event at 0-based `index`, recomputed from its record.
    func leafHash(index: UInt64, _ txn: Transaction, scratch: inout [UInt8]) throws -> MerkleHash {
        let seq = index + 1
        guard let record = try txn.get(events, seq) else {
            throw LedgerError(.outOfRange, "there is no event \(seq)")
        }
        _ = try envelope(ofRecord: record, seq: seq, txn, into: &scratch)
        return Self.leafHash(envelope: scratch, seq: seq)
    }

    /// MTH of leaves [lo, hi): stored nodes for perfect subtrees of >= 16 leaves, rehashing the rest.
    func subtreeHash(_ lo: UInt64, _ hi: UInt64, _ txn: Transaction, scratch: inout [UInt8]) throws -> MerkleHash {
        let n = hi - lo
        if n == 1 { return try leafHash(index: lo, txn, scratch: &scratch) }
        if n & (n - 1) == 0 {
            let level = n.trailingZeroBitCount
            if level >= Self.storedMinLevel, lo % n == 0 {
                guard let node = try storedNode(level: level, index: lo >> UInt64(level), txn) else {
                    throw LedgerError(.corrupted, "the Merkle node over events \(lo + 1)-\(hi) is missing")
                }
                return node
            }
        }
        let k = Merkle.split(n)
        return Merkle.nodeHash(
            try subtreeHash(lo, lo + k, txn, scratch: &scratch), try subtreeHash(lo + k, hi, txn, scratch: &scratch))
    }

    /// The frontier of a tree of `size` leaves, read from stored nodes and the last few records.
    func frontier(size: UInt64, _ txn: Transaction) throws -> MerkleFrontier {
        var nodes: [MerkleFrontier.Node] = []
        var offset: UInt64 = 0
        var scratch: [UInt8] = []
        for level in stride(from: 63, through: 0, by: -1) where size & (1 << UInt64(level)) != 0 {
            let width = UInt64(1) << UInt64(level)
            nodes.append(.init(level: level, hash: try subtreeHash(offset, offset + width, txn, scratch: &scratch)))
            offset += width
        }
        return MerkleFrontier(size: size, nodes: nodes)
    }
}

