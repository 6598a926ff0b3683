internal import CLMDB
import ClewCore
import Crypto
import Foundation
import Synchronization

/// What ``Ledger/erasePayloads(of:record:)`` removed.
public struct ErasureReport: Codable, Sendable {
    /// The events whose payloads are gone now (already erased ones included).
    public var erased: [UInt64]
    /// Payload bytes removed from blocks (blob-stored payloads are counted in ``blobsDeleted``).
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
    ///
    /// Over a shared log, the record (whose type must be ``erasureRecordType``) and the removal of the
    /// payloads from the server's rows commit in one transaction; this replica erases them at once, and
    /// every other host's replica (and `clew mirror` copy) when it copies the record.
    public func erasePayloads(of seqs: [UInt64], record: () throws -> NewEvent) async throws -> ErasureReport {
        if refusesAppends { throw LedgerError(.readOnly, "the ledger was opened read-only") }
        let targets = Set(seqs)
        guard !targets.isEmpty else { throw LedgerError(.invalidInput, "no events named to erase") }
        let last = upstream == nil ? try lastSeq : try await pull()
        if let beyond = targets.first(where: { $0 < 1 || $0 > last }) {
            throw LedgerError(.outOfRange, "there is no event \(beyond) (the log has \(last) events); nothing was erased")
        }
        if let log = upstream {
            let event = try record()
            guard event.type == Self.erasureRecordType else {
                throw LedgerError(.invalidInput, "an erasure over a shared log is recorded by a \(Self.erasureRecordType) event, not \(event.type)")
            }
            let now = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
            let range = try await log.append(try Self.sharedRecords([event], now: now), batch: UUID(), expecting: [], erasing: targets.sorted())
            let removed = try eraseLocally(targets)
            try await pull(through: range.upperBound - 1)
            return ErasureReport(erased: targets.sorted(), bytes: removed.bytes, blobsDeleted: removed.blobsDeleted, recordSeq: range.lowerBound)
        }
        let recordSeq = try await append(record())
        let removed = try eraseLocally(targets)
        return ErasureReport(erased: targets.sorted(), bytes: removed.bytes, blobsDeleted: removed.blobsDeleted, recordSeq: recordSeq)
    }

    /// The type of the event that records an erasure (`clew erase`, `clew retention`); a replica that
    /// copies one from its shared log erases what it names.
    public static let erasureRecordType = "ledger.payloads_erased"

    /// Rewrites the blocks holding `targets` with their payloads erased (those already erased stay so),
    /// and deletes the blobs no other event keeps. Appends nothing.
    func eraseLocally(_ targets: Set<UInt64>) throws -> (bytes: Int, blobsDeleted: Int) {
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
                // The block again, with every target in it erased (state 2), compressed anew; tags unchanged.
                // Each block is rewritten once, so the reader's copy of it is not read again.
                let erase = Set(pending.prefix { $0 - first < UInt64(reader.count) }.map { Int($0 - first) })
                pending = pending.dropFirst(erase.count)
                // Already erased (a replica copying the record of an erasure it made itself): nothing to rewrite.
                if erase.allSatisfy({ reader.spans[$0].state == .erased }) { continue }
                var body: [UInt8] = []
                body.reserveCapacity(reader.body.count)
                try reader.body.withUnsafeBytes { raw in
                    for (i, span) in reader.spans.enumerated() {
                        let envelope = UnsafeRawBufferPointer(rebasing: raw[span.envelope])
                        let payload = UnsafeRawBufferPointer(rebasing: raw[span.payload])
                        if erase.contains(i), span.state != .erased {
                            if span.state == .blob, let ref = try EnvelopeCodec.decode(envelope, cache: &cache).payloadRef { blobs.insert(ref) }
                            removed += span.payload.count
                            // An erased payload's digest must be stored: it can no longer be computed.
                            Block.withCanonicalEnvelope(stored: envelope, payload: payload, state: span.state) {
                                Block.appendEntry(envelope: $0, payload: nil, state: .erased, to: &body)
                            }
                        } else {
                            Block.appendEntry(envelope: envelope, payload: payload, state: span.state, to: &body)
                        }
                    }
                }
                let record = Block.record(tags: reader.tags, encoded: try store.compressBody(body[...], dictionary: dictionary))
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
            try visit { reader, i, cache in
                guard reader.spans[i].state == .blob else { return true }
                if let digest = try reader.withEnvelope(i, { try EnvelopeCodec.decode($0, cache: &cache) }).payloadRef,
                    blobDigests.contains(digest)
                {
                    stillUsed.insert(digest)
                }
                return true
            }
            let gone = blobDigests.subtracting(stillUsed)
            try store.env.write { txn in
                for digest in gone {
                    try digest.withUnsafeBytes { try txn.delete(store.blobs, $0) }
                    deleted += 1
                }
            }
        }
        return (bytes, deleted)
    }

}
