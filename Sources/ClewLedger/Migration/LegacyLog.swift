internal import CLMDB
import ClewCore
import Crypto
import Foundation

/// A read-only view of a format 1 log, for `clew migrate` alone.
///
/// Format 1 kept one record per event in the `events` table: a codec varint (0 plain, 1 zstd, n ≥ 2 zstd
/// with dictionary n − 1), the envelope (payload inline in field 7, or its SHA-256 in field 8 with the
/// bytes in `blobs`), then the first 4 bytes of the event's leaf hash. Its leaf was SHA-256(0x00 ‖
/// envelope ‖ seq) over that envelope, so a leaf committed to an inline payload's bytes.
struct LegacyLog {
    let env: Environment
    let events: Database
    let blobs: Database
    let dicts: Database
    let checkpoints: Database
    let codec: ZstdCodec

    init(path: String) throws {
        var options = Environment.Options()
        options.readOnly = true
        env = try Environment(path: path, options: options)
        events = try env.openDatabase("events")
        blobs = try env.openDatabase("blobs")
        dicts = try env.openDatabase("dicts")
        checkpoints = try env.openDatabase("checkpoints")
        codec = ZstdCodec(level: 3)
    }

    func close() { env.close() }

    /// One event as format 1 stored it, with its format 1 leaf hash.
    struct Record {
        var event: Event
        var leaf: MerkleHash
    }

    /// Up to `limit` events from seq `from` on, in order, each record checked against its tag, the seqs
    /// for gaps and blob payloads against their addresses. Empty past the end.
    func records(from: UInt64, limit: Int, dictionaries: inout [UInt32: ZstdDictionary]) throws -> [Record] {
        var expected = from
        var scratch: [UInt8] = []
        var cache = StringCache()
        var out: [Record] = []
        do {
            _ = try env.read { txn in
                try txn.withCursor(events) { c in
                    var entry = try c.seek(expected)
                    while let e = entry {
                        let seq = e.key.bigEndianUInt64
                        guard seq == expected else {
                            throw LedgerError(.corrupted, "the format 1 log jumps from event \(expected - 1) to \(seq); nothing was migrated")
                        }
                        let record = e.value
                        guard record.count >= 5 else { throw LedgerError(.corrupted, "format 1 record \(seq) is too short") }
                        var reader = ProtoReader(UnsafeRawBufferPointer(rebasing: record[0..<record.count - 4]))
                        let word = try reader.varint()
                        let frame = UnsafeRawBufferPointer(rebasing: record[reader.offset..<record.count - 4])
                        let tag = UInt32(littleEndian: UnsafeRawBufferPointer(rebasing: record[record.count - 4..<record.count]).loadUnaligned(as: UInt32.self))
                        switch word {
                        case 0:
                            scratch = Array(frame)
                        case 1:
                            try codec.decompress(frame, dictionary: nil, into: &scratch)
                        default:
                            let id = UInt32(truncatingIfNeeded: word - 1)
                            if dictionaries[id] == nil {
                                guard let bytes = try withUnsafeBytes(of: id.bigEndian, { try txn.get(dicts, $0) }) else {
                                    throw LedgerError(.corrupted, "format 1 record \(seq) names dictionary \(id), which the ledger does not have")
                                }
                                dictionaries[id] = try ZstdDictionary(id: id, bytes: Array(bytes), level: 3)
                            }
                            try codec.decompress(frame, dictionary: dictionaries[id], into: &scratch)
                        }
                        let leaf = scratch.withUnsafeBytes { LogStore.leafHash(envelope: $0, seq: seq) }
                        guard leaf.tag == tag else {
                            throw LedgerError(.corrupted, "format 1 record \(seq) does not match its hash tag; run `clew verify` on the old ledger; nothing was migrated")
                        }
                        let d = try scratch.withUnsafeBytes { try EnvelopeCodec.decode($0, cache: &cache) }
                        var payload = d.payload ?? Data()
                        if let ref = d.payloadRef {
                            guard let raw = try ref.withUnsafeBytes({ try txn.get(blobs, $0) }) else {
                                throw LedgerError(.corrupted, "the payload blob of format 1 record \(seq) is missing")
                            }
                            var r = ProtoReader(raw)
                            let blobCodec = try r.varint()
                            var out: [UInt8] = []
                            let rest = UnsafeRawBufferPointer(rebasing: raw[r.offset...])
                            if blobCodec == 0 { out = Array(rest) } else { try codec.decompress(rest, dictionary: nil, into: &out) }
                            guard Array(SHA256.hash(data: out)) == ref else {
                                throw LedgerError(.corrupted, "the payload blob of format 1 record \(seq) does not match its SHA-256")
                            }
                            payload = Data(out)
                        }
                        let event = Event(
                            seq: seq, timestampMicros: d.timestampMicros, actor: d.actor, stream: d.stream, type: d.type,
                            schemaVersion: d.schemaVersion, payload: payload, unknownFields: d.unknownFields)
                        out.append(Record(event: event, leaf: leaf))
                        expected = seq + 1
                        if out.count == limit { return false }
                        entry = try c.next()
                    }
                    return true
                }
            }
        }
        return out
    }

    /// The checkpoints format 1 stored, oldest first.
    func storedCheckpoints() throws -> [SignedCheckpoint] {
        try env.read { txn in
            try txn.withCursor(checkpoints) { c in
                var out: [SignedCheckpoint] = []
                var entry = try c.first()
                while let e = entry {
                    out.append(try JSONDecoder().decode(SignedCheckpoint.self, from: Data(e.value)))
                    entry = try c.next()
                }
                return out
            }
        }
    }
}
