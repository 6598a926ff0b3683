import ClewLedger

/// Insertions into a view's grouped tables with random keys that a fold into an empty view (a rebuild's
/// new generation, a scratch fold) keeps in memory and writes in key order, many at once.
///
/// Why: a table keyed by a hash (lineage `ids`, keyed by the SHA-256 of node ids) takes each insertion
/// on a page of its own once it is much bigger than a batch, and every batch's commit writes those
/// pages whole. At 10M events the lineage fold wrote 6.3 GB for a view of 315 MB, 69% of all a rebuild
/// wrote, and the share grew with the log (docs/benchmarks.md). Unlike a ``BulkLoad``ed table, the fold
/// reads these tables as it goes (to find a node's number), so their entries stay readable here
/// (``get(_:from:_:)``) until they are written.
///
/// Entries have keys of 8 bytes and values of at most 8 (lineage's homes and counters), packed into
/// two words each. When a batch's write has applied its events and more than ``capacity`` entries wait,
/// they are inserted in key order in that same transaction (``flushIfFull(_:)``): a page then takes
/// every entry that falls in it at once. They are dropped from memory only once that transaction has
/// committed (``commit()``). A write that fails is retried: ``rollback()`` drops what it added since
/// ``mark()``, and what it had flushed is still here. When the fold ends, what still waits is merged with
/// the table into the packed copy (``merge(_:from:into:)``), or inserted (``ViewStore/flushDeferred()``,
/// a scratch fold). Not thread-safe: one fold writes a view at a time.
final class DeferredInserts {
    /// Entries a table keeps in memory before they are inserted.
    let capacity: Int
    private var tables: [String: Pending]
    /// Hears the table and entry count of each flush (tests).
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
    }

    final class Pending {
        var entries: [UInt64: Small] = [:]
        /// Keys added since ``mark()``, in order.
        var added: [UInt64] = []
        /// Whether the current write inserted the entries (they go once it commits).
        var flushed = false
    }

    /// Bytes of memory an entry takes, roughly (a dictionary slot of key and value at its load factor).
    static let bytesPerEntry = 40

    init(tables: some Sequence<String>, budget: Int) {
        capacity = max(budget / Self.bytesPerEntry, 1)
        self.tables = Dictionary(uniqueKeysWithValues: tables.map { ($0, Pending()) })
    }

    func holds(_ table: String) -> Bool { tables[table] != nil }

    /// Entries waiting in `table`.
    func count(_ table: String) -> Int { tables[table]?.entries.count ?? 0 }

    static func word(_ key: some Collection<UInt8>) -> UInt64 {
        precondition(key.count == 8, "a deferred key holds 8 bytes")
        return key.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The value of `key` in `table`: waiting here, or else in the view.
    func get(_ key: [UInt8], from table: String, _ txn: ViewTxn) throws -> [UInt8]? {
        if let v = tables[table]?.entries[Self.word(key)] { return v.bytes }
        return try GroupedTable.get(key, txn.txn, txn.store.table(table), view: txn.store.name, table: table)
    }

    /// Adds `key` → `value` to `table` unless the key is there (waiting or in the view); returns whether
    /// it added.
    func add(_ key: [UInt8], _ value: [UInt8], to table: String, _ txn: ViewTxn) throws -> Bool {
        let p = tables[table]!
        let k = Self.word(key)
        if p.entries[k] != nil { return false }
        if try GroupedTable.get(key, txn.txn, txn.store.table(table), view: txn.store.name, table: table) != nil { return false }
        p.entries[k] = Small(value)
        p.added.append(k)
        return true
    }

    /// Called as a write begins: what it adds can be dropped by ``rollback()``.
    func mark() {
        for p in tables.values {
            p.added.removeAll(keepingCapacity: true)
            p.flushed = false
        }
    }

    /// Drops what was added since ``mark()`` (the write failed; what it inserted was not committed).
    func rollback() {
        for p in tables.values {
            for k in p.added { p.entries[k] = nil }
            p.added.removeAll(keepingCapacity: true)
            p.flushed = false
        }
    }

    /// Map room a write should have before it begins, beyond its own: when a table's waiting entries are
    /// past half the capacity (the write may insert them), every page of the table (each is copied once
    /// it changes) and 128 bytes (twice ~64) for each entry it may insert, counting at least the capacity. A write that runs into the map's end is
    /// retried once the map grew, but LMDB 0.9.24 can damage its free-page lists aborting a write of many
    /// page splits (``Views/Options/growMapAhead``).
    /// With `all`, the room for inserting every waiting entry (``flushAll(_:)``).
    func roomForFlush(_ store: ViewStore, all: Bool = false) throws -> Int {
        var room = 0
        for (name, p) in tables where all ? !p.entries.isEmpty : p.entries.count * 2 > capacity {
            let stat = try store.env.read { try $0.stat(store.table(name)) }
            room += stat.pages * stat.pageSize + max(p.entries.count, capacity) * 2 * 64
        }
        return room
    }

    /// Inside a write, after its events: inserts the entries of each table holding more than
    /// ``capacity``, in key order.
    func flushIfFull(_ txn: ViewTxn) throws {
        for (name, p) in tables where p.entries.count > capacity { try flush(name, p, txn) }
    }

    /// Inserts every waiting entry (the fold has ended).
    func flushAll(_ txn: ViewTxn) throws {
        for (name, p) in tables where !p.entries.isEmpty { try flush(name, p, txn) }
    }

    private func flush(_ table: String, _ p: Pending, _ txn: ViewTxn) throws {
        for k in p.entries.keys.sorted() {
            let key = KeyBuilder().u64(k).bytes
            _ = try GroupedTable.insert(key, p.entries[k]!.bytes, into: table, txn)
        }
        p.flushed = true
        flushed?(table, p.entries.count)
    }

    /// Writes `table` of `source` (the folded view, whose write has ended) into the empty `dest` with what
    /// waits here merged in, in key order with `MDB_APPEND` (``BulkLoad/append(into:_:_:)``): the same
    /// records as inserting them first and copying the table, without the insertions.
    func merge(_ table: String, from source: ViewStore, into dest: ViewStore) throws {
        guard let p = tables[table] else { return }
        let waiting = p.entries.keys.sorted()
        try source.env.read { txn in
            try BulkLoad.append(into: dest, table) { add in
                var next = 0
                func addWaiting(before key: UnsafeRawBufferPointer?) throws {
                    // Asked for every entry of the table: the waiting key is compared in place, not copied.
                    while next < waiting.count {
                        let stop = try withUnsafeBytes(of: waiting[next].bigEndian) { k -> Bool in
                            if let key, GroupedTable.compare(k, key) >= 0 { return true }
                            try p.entries[waiting[next]]!.bytes.withUnsafeBytes { try add(k, $0) }
                            return false
                        }
                        if stop { return }
                        next += 1
                    }
                }
                try GroupedTable.scan(txn, source.table(table), prefix: [], view: source.name, table: table) { k, v in
                    try addWaiting(before: k)
                    try add(k, v)
                    return true
                }
                try addWaiting(before: nil)
            }
        }
        p.entries.removeAll()
    }

    /// Called once a write has committed: what it inserted leaves memory.
    func commit() {
        for p in tables.values {
            if p.flushed { p.entries.removeAll() }
            p.added.removeAll(keepingCapacity: true)
            p.flushed = false
        }
    }
}
