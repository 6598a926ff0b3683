import ClewCore
import Crypto
import Dispatch
import Foundation
import Synchronization

/// What `clew bench ledger` (ClewBenchmarks) measures inside the ledger, through `package` access so the
/// log's internals stay internal.
extension Ledger {
    /// Returns when the writer has committed everything handed to it.
    package func waitForIdle() { writer.waitForIdle() }

    /// The group commits this ledger's writer made since it was opened: the append calls and events
    /// they held (how many appenders' batches shared each commit's syncs), and the writer's time on them.
    package var commitStats: CommitStats { writer.commitStats }

    /// The bytes of the stored blocks (keys and values), of the block table, and of the pages in use.
    package func storedSizes() throws -> (records: Int, table: Int, used: Int) {
        let (records, table) = try store.env.read { txn in
            var total = 0
            try txn.withCursor(store.blocks) { c in
                var e = try c.first()
                while let entry = e {
                    total += entry.value.count + entry.key.count
                    e = try c.next()
                }
            }
            return (total, try txn.stat(store.blocks).bytes)
        }
        // Outside the read: the map's figures take the environment's gate themselves.
        return (records, table, try store.env.mapInfo().pagesUsed * store.env.pageSize())
    }

    /// Nanoseconds per event of each step of preparing an append, timed alone on one thread, so a
    /// change can be aimed at the step that costs most. `prepare` is all of them together.
    package func componentCosts(_ events: [NewEvent], batches: [[NewEvent]]) throws -> [String: Double] {
        let ledger = self
        let n = Double(events.count)
        func time(_ body: () throws -> Void) rethrows -> Double {
            let t = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t) / n
        }
        var envelope: [UInt8] = []
        var body: [UInt8] = []
        let dictionary = ledger.store.currentDictionary.withLock { $0 }
        var costs: [String: Double] = [:]
        costs["prepare"] = try time { for batch in batches { _ = try ledger.store.prepare(batch, now: 1, dictionary: dictionary) } }
        // Wall time of the same work as an append does it: a batch in parts, one thread per core.
        costs["prepare_parts_wall"] = try time { for batch in batches { _ = try ledger.prepare(batch) } }
        costs["validate"] = try time { for e in events { try e.validate() } }
        costs["payload_hash"] = time { for e in events { _ = SHA256State.hash(e.payload) } }
        let digest = [UInt8](repeating: 7, count: 32)
        costs["encode"] = time {
            body.removeAll(keepingCapacity: true)
            for e in events {
                envelope.removeAll(keepingCapacity: true)
                digest.withUnsafeBytes { ref in
                    EnvelopeCodec.encode(
                        timestampMicros: e.timestampMicros ?? 0, actor: e.actor, stream: e.stream, type: e.type,
                        schemaVersion: e.schemaVersion, payloadRef: ref, unknownFields: [], into: &envelope)
                }
                body.append(contentsOf: envelope)
                e.payload.withUnsafeBytes { body.append(contentsOf: $0) }
            }
        }
        // Compression of the same bytes in blocks of the size appends make.
        let perBlock = ledger.store.blockTarget
        costs["compress"] = try time {
            var offset = 0
            while offset < body.count {
                let end = min(body.count, offset + perBlock)
                _ = try ledger.store.compressBody(body[offset..<end], dictionary: dictionary)
                offset = end
            }
        }
        costs["leaf_hash"] = time {
            envelope.withUnsafeBytes { raw in for _ in events { _ = LogStore.leafHash(envelope: raw, seq: 1) } }
        }
        var acc = Merkle.emptyRoot
        costs["node_hash"] = time { for _ in events { acc = Merkle.nodeHash(acc, acc) } }
        return costs
    }

    /// Decompresses every block of the log and nothing else (no event is decoded): the floor under any
    /// scan of this format at this compression level. Returns the number of events the blocks hold.
    package func decompressEveryBlock() throws -> Int {
        try store.env.read { txn in
            var reader = BlockReader(store: store, txn: txn)
            var events = 0
            try txn.withCursor(store.blocks) { c in
                var e = try c.first()
                while let entry = e {
                    events += try reader.decompress(record: entry.value, first: entry.key.bigEndianUInt64).count
                    e = try c.next()
                }
            }
            return events
        }
    }
}
