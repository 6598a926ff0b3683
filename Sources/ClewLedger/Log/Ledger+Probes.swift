import ClewCore
import Dispatch
import Foundation
import Synchronization

/// What `clew bench ledger` (ClewBenchmarks) measures inside the ledger, through `package` access so the
/// log's internals stay internal.
extension Ledger {
    /// Returns when the writer has committed everything handed to it.
    package func waitForIdle() { writer.waitForIdle() }

    /// The bytes of the stored records (keys and values), of the events table, and of the pages in use.
    package func storedSizes() throws -> (records: Int, table: Int, used: Int) {
        let (records, table) = try store.env.read { txn in
            var total = 0
            try txn.withCursor(store.events) { c in
                var e = try c.first()
                while let entry = e {
                    total += entry.value.count + entry.key.count
                    e = try c.next()
                }
            }
            return (total, try txn.stat(store.events).bytes)
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
        var scratch: [UInt8] = []
        var out: [UInt8] = []
        let dictionary = ledger.store.currentDictionary.withLock { $0 }
        var costs: [String: Double] = [:]
        costs["prepare"] = try time { for batch in batches { _ = try ledger.prepare(batch) } }
        costs["validate"] = try time { for e in events { try e.validate() } }
        costs["encode"] = time {
            for e in events {
                scratch.removeAll(keepingCapacity: true)
                EnvelopeCodec.encode(
                    timestampMicros: e.timestampMicros ?? 0, actor: e.actor, stream: e.stream, type: e.type,
                    schemaVersion: e.schemaVersion, payload: e.payload, payloadRef: nil, unknownFields: [], into: &scratch)
            }
        }
        costs["compress"] = try time {
            for _ in events {
                out.removeAll(keepingCapacity: true)
                try scratch.withUnsafeBytes { try ledger.store.codec.compress($0, dictionary: dictionary, into: &out) }
            }
        }
        costs["leaf_hash"] = time {
            for _ in events { _ = LogStore.leafHash(envelope: scratch, seq: 1) }
        }
        var acc = Merkle.emptyRoot
        costs["node_hash"] = time { for _ in events { acc = Merkle.nodeHash(acc, acc) } }
        return costs
    }
}
