public import Foundation

/// A log kept by a server that many hosts share (PostgreSQL, in `ClewPostgres`), as the ledger needs it:
/// append a batch with gap-free seqs, read what follows a seq, and hear of appends. The format is the
/// ledger's own: each record is the stored envelope (canonical bytes without the seq) and the payload it
/// names by SHA-256, and every batch commits to the Merkle root of the log it completes, so a replica
/// checks what it copies against roots the appenders computed.
///
/// A ``Ledger`` over a shared log (``Ledger/replica(of:at:options:)``) keeps a local LMDB replica of it:
/// appends go to the shared log and return once the replica holds them; every read, view, proof and
/// replay is served from the replica, so they cost the server nothing and work as on one host.
public protocol SharedLog: Sendable {
    /// The log's identity (also the origin line of its checkpoints, on every host).
    var id: String { get }
    /// Where the log is, for messages (no password).
    var location: String { get }

    /// Appends `records` atomically with consecutive seqs after the current last one, in one
    /// transaction, and returns the seqs. A batch retried after a lost connection with the same `batch`
    /// id is applied once: the retry returns the seqs the first attempt got.
    /// - Parameters:
    ///   - expectations: the batch is appended only if each stream's last seq is still the one given
    ///     (``LedgerError/Code/conflict`` otherwise, with nothing written).
    ///   - erasing: events whose payloads the batch (an erasure's record, its only event) removes, in the
    ///     same transaction: their rows keep envelope and digest, lose the payload, and are listed under
    ///     the record's seq (``erasures(recordedIn:)``) for every replica to erase in turn.
    ///     ``LedgerError/Code/outOfRange`` for a seq the log does not reach.
    func append(
        _ records: [SharedRecord], batch: UUID, expecting expectations: [StreamExpectation], erasing: [UInt64]
    ) async throws -> Range<UInt64>

    /// The erasures recorded by the events `records`: for each erasure record's seq, the seqs whose
    /// payloads it removed.
    func erasures(recordedIn records: ClosedRange<UInt64>) async throws -> [UInt64: [UInt64]]

    /// Stores a signed checkpoint for every host (one per tree size: signing a size again replaces it).
    /// - Throws: ``LedgerError/Code/outOfRange`` when the log does not reach the checkpoint's size.
    func storeCheckpoint(_ checkpoint: SignedCheckpoint) async throws

    /// Every stored checkpoint, smallest tree size first.
    func checkpoints() async throws -> [SignedCheckpoint]

    /// A setting every host shares (such as the retention policy), nil when never set.
    func setting(_ key: String) async throws -> String?

    /// Sets a shared setting.
    func setSetting(_ key: String, to value: String) async throws

    /// Records after `seq`, in order, at most `limit`.
    func records(after seq: UInt64, limit: Int) async throws -> [SharedRecord]

    /// The roots recorded at the end of each batch whose last seq is in `sizes`.
    func batchRoots(_ sizes: ClosedRange<UInt64>) async throws -> [(size: UInt64, root: MerkleHash)]

    /// The last seq and the root of the whole log, as the server holds them now.
    func head() async throws -> (size: UInt64, root: MerkleHash)

    /// Yields (at least) once after each append by anyone, and once after every reconnection; finishes
    /// when the log is closed.
    func appends() -> AsyncStream<Void>

    /// Runs `body` while this process holds the leadership called `name` among every process of
    /// every host using the log: waits until no one else holds it (asking again every `poll`), runs
    /// `body`, and cancels it if the leadership is lost (the server stopped answering this process).
    /// - Returns: true when the leadership was lost, false when `body` returned.
    func lead(_ name: String, poll: Duration, _ body: @escaping @Sendable () async -> Void) async throws -> Bool

    /// Closes connections (without waiting for them to finish closing).
    func close()
}

extension SharedLog {
    /// Appends `records` (no payload erased); see ``append(_:batch:expecting:erasing:)``.
    public func append(_ records: [SharedRecord], batch: UUID, expecting expectations: [StreamExpectation]) async throws -> Range<UInt64> {
        try await append(records, batch: batch, expecting: expectations, erasing: [])
    }
}

/// One event in a shared log.
public struct SharedRecord: Sendable, Hashable {
    /// 0 until the log assigns it.
    public var seq: UInt64
    /// The stored envelope: timestamp, actor, stream, type, schema version and the payload's SHA-256.
    public var envelope: [UInt8]
    /// Empty when ``payloadErased``.
    public var payload: [UInt8]
    /// Whether an erasure removed the payload (the envelope still names its SHA-256).
    public var payloadErased: Bool
    /// Columns the server indexes (also inside `envelope`).
    public var stream: String
    public var type: String
    public var timestampMicros: Int64

