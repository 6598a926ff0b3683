internal import CLMDB
import ClewCore
import Crypto
public import Foundation
import Synchronization

/// What ``Ledger/erasePayloads(of:record:)`` removed.
public struct ErasureReport: Codable, Sendable {
    /// The events whose payloads are gone now (already erased ones included).
    public var erased: [UInt64]
    /// Payload bytes removed (inline and blob).
    public var bytes: Int
    /// Blobs deleted because no other event kept its payload in them.
    public var blobsDeleted: Int
    /// The seq of the event that records the erasure.
    public var recordSeq: UInt64

    enum CodingKeys: String, CodingKey {
        case erased, bytes, blobsDeleted = "blobs_deleted", recordSeq = "record_seq"
    }
}

extension Ledger {
    /// Removes the payloads of the events `seqs` from the log, keeping the events.
    ///
    /// Each event stays with its envelope (time, actor, stream, type) and its payload's SHA-256, which is
    /// what its Merkle leaf commits to: every leaf, node, inclusion and consistency proof and signed
    /// checkpoint holds as before, `verify` still passes (it counts erased payloads), and readers get the
    /// event with an empty payload and ``Event/payloadErased``. `record` builds the event that says who
    /// erased what and why; it is appended first, so an erasure is never done without its record (a
    /// crash after it leaves the payloads in place, and running the erasure again finishes it).
    /// - Throws: ``LedgerError`` `.outOfRange` for a seq the log does not reach, `.readOnly`; nothing is
    ///   removed when it throws.
    public func erasePayloads(of seqs: [UInt64], record: () throws -> NewEvent) async throws -> ErasureReport {
        if options.readOnly { throw LedgerError(.readOnly, "the ledger was opened read-only") }
        let targets = Set(seqs)
        guard !targets.isEmpty else { throw LedgerError(.invalidInput, "no events named to erase") }
        let last = try lastSeq
        if let beyond = targets.first(where: { $0 < 1 || $0 > last }) {
            throw LedgerError(.outOfRange, "there is no event \(beyond) (the log has \(last) events); nothing was erased")
        }
        let recordSeq = try await append(record())
        let dictionary = store.currentDictionary.withLock { $0 }
        let (bytes, blobDigests) = try store.env.write { txn -> (Int, Set<[UInt8]>) in
            var reader = BlockReader(store: store, txn: txn)
            var removed = 0
            var blobs = Set<[UInt8]>()
            var pending = targets.sorted()[...]
            var cache = StringCache()
            while let seq = pending.first {
                guard try reader.locate(seq) != nil else { throw LedgerError(.outOfRange, "there is no event \(seq)") }
                let first = reader.first
                let inBlock = pending.prefix { $0 - first < UInt64(reader.count) }.map { Int($0 - first) }
                pending = pending.dropFirst(inBlock.count)
                // (Each block is rewritten once, with every target in it; the reader's copy of it is not read again.)
                // The block again, with those payloads gone (state 2), compressed anew; tags unchanged.
                var body: [UInt8] = []
                body.reserveCapacity(reader.body.count)
                let erase = Set(inBlock)
                for (i, span) in reader.spans.enumerated() {
                    let envelope = Array(reader.body[span.envelope])
                    ProtoWire.appendVarint(UInt64(envelope.count), to: &body)
                    body.append(contentsOf: envelope)
                    if erase.contains(i), span.state != .erased {
                        if span.state == .blob {
                            let d = try envelope.withUnsafeBytes { try EnvelopeCodec.decode($0, cache: &cache) }
                            if let ref = d.payloadRef { blobs.insert(ref) }
                        }
                        removed += span.payload.count
                        ProtoWire.appendVarint(UInt64(Block.PayloadState.erased.rawValue), to: &body)
                    } else {
                        ProtoWire.appendVarint(UInt64(span.payload.count) << 2 | UInt64(span.state.rawValue), to: &body)
                        body.append(contentsOf: reader.body[span.payload])
                    }
                }
                var record: [UInt8] = []
                ProtoWire.appendVarint(UInt64(reader.count), to: &record)
                for tag in reader.tags { withUnsafeBytes(of: tag.littleEndian) { record.append(contentsOf: $0) } }
                record.append(contentsOf: try store.compressBody(body, dictionary: dictionary))
                _ = try withUnsafeBytes(of: first.bigEndian) { key in
                    try record.withUnsafeBytes { try txn.put(store.blocks, key, $0) }
                }
            }
            return (removed, blobs)
        }
        // A blob goes only when no event keeps its payload there any more (blobs are content-addressed:
        // another event with the same payload shares it).
        var deleted = 0
        if !blobDigests.isEmpty {
            var stillUsed = Set<[UInt8]>()
            try scanEnvelopes { digest, state in if state == .blob, blobDigests.contains(digest) { stillUsed.insert(digest) } }
            let gone = blobDigests.subtracting(stillUsed)
            try store.env.write { txn in
                for digest in gone {
                    try digest.withUnsafeBytes { try txn.delete(store.blobs, $0) }
                    deleted += 1
                }
            }
        }
        return ErasureReport(erased: targets.sorted(), bytes: bytes, blobsDeleted: deleted, recordSeq: recordSeq)
    }

    /// Calls `body` with each event's payload SHA-256 and payload state, in log order.
    func scanEnvelopes(_ body: ([UInt8], Block.PayloadState) throws -> Void) throws {
        var next: UInt64 = 1
        var cache = StringCache()
        var more = true
        while more {
            more = try store.env.read { txn in
                var reader = BlockReader(store: store, txn: txn)
                var n = 0
                while let i = try reader.locate(next) {
                    for j in i..<reader.count {
                        let d = try reader.withEnvelope(j) { try EnvelopeCodec.decode($0, cache: &cache) }
                        try body(d.payloadRef ?? [], reader.spans[j].state)
                    }
                    n += reader.count - i
                    next = reader.first + UInt64(reader.count)
                    if n >= Self.scanChunk { return true }
                }
                return false
            }
        }
    }
}
