internal import CLMDB
import Crypto
import Foundation
import Synchronization

/// The log's LMDB environment and its tables, and the record format. Knows bytes, not domain.
///
/// Tables (named databases of the `log/` environment), format 2:
/// - `blocks`: first seq (u64 big-endian) -> block of consecutive events (``Block``). Appended with
///   `MDB_APPEND`; the blocks cover seqs 1...n with no gap.
/// - `streams`: stream id -> seq, sorted duplicates (the stream index).
/// - `merkle`: a node's key (``LogStore/NodeKeys``) -> 32-byte hash of each perfect subtree of 2^level
///   leaves, for levels >= ``LogStore/storedMinLevel`` (smaller subtrees are rehashed from their <= 15
///   events).
/// - `blobs`: SHA-256 of a payload -> compressed payload, for payloads above ``Block/blobThreshold``.
/// - `dicts`: dictionary id (u32 BE) -> zstd dictionary.
/// - `checkpoints`: tree size (u64 BE) -> signed checkpoint (JSON).
/// - `meta`: the current dictionary id; how the `merkle` table's keys are laid out.
///
/// Format 1 (one zstd frame per event in an `events` table, payloads inside the leaf) is read only by
/// `clew migrate` (``LegacyLog``).
final class LogStore: Sendable {
    static let storedMinLevel = 4
    static let formatVersion: UInt32 = 2

    let env: Environment
    let blocks: Database
    let streams: Database
    let merkle: Database
    let blobs: Database
    let dicts: Database
    let checkpoints: Database
    let meta: Database
    /// How the `merkle` table's keys are laid out, fixed when the ledger's first node is written.
    let nodeKeys: NodeKeys
    let codec: ZstdCodec
    /// The shared log this LMDB log is a replica of (its location), or nil for a ledger of its own. A
    /// replica takes only copies of the shared log's events.
    let replicaOf: String?
    private let dictionaries = Mutex<[UInt32: ZstdDictionary]>([:])
    /// Dictionary new blocks are compressed with (nil until the first one is trained).
    let currentDictionary = Mutex<ZstdDictionary?>(nil)
    /// Record / uncompressed body size of recent blocks (a moving average), from which the uncompressed
    /// size a block collects is chosen so that its record takes about ``Block/recordTarget`` bytes.
    let compressionRatio = Mutex<Double>(0.3)

    /// The uncompressed body size at which a block is closed.
    var blockTarget: Int { Self.blockTarget(ratio: compressionRatio.withLock { $0 }) }

    static func blockTarget(ratio: Double) -> Int {
        min(Block.maxTargetBytes, max(Block.minTargetBytes, Int(Double(Block.recordTarget) / max(ratio, 0.01))))
    }

    init(env: Environment, compressionLevel: Int32, replicaOf: String? = nil) throws {
        self.env = env
        self.replicaOf = replicaOf
        self.codec = ZstdCodec(level: compressionLevel)
        blocks = try env.openDatabase("blocks")
        streams = try env.openDatabase("streams", flags: MDB_DUPSORT | MDB_DUPFIXED)
        merkle = try env.openDatabase("merkle")
        blobs = try env.openDatabase("blobs")
        dicts = try env.openDatabase("dicts")
        checkpoints = try env.openDatabase("checkpoints")
        meta = try env.openDatabase("meta")
        nodeKeys = try Self.nodeKeys(env: env, merkle: merkle, meta: meta)
        try env.read { txn in try refreshDictionary(txn) }
    }

    // MARK: Merkle node keys

    /// The layouts of the `merkle` table's keys (9 bytes each).
    enum NodeKeys: Sendable, Equatable {
        /// level (u8) ‖ index (u64 BE): ledgers whose first node was written before 2026-12-05. Each
        /// level's nodes go to the end of their own key range, so a group commit of 1,000 events dirtied
        /// one leaf page per level touched (~10 of its 44 pages) and left the table's pages half full.
        case levelIndex
        /// end (u64 BE) ‖ level (u8), where end = (index + 1) · 2^level is the tree's size when the node
        /// was completed: keys in the order nodes are completed (by size, then level), so every node is
        /// put at the table's end (`MDB_APPEND`) and a group commit dirties one or two of its pages.
        case completion
    }

