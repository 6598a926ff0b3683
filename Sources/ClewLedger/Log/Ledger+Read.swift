import Foundation

extension Ledger {
    /// The seq of the last event, 0 for an empty ledger.
    public var lastSeq: UInt64 {
        get throws { try store.env.read { try store.lastSeq($0) } }
    }

    /// The event at `seq`, or nil if the log does not reach it.
    /// - Throws: ``LedgerError/Code/corrupted`` when its record does not decode.
    public func event(at seq: UInt64) throws -> Event? {
        try store.env.read { txn in
            var reader = BlockReader(store: store, txn: txn)
            guard let i = try reader.locate(seq) else { return nil }
            var cache = StringCache(slotBits: 0)
            return try reader.event(i, cache: &cache)
        }
    }

    /// Calls `body` with each event whose seq is in `range`, in order, until it returns false.
    ///
    /// Reads in chunks of short read transactions, so a long scan never pins old pages for long.
    /// - Returns: the seq of the last event visited (0 if none).
    @discardableResult
    public func scan(
        _ range: ClosedRange<UInt64> = 1...UInt64.max,
        _ body: (Event) throws -> Bool
    ) throws -> UInt64 {
        try visit(range) { reader, i, cache in try body(try reader.event(i, cache: &cache)) }
    }

    /// Calls `body` with the decoded block and index of each event whose seq is in `range`, in order,
    /// until it returns false: ``scan(_:_:)`` without building an `Event` (so without reading blobs).
    /// Renews its read transaction every ``scanChunk`` events.
    @discardableResult
    func visit(
        _ range: ClosedRange<UInt64> = 1...UInt64.max, _ body: (BlockReader, Int, inout StringCache) throws -> Bool
    ) throws -> UInt64 {
        var next = max(range.lowerBound, 1)
        var last: UInt64 = 0
        var cache = StringCache()
        var more = true
        while more {
            more = try store.env.read { txn in
                var reader = BlockReader(store: store, txn: txn)
                var n = 0
                while let start = try reader.locate(next) {
                    for i in start..<reader.count {
                        let seq = reader.first + UInt64(i)
                        if seq > range.upperBound { return false }
                        last = seq
                        if try !body(reader, i, &cache) { return false }
                        n += 1
                    }
                    next = last + 1
                    if n >= Self.scanChunk { return last < range.upperBound }
                }
                return false
            }
        }
        return last
    }

    static let scanChunk = 65_536

    /// Events in `range` (materialised; prefer ``scan(_:_:)`` for large ranges).
    public func events(_ range: ClosedRange<UInt64>, limit: Int = .max) throws -> [Event] {
        var out: [Event] = []
        if limit <= 0 { return out }
        try scan(range) { event in
            out.append(event)
            return out.count < limit
        }
        return out
    }

    /// Seqs of the events in `stream`, ascending, starting after `after`.
    public func seqs(inStream stream: String, after: UInt64 = 0, limit: Int = .max) throws -> [UInt64] {
        var key = stream
        return try store.env.read { txn in
            try key.withUTF8 { k in
                try txn.withCursor(store.streams) { c in
                    var out: [UInt64] = []
                    var entry = try withUnsafeBytes(of: (after &+ 1).bigEndian) {
                        try c.seek(UnsafeRawBufferPointer(k), value: $0)
                    }
                    while let e = entry, out.count < limit {
                        out.append(e.value.bigEndianUInt64)
                        entry = try c.nextDuplicate()
                    }
                    return out
                }
            }
        }
    }

    /// The events of `stream`, in log order, starting after seq `after`.
    public func events(inStream stream: String, after: UInt64 = 0, limit: Int = .max) throws -> [Event] {
        let seqs = try seqs(inStream: stream, after: after, limit: limit)
        return try store.env.read { txn in
            var reader = BlockReader(store: store, txn: txn)
            var cache = StringCache()
            return try seqs.map { seq in
                guard let i = try reader.locate(seq) else {
                    throw LedgerError(.corrupted, "the stream index of \(stream) names event \(seq), which is missing")
                }
                return try reader.event(i, cache: &cache)
            }
        }
    }

    /// Number of events in each stream whose id starts with `prefix` (all streams by default).
    public func streams(prefix: String = "", limit: Int = .max) throws -> [(stream: String, events: Int)] {
        var p = prefix
        return try store.env.read { txn in
            try txn.withCursor(store.streams) { c in
                var out: [(String, Int)] = []
                var entry = p.isEmpty ? try c.first() : try p.withUTF8 { try c.seek(UnsafeRawBufferPointer($0)) }
                while let e = entry, out.count < limit {
                    let name = String(decoding: e.key, as: UTF8.self)
                    if !name.hasPrefix(prefix) { break }
                    out.append((name, try c.duplicateCount()))
                    entry = try c.nextKey()
                }
                return out
            }
        }
    }
}
