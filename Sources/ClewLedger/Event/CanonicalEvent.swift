import ClewCore
public import Foundation

/// An event's canonical bytes — the exact bytes its Merkle leaf hashes (`SHA-256(0x00 || bytes)`) — and
/// what they say. Carried in run bundles so another ledger can check, with an inclusion proof, that an
/// event was in this one before importing it.
public struct CanonicalEvent: Sendable, Hashable {
    public let bytes: Data
    public let seq: UInt64
    public let timestampMicros: Int64
    public let actor: String
    public let stream: String
    public let type: String
    public let schemaVersion: UInt32
    /// The payload when it is inside the envelope (ledgers of format 1 only).
    public let payload: Data?
    /// SHA-256 (hex) of the payload, which the canonical bytes name instead of holding it (every event of
    /// a format 2 ledger; large payloads in format 1).
    public let payloadSHA256: String?
    public let unknownFields: [UInt8]

    /// Parses canonical bytes.
    /// - Throws: ``LedgerError`` (`.corrupted`) when they are not an event envelope with a seq.
    public init(bytes: Data) throws {
        var cache = StringCache()
        let d = try bytes.withUnsafeBytes { try EnvelopeCodec.decode($0, cache: &cache) }
        guard let seq = d.seq, seq > 0 else { throw LedgerError(.corrupted, "canonical event bytes carry no seq") }
        self.bytes = bytes
        self.seq = seq
        self.timestampMicros = d.timestampMicros
        self.actor = d.actor
        self.stream = d.stream
        self.type = d.type
        self.schemaVersion = d.schemaVersion
        self.payload = d.payload
        self.payloadSHA256 = d.payloadRef.map(\.hex)
        self.unknownFields = d.unknownFields
    }

    /// The Merkle leaf hash of these bytes.
    public var leafHash: MerkleHash { Merkle.leafHash(bytes) }
}

extension Ledger {
    /// The canonical bytes of event `seq` (its stored envelope plus its seq), as the Merkle tree hashes them.
    /// - Throws: ``LedgerError`` (`.outOfRange`) when there is no such event.
    public func canonicalEvent(seq: UInt64) throws -> CanonicalEvent {
        let bytes: [UInt8] = try store.env.read { txn in
            var reader = BlockReader(store: store, txn: txn)
            guard let i = try reader.locate(seq) else { throw LedgerError(.outOfRange, "there is no event \(seq)") }
            var out = reader.withEnvelope(i) { Array($0) }
            EnvelopeCodec.appendSeq(seq, to: &out)
            return out
        }
        return try CanonicalEvent(bytes: Data(bytes))
    }
}