    static let nodeKeysKey = Array("merkle.keys".utf8)

    /// The layout recorded in `meta`; a ledger without a record keeps ``NodeKeys/levelIndex`` when its
    /// table holds nodes, and takes ``NodeKeys/completion`` (recorded, when the ledger is writable)
    /// while it holds none.
    private static func nodeKeys(env: Environment, merkle: Database, meta: Database) throws -> NodeKeys {
        func decide(_ txn: Transaction) throws -> (NodeKeys, record: Bool) {
            if let raw = try nodeKeysKey.withUnsafeBytes({ try txn.get(meta, $0) }) {
                guard raw.count == 1, raw[0] == 2 else {
                    throw LedgerError(.corrupted, "the log's meta table names a Merkle key layout this version does not know (\(Array(raw)))")
                }
                return (.completion, false)
            }
            return try txn.stat(merkle).entries == 0 ? (.completion, true) : (.levelIndex, false)
        }
        // Read first: a write (and LMDB's writer lock, which another process may hold for a while) only
        // for a ledger with no node and no record yet, decided again inside it.
        let (keys, record) = try env.read { try decide($0) }
        guard record, !env.options.readOnly else { return keys }
        return try env.write { txn in
            let (keys, record) = try decide(txn)
            if record { _ = try nodeKeysKey.withUnsafeBytes { k in try [UInt8(2)].withUnsafeBytes { try txn.put(meta, k, $0) } } }
            return keys
        }
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

    // MARK: Blocks

    /// Last seq in the log (0 when empty): the last block's first seq and count.
    func lastSeq(_ txn: Transaction) throws -> UInt64 {
        try txn.withCursor(blocks) { c in
            guard let e = try c.last() else { return 0 }
            let first = e.key.bigEndianUInt64
            return first + UInt64(try Block.parse(e.value, first: first).count) - 1
        }
    }

    /// The seq of the last event of `stream` (0 when it has none).
    func lastSeq(inStream stream: String, _ txn: Transaction) throws -> UInt64 {
        var key = stream
        return try key.withUTF8 { k in
            try txn.withCursor(streams) { c in
                guard try c.find(UnsafeRawBufferPointer(k)) != nil, let e = try c.lastDuplicate() else { return 0 }
                return e.value.bigEndianUInt64
            }
        }
    }

    /// Encodes, compresses and pre-hashes `events` as blocks (on the caller's thread).
    /// - Throws: ``LedgerError`` `.invalidInput` naming the bad event (by its index in `events`).
    func prepare(_ events: [NewEvent], now: Int64, dictionary: ZstdDictionary?) throws -> [PreparedBlock] {
        try prepare(events[...], of: events.count, now: now, dictionary: dictionary)
    }

    /// Encodes, compresses and pre-hashes a part of a batch of `total` events as blocks of its own (on
    /// the caller's thread), naming a bad event by its index in the whole batch.
    func prepare(_ events: ArraySlice<NewEvent>, of total: Int, now: Int64, dictionary: ZstdDictionary?) throws -> [PreparedBlock] {
        var out: [PreparedBlock] = []
        var block = PreparedBlock()
        var body: [UInt8] = []
        var starts: [Int] = []  // where each event of the block begins in `body`
        var target = blockTarget
        body.reserveCapacity(target + 4096)
        var envelope: [UInt8] = []
        envelope.reserveCapacity(256)
        // Compresses events `range` of the block; a record over ``Block/recordLimit`` is split in two and
        // compressed again (rarely: the target follows the ratio).
        func emit(_ range: Range<Int>) throws {
            let end = range.upperBound == block.count ? body.count : starts[range.upperBound]
            let encoded = try compressBody(body[starts[range.lowerBound]..<end], dictionary: dictionary)
            if Block.recordSize(count: range.count, encoded: encoded.count) > Block.recordLimit, range.count > 1 {
                let mid = range.lowerBound + range.count / 2
                try emit(range.lowerBound..<mid)
                try emit(mid..<range.upperBound)
                return
            }
            var part = PreparedBlock()
            part.streams = block.streams[range]
            part.streams.sortForIndex()
            part.leafStates = Array(block.leafStates[range])
            part.encoded = encoded
            if range.lowerBound == 0 { part.blobs = block.blobs }  // content-addressed: any block may carry them
            out.append(part)
        }
        func finish() throws {
            guard block.count > 0 else { return }
            let before = out.count
            try emit(0..<block.count)
            let written = out[before...].reduce(0) { $0 + Block.recordSize(count: $1.count, encoded: $1.encoded.count) }
            let ratio = Double(written) / Double(max(1, body.count))
            target = Self.blockTarget(ratio: compressionRatio.withLock { average in
                average = average * 0.8 + ratio * 0.2
                return average
            })
            block = PreparedBlock()
            body.removeAll(keepingCapacity: true)
            starts.removeAll(keepingCapacity: true)
        }
        for i in events.indices {
            let event = events[i]
            try event.validate(index: i, of: total)
            envelope.removeAll(keepingCapacity: true)
            let digest: MerkleHash?
            if let ref = event.erasedPayloadRef {
                digest = nil
                ref.withUnsafeBytes { Self.encodeEnvelope(event, ref: $0, now: now, into: &envelope) }
            } else {
                let d = SHA256State.hash(event.payload)
                d.withUnsafeBytes { Self.encodeEnvelope(event, ref: $0, now: now, into: &envelope) }
                digest = d
            }
            var leaf = Merkle.leafHasher
            envelope.withUnsafeBytes { leaf.update($0) }
            starts.append(body.count)
            if let digest, event.payload.count > Block.blobThreshold {
                var value: [UInt8] = []
                ProtoWire.appendVarint(1, to: &value)
                try event.payload.withUnsafeBytes { try codec.compress($0, dictionary: nil, into: &value) }
                block.blobs.append((digest.bytes, value))
                envelope.withUnsafeBytes { Block.appendEntry(envelope: $0, payload: nil, state: .blob, to: &body) }
            } else if digest == nil {
                envelope.withUnsafeBytes { Block.appendEntry(envelope: $0, payload: nil, state: .erased, to: &body) }
            } else if event.unknownFields.isEmpty {
                // The envelope ends with field 8, the payload's SHA-256: stored without it (state 3), since
                // it is computed again from the payload beside it.
                event.payload.withUnsafeBytes { payload in
                    envelope.withUnsafeBytes {
                        Block.appendEntry(
                            envelope: UnsafeRawBufferPointer(rebasing: $0[..<($0.count - Block.digestFieldSize)]), payload: payload,
                            state: .inlineDigestImplied, to: &body)
                    }
                }
            } else {
                event.payload.withUnsafeBytes { payload in
                    envelope.withUnsafeBytes { Block.appendEntry(envelope: $0, payload: payload, state: .inline, to: &body) }
                }
            }
            block.streams.append(event.stream)
            block.leafStates.append(leaf)
            if block.count >= Block.maxEvents || body.count >= target { try finish() }
        }
        try finish()
        return out
    }

    /// The stored envelope of `event` (format 2: its payload named by `digest`), stamped `now` when the
    /// event carries no time.
    static func encodeEnvelope(_ event: NewEvent, digest: SHA256Digest, now: Int64, into envelope: inout [UInt8]) {
        digest.withUnsafeBytes { encodeEnvelope(event, ref: $0, now: now, into: &envelope) }
    }

    /// The stored envelope of `event`, its payload named by the SHA-256 `ref`.
    static func encodeEnvelope(_ event: NewEvent, ref: UnsafeRawBufferPointer, now: Int64, into envelope: inout [UInt8]) {
        EnvelopeCodec.encode(
            timestampMicros: event.timestampMicros ?? now, actor: event.actor, stream: event.stream, type: event.type,
            schemaVersion: event.schemaVersion, payloadRef: ref, unknownFields: event.unknownFields, into: &envelope)
    }


    /// The codec word and the body, compressed unless that would not make it smaller.
    func compressBody(_ body: ArraySlice<UInt8>, dictionary: ZstdDictionary?) throws -> [UInt8] {
        // No capacity reserved: `compress` makes the array the frame goes into, after this codec word.
        var out: [UInt8] = []
        ProtoWire.appendVarint(dictionary.map { UInt64($0.id) + 1 } ?? 1, to: &out)
        try body.withUnsafeBytes { try codec.compress($0, dictionary: dictionary, into: &out) }
        if out.count >= body.count + 1 {
            out.removeAll(keepingCapacity: true)
            out.append(0)
            out.append(contentsOf: body)
        }
        return out
    }

    /// Leaf hash of `seq` from its envelope bytes.
    static func leafHash(envelope: UnsafeRawBufferPointer, seq: UInt64) -> MerkleHash {
        var h = Merkle.leafHasher
        h.update(envelope)
        EnvelopeCodec.withSeqSuffix(seq) { h.update($0) }
        return h.finalize()
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

    /// The key of the node over leaves [index·2^level, (index+1)·2^level), in this ledger's layout.
    func withNodeKey<T>(level: Int, index: UInt64, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        var key: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        return try withUnsafeMutableBytes(of: &key) { raw in
            switch nodeKeys {
            case .levelIndex:
                raw[0] = UInt8(level)
                raw.storeBytes(of: index.bigEndian, toByteOffset: 1, as: UInt64.self)
            case .completion:
                raw.storeBytes(of: ((index + 1) << UInt64(level)).bigEndian, toByteOffset: 0, as: UInt64.self)
                raw[8] = UInt8(level)
            }
            return try body(UnsafeRawBufferPointer(raw))
        }
    }

    func storedNode(level: Int, index: UInt64, _ txn: Transaction) throws -> MerkleHash? {
        try withNodeKey(level: level, index: index) { k in
            try txn.get(merkle, k).map { try MerkleHash(bytes: $0) }
        }
    }

    /// The leaf hash of the event at 0-based `index`, recomputed from its block.
    func leafHash(index: UInt64, _ reader: inout BlockReader) throws -> MerkleHash {
        guard let i = try reader.locate(index + 1) else {
            throw LedgerError(.outOfRange, "there is no event \(index + 1)")
        }
        return reader.leafHash(i)
    }

    /// MTH of leaves [lo, hi): stored nodes for perfect subtrees of >= 16 leaves, rehashing the rest.
    func subtreeHash(_ lo: UInt64, _ hi: UInt64, _ reader: inout BlockReader) throws -> MerkleHash {
        let n = hi - lo
        if n == 1 { return try leafHash(index: lo, &reader) }
        if n & (n - 1) == 0 {
            let level = n.trailingZeroBitCount
            if level >= Self.storedMinLevel, lo % n == 0 {
                guard let node = try storedNode(level: level, index: lo >> UInt64(level), reader.txn) else {
                    throw LedgerError(.corrupted, "the Merkle node over events \(lo + 1)-\(hi) is missing")
                }
                return node
            }
        }
        let k = Merkle.split(n)
        return Merkle.nodeHash(
            try subtreeHash(lo, lo + k, &reader), try subtreeHash(lo + k, hi, &reader))
    }

    /// The frontier of a tree of `size` leaves, read from stored nodes and the last few records.
    func frontier(size: UInt64, _ txn: Transaction) throws -> MerkleFrontier {
        var nodes: [MerkleFrontier.Node] = []
        var offset: UInt64 = 0
        var reader = BlockReader(store: self, txn: txn)
        for level in stride(from: 63, through: 0, by: -1) where size & (1 << UInt64(level)) != 0 {
            let width = UInt64(1) << UInt64(level)
            nodes.append(.init(level: level, hash: try subtreeHash(offset, offset + width, &reader)))
            offset += width
        }
        return MerkleFrontier(size: size, nodes: nodes)
    }
}