    public init(
        seq: UInt64, envelope: [UInt8], payload: [UInt8], payloadErased: Bool = false, stream: String, type: String, timestampMicros: Int64
    ) {
        self.seq = seq
        self.envelope = envelope
        self.payload = payload
        self.payloadErased = payloadErased
        self.stream = stream
        self.type = type
        self.timestampMicros = timestampMicros
    }

    /// The record's Merkle leaf at `seq`.
    public func leafHash(seq: UInt64) -> MerkleHash {
        envelope.withUnsafeBytes { LogStore.leafHash(envelope: $0, seq: seq) }
    }
}

/// "Append only if this stream's last event is still `lastSeq`" (0: the stream has no event yet): what
/// makes a claim or a lease taken from what was read atomic across processes and hosts.
///
/// With a ``scope``, the stream may have moved on with events about other things: only an event after
/// `lastSeq` that the scope says may concern what was read is a conflict (workers writing different
/// chunks of one dataset do not conflict with each other).
public struct StreamExpectation: Sendable, Hashable {
    public var stream: String
    public var lastSeq: UInt64
    /// What the writer read from the stream; nil: all of it.
    public var scope: PayloadScope?

    public init(stream: String, lastSeq: UInt64, scope: PayloadScope? = nil) {
        self.stream = stream
        self.lastSeq = lastSeq
        self.scope = scope
    }
}

/// The events of a stream that concern some things: those whose payload (a JSON object) has `field`
/// equal to one of `values`. An event whose payload is not such an object, lacks the field, or was
/// erased may concern anything, so it is in every scope.
public struct PayloadScope: Sendable, Hashable {
    public var field: String
    public var values: Set<String>

    public init(field: String, values: Set<String>) {
        self.field = field
        self.values = values
    }

    /// Whether an event with this payload may concern what the scope names.
    public func contains(payload: Data, erased: Bool = false) -> Bool {
        guard !erased, let object = try? JSONSerialization.jsonObject(with: payload) as? [String: Any],
            let value = object[field] as? String
        else { return true }
        return values.contains(value)
    }
}


/// The right edge of a shared log's Merkle tree, kept by the server beside its last seq so that each
/// appender extends the tree under the server's lock without reading the log.
public struct SharedLogHead: Sendable, Equatable {
    private var frontier: MerkleFrontier

    /// An empty log's head.
    public init() { frontier = MerkleFrontier() }

    /// A head stored as ``bytes`` for a log of `size` events.
    /// - Throws: ``LedgerError`` (`.corrupted`) when the bytes are not a frontier of that size.
    public init(size: UInt64, bytes: [UInt8]) throws {
        guard bytes.count % 33 == 0 else {
            throw LedgerError(.corrupted, "the shared log's stored Merkle frontier is \(bytes.count) bytes, not a multiple of 33")
        }
        var nodes: [MerkleFrontier.Node] = []
        var covered: UInt64 = 0
        for i in stride(from: 0, to: bytes.count, by: 33) {
            let level = Int(bytes[i])
            guard level < 64 else { throw LedgerError(.corrupted, "the shared log's Merkle frontier names level \(level)") }
            nodes.append(.init(level: level, hash: try MerkleHash(bytes: bytes[(i + 1)..<(i + 33)])))
            covered += 1 << UInt64(level)
        }
        guard covered == size, zip(nodes, nodes.dropFirst()).allSatisfy({ $0.level > $1.level }) else {
            throw LedgerError(.corrupted, "the shared log's Merkle frontier does not describe a tree of \(size) events")
        }
        frontier = MerkleFrontier(size: size, nodes: nodes)
    }

    public var size: UInt64 { frontier.size }
    public var root: MerkleHash { frontier.root }

    /// The frontier as stored: per node, its level (1 byte) and hash (32 bytes), largest first.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frontier.nodes.count * 33)
        for node in frontier.nodes {
            out.append(UInt8(node.level))
            out.append(contentsOf: node.hash.bytes)
        }
        return out
    }

    /// Adds the record as event `size + 1` and returns its seq.
    @discardableResult
    public mutating func append(_ record: SharedRecord) -> UInt64 {
        let seq = frontier.size + 1
        frontier.append(record.leafHash(seq: seq)) { _, _, _ in }
        return seq
    }
}
