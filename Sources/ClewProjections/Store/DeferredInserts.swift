import ClewLedger

/// Insertions into a view's grouped tables with random keys that a fold into an empty view (a rebuild's
/// new generation, a scratch fold) keeps aside and writes in key order, all at once, when the fold ends.
///
/// Why: a table keyed by a hash (lineage `ids`, keyed by the SHA-256 of node ids) takes each insertion
/// on a page of its own once it is much bigger than a batch, and every batch's commit writes those
/// pages whole. At 10M events the lineage fold wrote 6.3 GB for a view of 315 MB, 69% of all a rebuild
/// wrote, and the share grew with the log (docs/benchmarks.md). Unlike a ``BulkLoad``ed table, the fold
/// reads these tables as it goes (to find a node's number), so their entries stay readable here
/// (``get(_:from:_:)``) until they are written.
///
/// Entries have keys of 8 bytes and values of at most 8 (lineage's homes and counters), packed into
/// two words each, up to ``capacity`` in memory. A write that fails is retried: ``rollback()`` drops
/// what it added since ``mark()``. When a batch's write has committed and more than ``capacity`` entries
/// wait, they move in key order into the table's *spill* (``spillIfFull(_:)``): a plain table of the
/// same view (`<table>~spill`, never read by anything but this), one cursor walking forward through it,
/// in writes of their own that each change at most ``pagesPerWrite`` of its pages (LMDB keeps a write's
/// changed pages in the heap, and keeps the heap it took: one write across a spill of 40M entries held
/// 512 MiB). When the fold ends, memory and spill are merged into the packed copy
/// (``merge(_:from:into:)``), or cut into the empty table (``writeAll(into:)``, a scratch fold).
///
/// Until stop 39 an overflow went straight into the grouped table, one key at a time: at 100M events
/// (40M `ids`, so ~25 overflows) most keys landed in a full record and re-cut their group, 1.6 µs per
/// event of the rebuild, against 0.27 at 10M where nothing overflows (docs/benchmarks.md). A spill costs
/// a put in key order, and a lookup that misses memory probes the spill (a plain B-tree) instead of the
/// grouped table: the table itself stays empty until the fold ends. A ``SpillFilter`` of the keys
/// moved lets most lookups of keys that are not there (a new node's home, asked for and then added)
/// skip that probe.
///
/// Not thread-safe: one fold writes a view at a time.
final class DeferredInserts {
    /// Entries a table keeps in memory before they move to its spill.
    let capacity: Int
    /// Pages of a spill one write of a move may change, about (the keys are spread evenly).
    let pagesPerWrite: Int
    private var tables: [String: Pending]
    /// Hears the table and entry count of each move to the spill (tests).
    var flushed: ((String, Int) -> Void)?

    /// A value of at most 8 bytes, packed little-endian.
    struct Small: Equatable {
        var word: UInt64
        var count: UInt8

        init(_ bytes: some Collection<UInt8>) {
            precondition(bytes.count <= 8, "a deferred value holds at most 8 bytes")
            word = 0
            for (i, b) in bytes.enumerated() { word |= UInt64(b) << (8 * UInt64(i)) }
            count = UInt8(bytes.count)
        }

        var bytes: [UInt8] { (0..<Int(count)).map { UInt8(truncatingIfNeeded: word >> (8 * UInt64($0))) } }

