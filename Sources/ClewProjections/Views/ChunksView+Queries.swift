import ClewLedger
import ClewModel
import Foundation

/// A run of chunk keys in one set: `first`…`last`, `count` chunks.
public struct KeyRange: Sendable, Codable, Equatable {
    public var first: String
    public var last: String
    public var count: UInt64
}

/// The chunks of a dataset in one set (a status, `stale` or `missing`), as key ranges.
public struct ChunkGroup: Sendable, Codable, Equatable {
    public var set: String
    public var count: UInt64
    public var ranges: [KeyRange]
    /// More ranges exist than were listed.
    public var truncated: Bool
}

/// A dataset's status: its summary and every set, with the missing, failed, invalid, stale and
/// in-progress chunks listed as key ranges.
public struct ChunkStatusReport: Sendable, Codable {
    public var dataset: DatasetSummary
    public var groups: [ChunkGroup]
}

extension Views {
    // MARK: chunks

    /// Every dataset's summary, now or as of a seq (from the chunk view's history, no refold).
    public func datasets(asOf: UInt64? = nil) throws -> [DatasetSummary] {
        let asOf = try historySeq(asOf)
        return try read(.chunks) { store, txn in
            var out: [DatasetSummary] = []
            try ViewTxn.scan(txn, store.table("datasets"), prefix: [], view: "chunks", table: "datasets") { _, v in
                out.append(try RecordCache<DatasetSummary>.decode(v, table: "datasets", view: "chunks"))
                return true
            }
            guard let asOf else { return out }
            return try out.compactMap { try ChunkHistory.state($0.name, asOf: asOf, txn, store)?.summary($0.name) }
        }
    }

    /// A dataset's status: summary, then each non-empty set as key ranges (at most `ranges` per set).
    /// Reads the summary and the first ranges of each set only (counts come from the summary): no chunk
    /// is visited, and the cost does not grow with how many ranges a set has (scattered failures give a
    /// set a range each). As of a seq, both come from the chunk view's history: the dataset's last
    /// snapshot and the operations after it.
    public func chunkStatus(dataset: String, ranges limit: Int = 20, asOf: UInt64? = nil) throws -> ChunkStatusReport? {
        let asOf = try historySeq(asOf)
        return try read(.chunks) { store, txn in
            let summary: DatasetSummary
            let eachRange: (UInt8, (ClosedRange<UInt64>) throws -> Bool) throws -> Void
            if let asOf {
                guard let state = try ChunkHistory.state(dataset, asOf: asOf, txn, store) else { return nil }
                summary = state.summary(dataset)
                eachRange = { byte, body in
                    try state.set(byte).forEachRange(body)
                }
            } else {
                guard let s = try RecordCache<DatasetSummary>.read(ChunksProjection.summaryKey(dataset), table: "datasets", txn, store) else {
                    return nil
                }
                summary = s
                eachRange = { byte, body in try ChunksProjection.scanSet(dataset, byte, txn, store, body) }
            }
            return try Self.statusReport(summary, ranges: limit, eachRange: eachRange) { o in
                try RecordCache<ChunkRecord>.read(ChunksProjection.chunkKey(dataset, o), table: "chunks", txn, store)?.key
            }
        }
    }

