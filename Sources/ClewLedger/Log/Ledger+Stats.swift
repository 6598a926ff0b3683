import ClewCore
public import Foundation

/// Sizes and counts of a ledger, for `clew stats`.
public struct LedgerStats: Codable, Sendable {
    public var id: String
    public var events: UInt64
    public var streams: Int
    public var firstTime: Date?
    public var lastTime: Date?
    public var rootHash: String
    /// Bytes of the block table's pages (blocks, keys and B-tree overhead).
    public var eventTableBytes: Int
    /// ``eventTableBytes`` per event: what one event costs in the log.
    public var bytesPerEvent: Double
    /// Pages in use in the whole environment (events, index, Merkle nodes, blobs, dictionaries).
    public var usedBytes: Int
    public var mapSize: Int
    public var fileBytes: Int
    public var merkleNodes: Int
    public var blobs: Int
    public var dictionaries: Int
    public var checkpoints: Int
    public var lastCheckpointSize: UInt64?

    enum CodingKeys: String, CodingKey {
        case id, events, streams, firstTime = "first_time", lastTime = "last_time", rootHash = "root_hash"
        case eventTableBytes = "event_table_bytes", bytesPerEvent = "bytes_per_event", usedBytes = "used_bytes"
        case mapSize = "map_size", fileBytes = "file_bytes", merkleNodes = "merkle_nodes", blobs, dictionaries
        case checkpoints, lastCheckpointSize = "last_checkpoint_size"
    }
}

extension Ledger {
    /// Counts and sizes; cheap (no scan of events, one pass over stream keys).
    public func stats() throws -> LedgerStats {
        let (events, tables, first, last, streamCount) = try store.env.read { txn in
            let n = try store.lastSeq(txn)
            var reader = BlockReader(store: store, txn: txn)
            var cache = StringCache()
            func time(_ seq: UInt64) throws -> Date? {
                guard seq > 0, let i = try reader.locate(seq) else { return nil }
                return try reader.event(i, cache: &cache).time
            }
            let streamCount = try txn.withCursor(store.streams) { c in
                var count = 0
                var e = try c.first()
                while e != nil {
                    count += 1
                    e = try c.nextKey()
                }
                return count
            }
            return (
                n,
                try [store.blocks, store.merkle, store.blobs, store.dicts, store.checkpoints].map { try txn.stat($0) },
                try time(1), try time(n), streamCount
            )
        }
        let map = try store.env.mapInfo()
        let page = try store.env.pageSize()
        let file = (try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("log/data.mdb").path)[.size] as? Int) ?? 0
        let checkpointList = try checkpoints()
        return LedgerStats(
            id: id, events: events, streams: streamCount, firstTime: first, lastTime: last,
            rootHash: try root(atSize: events).hash.hex, eventTableBytes: tables[0].bytes,
            bytesPerEvent: events == 0 ? 0 : Double(tables[0].bytes) / Double(events),
            usedBytes: map.pagesUsed * page, mapSize: map.mapSize, fileBytes: file,
            merkleNodes: tables[1].entries, blobs: tables[2].entries, dictionaries: tables[3].entries,
            checkpoints: tables[4].entries, lastCheckpointSize: checkpointList.last?.treeSize)
    }
}