        func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
            try withUnsafeBytes(of: word.littleEndian) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<Int(count)])) }
        }
    }

    final class Pending {
        var entries: [UInt64: Small] = [:]
        /// Keys added since ``mark()``, in order.
        var added: [UInt64] = []
        /// Entries in the spill.
        var spilled = 0
        /// The table's spill.
        let spill: Database
        /// The keys moved into the spill (and, after a move that failed, a few that were not).
        var filter: SpillFilter

        init(spill: Database, capacity: Int) {
            self.spill = spill
            filter = SpillFilter(capacity: capacity)
        }
    }

    /// Bytes of memory an entry takes, roughly (a dictionary slot of key and value at its load factor).
    static let bytesPerEntry = 40

    /// The spill of `table`.
    static func spillName(_ table: String) -> String { table + "~spill" }

    /// Deferred insertions into `tables` of `store`, whose spills it opens (and creates). The tables
    /// and their spills must be empty (a fold into an empty view): then nothing but ``writeAll(into:)`` or
    /// ``merge(_:from:into:)`` writes a table, and a lookup need not probe it.
    init(store: ViewStore, tables: some Sequence<String>, budget: Int, pagesPerWrite: Int = 8_192) throws {
        capacity = max(budget / Self.bytesPerEntry, 1)
        self.pagesPerWrite = max(pagesPerWrite, 1)
        var pending: [String: Pending] = [:]
        for t in tables {
            let spill = try store.env.openDatabase(Self.spillName(t))
            let (entries, spilled) = try store.env.read { txn in (try txn.stat(store.table(t)).entries, try txn.stat(spill).entries) }
            guard entries == 0, spilled == 0 else {
                throw ViewError(.corrupt, view: store.name, "view \(store.name): table \(t) holds \(entries) entries and its spill \(spilled) as a fold into an empty view begins")
            }
            pending[t] = Pending(spill: spill, capacity: capacity)
        }
        self.tables = pending
    }

    func holds(_ table: String) -> Bool { tables[table] != nil }

    /// Entries waiting in memory for `table`.
    func count(_ table: String) -> Int { tables[table]?.entries.count ?? 0 }

    /// Entries of `table` moved to its spill.
    func spilledCount(_ table: String) -> Int { tables[table]?.spilled ?? 0 }

    static func word(_ key: some Collection<UInt8>) -> UInt64 {
        precondition(key.count == 8, "a deferred key holds 8 bytes")
        return key.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The value of `key` in `table`: waiting here, in memory or the spill (the table itself is empty
    /// until the fold ends).
    func get(_ key: [UInt8], from table: String, _ txn: ViewTxn) throws -> [UInt8]? {
        let p = tables[table]!
        let k = Self.word(key)
        if let v = p.entries[k] { return v.bytes }
        return try spilled(key, k, p, txn, table)
    }

    /// Adds `key` → `value` to `table` unless the key is there; returns whether it added.
    func add(_ key: [UInt8], _ value: [UInt8], to table: String, _ txn: ViewTxn) throws -> Bool {
        let p = tables[table]!
        let k = Self.word(key)
        if p.entries[k] != nil { return false }
        if try spilled(key, k, p, txn, table) != nil { return false }
        p.entries[k] = Small(value)
        p.added.append(k)
        return true
    }

    /// The value of `key` (whose word is `word`) in the spill of `table`, or nil.
    private func spilled(_ key: [UInt8], _ word: UInt64, _ p: Pending, _ txn: ViewTxn, _ table: String) throws -> [UInt8]? {
        guard p.spilled > 0, p.filter.mayContain(word) else { return nil }
        return try key.withUnsafeBytes { k -> [UInt8]? in
            guard let v = try txn.txn.get(p.spill, k) else { return nil }
            try Self.checkSpilled(k, v, txn.store.name, table)
            return [UInt8](copying: v)
        }
    }

    private static func checkSpilled(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ view: String, _ table: String) throws {
        guard key.count == 8, value.count <= 8 else {
            throw ViewError(.corrupt, view: view, "view \(view): the spill of table \(table) holds an entry of \(key.count)-byte key and \(value.count)-byte value (8 and at most 8 expected)")
        }
    }

    /// Called as a write begins: what it adds can be dropped by ``rollback()``.
    func mark() {
        for p in tables.values { p.added.removeAll(keepingCapacity: true) }
    }

    /// Drops what was added since ``mark()`` (the write failed).
    func rollback() {
        for p in tables.values {
            for k in p.added { p.entries[k] = nil }
            p.added.removeAll(keepingCapacity: true)
        }
    }

    /// Called once a write has committed: what it added stays.
    func commit() {
        for p in tables.values { p.added.removeAll(keepingCapacity: true) }
    }

    /// After a write has committed: moves the entries of each table holding more than ``capacity`` into
    /// its spill, in key order, in writes that each take an equal share of the keys and so change about
    /// ``pagesPerWrite`` of the spill's pages. Each write grows the map first for the pages it may copy
    /// and 128 bytes an entry (LMDB 0.9.24 can damage its free-page lists aborting a write of many page
    /// splits, ``Views/Options/growMapAhead``). A move that fails leaves what it had not written in memory.
    func spillIfFull(_ store: ViewStore) throws {
        for (name, p) in tables where p.entries.count > capacity {
            let keys = p.entries.keys.sorted()
            let stat = try store.env.read { try $0.stat(p.spill) }
            let parts = max(1, (stat.pages + pagesPerWrite - 1) / pagesPerWrite)
            let share = (keys.count + parts - 1) / parts
            var start = 0
            do {
                while start < keys.count {
                    let part = keys[start..<min(start + share, keys.count)]
                    // Into the filter first: a key in the spill must never be missing from it.
                    for k in part { p.filter.add(k) }
                    try store.env.ensureRoom((stat.pages / parts + 16) * stat.pageSize * 2 + part.count * 128)
                    try store.env.write { txn in
                        try txn.withCursor(p.spill) { c in
                            for k in part {
                                let stored = try withUnsafeBytes(of: k.bigEndian) { key in try p.entries[k]!.withBytes { try c.insert(key, $0) } }
                                // Memory and spill hold different keys (``add(_:_:to:_:)``): a key in both is a fault.
                                guard stored else {
                                    throw ViewError(.corrupt, view: store.name, "view \(store.name): key \(String(k, radix: 16)) of table \(name) is both in memory and in its spill")
                                }
                            }
                        }
                    }
                    p.spilled += part.count
                    start += part.count
                }
            } catch {
                for k in keys[..<start] { p.entries[k] = nil }
                throw error
            }
            p.entries.removeAll(keepingCapacity: true)
            flushed?(name, keys.count)
        }
    }

    /// Writes every entry waiting for each table, in memory or spilled, into `store`'s (empty) table, cut
    /// into records in key order (the fold has ended): read ``writeChunk`` entries at a time and appended
    /// in writes of 8 MiB (``ViewStore/append(_:to:)``), so neither the heap nor a write holds them all.
    /// Then empties the spills.
    func writeAll(into store: ViewStore) throws {
        for (name, p) in tables where !p.entries.isEmpty || p.spilled > 0 {
            let db = store.table(name)
            let waiting = p.entries.keys.sorted()
            var builder = GroupedTable.Builder()
            var records: [([UInt8], [UInt8])] = []
            var bytes = 0
            let emit = { (key: [UInt8], group: [UInt8]) in
                let record = GroupedTable.record(key: key, group: group)
                bytes += key.count + record.count + 16
                records.append((key, record))
            }
            var after: UInt64?
            while true {
                // A chunk is copied out of its read transaction: the appends write the same environment.
                var chunk: [(UInt64, Small)] = []
                try store.env.read { txn in
                    try forEachWaiting(name, p, waiting, txn, view: store.name, after: after, limit: writeChunk) { k, v in
                        chunk.append((k.bigEndianUInt64Value, Small(v)))
                    }
                }
                guard let last = chunk.last?.0 else { break }
                after = last
                for (k, v) in chunk {
                    withUnsafeBytes(of: k.bigEndian) { key in v.withBytes { builder.add(key, $0, emit: emit) } }
                }
                if bytes >= BulkLoad.chunkBytes {
                    try store.append(records, to: db)
                    records.removeAll(keepingCapacity: true)
                    bytes = 0
                }
            }
            builder.finish(emit: emit)
            try store.append(records, to: db)
            try store.env.write { txn in try txn.clear(p.spill) }
            p.entries.removeAll()
            p.spilled = 0
            p.filter = SpillFilter(capacity: capacity)
        }
    }

    /// Entries ``writeAll(into:)`` reads at a time.
    var writeChunk = 1 << 16

    /// Calls `body` with the entries waiting for `table` (its spill's and memory's, which hold different
    /// keys; `waiting` is memory's keys, sorted) in key order: those after `after` when given, at most
    /// `limit` of them.
    private func forEachWaiting(
        _ table: String, _ p: Pending, _ waiting: [UInt64], _ txn: Transaction, view: String, after: UInt64? = nil, limit: Int = .max,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        if after == .max { return }
        // Memory's first key after `after`, by binary search.
        var next = 0
        if let after {
            var high = waiting.count
            while next < high {
                let mid = (next + high) / 2
                if waiting[mid] <= after { next = mid + 1 } else { high = mid }
            }
        }
        var given = 0
        func memoryBefore(_ bound: UInt64?) throws {
            while given < limit, next < waiting.count, bound.map({ waiting[next] < $0 }) ?? true {
                try withUnsafeBytes(of: waiting[next].bigEndian) { k in try p.entries[waiting[next]]!.withBytes { try body(k, $0) } }
                next += 1
                given += 1
            }
        }
        if p.spilled > 0 {
            try txn.withCursor(p.spill) { c in
                var e = try after.map { try c.seek($0 + 1) } ?? c.first()
                while let (k, v) = e {
                    try Self.checkSpilled(k, v, view, table)
                    try memoryBefore(k.bigEndianUInt64Value)
                    guard given < limit else { return }
                    try body(k, v)
                    given += 1
                    e = try c.next()
                }
            }
        }
        try memoryBefore(nil)
    }

    /// Writes what waits here for `table` (in memory and spilled) into the empty `dest`'s table, in key
    /// order with `MDB_APPEND` (``BulkLoad/append(into:_:_:)``): the same records as inserting them into
    /// the folded view `source` (whose write has ended, and whose table is empty) and copying it, without
    /// the insertions.
    func merge(_ table: String, from source: ViewStore, into dest: ViewStore) throws {
        guard let p = tables[table] else { return }
        // Read in one transaction of the source (MDB_NOTLS) while `dest`, another environment, is written.
        try source.env.read { txn in
            try BulkLoad.append(into: dest, table) { add in try forEachWaiting(table, p, p.entries.keys.sorted(), txn, view: source.name, add) }
        }
        p.entries.removeAll()
    }
}