    /// The report of a dataset from its summary and its sets' ranges in order (`eachRange` calls its
    /// body with each until it returns false); `key` names a chunk by ordinal (ordinals never change, so
    /// the live record names a chunk of any seq).
    static func statusReport(
        _ summary: DatasetSummary, ranges limit: Int, eachRange: (UInt8, (ClosedRange<UInt64>) throws -> Bool) throws -> Void,
        key chunkKey: (UInt64) throws -> String?
    ) throws -> ChunkStatusReport {
        var groups: [ChunkGroup] = []
        let order = ["failed", "invalid", "stale", "missing", "producing", "consuming", "resubmitted", "pending", "ready", "consumed"]
        for set in order {
            // The first `limit` ranges, and whether there are more.
            var ranges: [ClosedRange<UInt64>] = []
            var more = false
            func take(_ r: ClosedRange<UInt64>) -> Bool {
                if ranges.count == limit {
                    more = true
                    return false
                }
                ranges.append(r)
                return true
            }
            let count: UInt64
            let natural: Bool
            switch set {
            case "missing":
                guard summary.missing > 0, let a = summary.firstOrdinal, let b = summary.lastOrdinal else { continue }
                count = summary.missing
                natural = true
                // The gaps of the present set, as they come (`take` refuses any past the limit).
                var walk = RangeSet.GapWalk(in: a...b)
                try eachRange(ChunksProjection.presentSet) { r in
                    let (gap, more) = walk.feed(r)
                    if let gap, !take(gap) { return false }
                    return more
                }
                if let tail = walk.tail { _ = take(tail) }
            case "stale":
                guard summary.stale > 0 else { continue }
                count = summary.stale
                natural = false
                try eachRange(ChunksProjection.staleSet, take)
            default:
                guard let n = summary.counts[set], n > 0 else { continue }
                count = n
                natural = false
                try eachRange(ChunksProjection.setByte(set), take)
            }
            var keyRanges: [KeyRange] = []
            for r in ranges {
                func key(_ o: UInt64) throws -> String {
                    if natural || o < ChunksProjection.keyOrdinalBase, let k = ChunksProjection.naturalKey(o, summary.partitioning) { return k }
                    return try chunkKey(o) ?? "#\(o)"
                }
                keyRanges.append(KeyRange(first: try key(r.lowerBound), last: try key(r.upperBound), count: r.upperBound - r.lowerBound + 1))
            }
            groups.append(ChunkGroup(set: set, count: count, ranges: keyRanges, truncated: more))
        }
        return ChunkStatusReport(dataset: summary, groups: groups)
    }

    /// The seq an `--as-of` query reads the chunk view's history at: nil for "now" (the live records),
    /// after catching the views up when `asOf` is past what they have folded (outside any transaction).
    private func historySeq(_ asOf: UInt64?) throws -> UInt64? {
        guard let asOf else { return nil }
        if asOf > (checkpoints()[.chunks] ?? 0) { try catchUp() }
        let reached = checkpoints()[.chunks] ?? 0
        guard asOf <= reached else {
            throw ViewError(.invalidInput, view: "chunks", "--as-of \(asOf): the views have folded \(reached) events")
        }
        return asOf
    }

    /// The chunks of a dataset in a status (or `stale`), in ordinal order, at most `limit`.
    public func chunks(dataset: String, status: String, limit: Int = 100, asOf: UInt64? = nil) throws -> [ChunkRecord] {
        guard status == "stale" || ChunkStatus(rawValue: status) != nil else {
            throw ViewError(.invalidInput, view: "chunks", "unknown status \(status); one of \(ChunkStatus.allCases.map(\.rawValue).joined(separator: ", ")), stale, missing")
        }
        return try withChunks(asOf: asOf) { store, txn in
            let set = status == "stale" ? ChunksProjection.staleSet : ChunksProjection.setByte(status)
            var out: [ChunkRecord] = []
            for r in try ChunksProjection.readSet(dataset, set, txn, store).ranges {
                var o = r.lowerBound
                while o <= r.upperBound, out.count < limit {
                    if let record = try RecordCache<ChunkRecord>.read(ChunksProjection.chunkKey(dataset, o), table: "chunks", txn, store) {
                        out.append(record)
                    } else {
                        throw ViewError(.inconsistent, view: "chunks", "view chunks lists chunk #\(o) of \(dataset) as \(status) but has no record of it")
                    }
                    if o == .max { break }
                    o += 1
                }
                if out.count >= limit { break }
            }
            return out
        }
    }

    /// The chunk view, live or folded afresh through `asOf`: chunk records are not versioned (the
    /// history keeps sets and summaries), so listing records as of a seq refolds the chunk view.
    private func withChunks<T>(asOf: UInt64?, _ body: (ViewStore, Transaction) throws -> T) throws -> T {
        guard let asOf else { return try read(.chunks, body) }
        return try withScratch([.chunks], through: [.chunks: asOf], progress: options.progress) { stores in
            try stores[.chunks]!.env.read { try body(stores[.chunks]!, $0) }
        }
    }
}
