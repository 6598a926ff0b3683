internal import CLMDB

/// A handle to a named database inside an environment (an `MDB_dbi`).
package struct Database: Sendable, Hashable {
    let dbi: MDB_dbi
}

/// A live LMDB transaction, only ever handed to the closures of ``Environment/read(_:)`` and
/// ``Environment/write(_:)``. Buffers it returns point into the map and are valid until the closure
/// returns; copy what must outlive it.
package struct Transaction {
    let txn: OpaquePointer
    package let writable: Bool
    /// Where the environment's data file is mapped (read transactions only).
    let mapBase: UnsafeRawPointer?

    init(_ txn: OpaquePointer, writable: Bool, mapBase: UnsafeRawPointer? = nil) {
        self.txn = txn
        self.writable = writable
        self.mapBase = mapBase
    }

    func openDatabase(_ name: String, flags: Int32) throws -> Database {
        var dbi = MDB_dbi()
        try check(mdb_dbi_open(txn, name, UInt32(flags), &dbi))
        return Database(dbi: dbi)
    }

    /// The bytes of the map this transaction may see (pages up to the last one in use): buffers LMDB
    /// returns must lie inside, or a damaged node pointed outside (checked before reading a damaged file).
    /// Nil in write transactions (their dirty pages live outside the map) or when the map is unknown.
    package func mapBounds() -> UnsafeRawBufferPointer? {
        guard !writable, let mapBase else { return nil }
        var info = MDB_envinfo()
        var stat = MDB_stat()
        let env = mdb_txn_env(txn)
        mdb_env_info(env, &info)
        mdb_env_stat(env, &stat)
        return UnsafeRawBufferPointer(start: mapBase, count: (Int(info.me_last_pgno) + 1) * Int(stat.ms_psize))
    }

    /// The value stored under `key`, or nil.
    package func get(_ db: Database, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(txn, db.dbi, &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    package func get(_ db: Database, _ key: UInt64) throws -> UnsafeRawBufferPointer? {
        try withUnsafeBytes(of: key.bigEndian) { try get(db, $0) }
    }

    /// Stores `value` under `key`. Returns false instead of throwing when `MDB_NOOVERWRITE` finds the key.
    @discardableResult
    package func put(
        _ db: Database,
        _ key: UnsafeRawBufferPointer,
        _ value: UnsafeRawBufferPointer,
        flags: Int32 = 0
    ) throws -> Bool {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        let rc = mdb_put(txn, db.dbi, &k, &v, UInt32(flags))
        if rc == MDB_KEYEXIST && flags & (MDB_NOOVERWRITE | MDB_NODUPDATA) != 0 { return false }
        try check(rc)
        return true
    }

    /// Stores `value` under `key`, which must sort after every key of `db` (`MDB_APPEND`): LMDB then
    /// fills each page before it starts the next, where inserts in random order leave pages half full.
    package func append(_ db: Database, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        try put(db, key, value, flags: MDB_APPEND)
    }

    /// Reserves `count` bytes under `key` and lets `fill` write them in place (no intermediate copy).
    package func reserve(
        _ db: Database,
        _ key: UnsafeRawBufferPointer,
        count: Int,
        flags: Int32 = 0,
        _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        try check(mdb_put(txn, db.dbi, &k, &v, UInt32(flags | MDB_RESERVE)))
        fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }

    package func delete(_ db: Database, _ key: UnsafeRawBufferPointer) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(txn, db.dbi, &k, nil)
        if rc == MDB_NOTFOUND { return }
        try check(rc)
    }

    /// Removes every entry of `db` (keeps the database).
    package func clear(_ db: Database) throws {
        try check(mdb_drop(txn, db.dbi, 0))
    }

    /// Entry count and page usage of one database.
    package func stat(_ db: Database) throws -> DatabaseStat {
        var s = MDB_stat()
        try check(mdb_stat(txn, db.dbi, &s))
        return DatabaseStat(
            entries: Int(s.ms_entries),
            pages: Int(s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages),
            leafPages: Int(s.ms_leaf_pages),
            pageSize: Int(s.ms_psize),
            depth: Int(s.ms_depth)
        )
    }

    /// Runs `body` with a cursor over `db`, closed when `body` returns.
    package func withCursor<T>(_ db: Database, _ body: (inout Cursor) throws -> T) throws -> T {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db.dbi, &cursor))
        defer { mdb_cursor_close(cursor) }
        var c = Cursor(cursor: cursor!)
        return try body(&c)
    }
}

package struct DatabaseStat: Sendable {
    package var entries: Int
    /// Branch, leaf and overflow pages.
    package var pages: Int
    package var leafPages: Int
    package var pageSize: Int
    package var depth: Int
    package var bytes: Int { pages * pageSize }
}

/// A cursor positioned on one entry; moves return nil at either end.
package struct Cursor {
    package typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
    let cursor: OpaquePointer

    private func op(_ op: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws -> Entry? {
        var k = MDB_val(mv_size: key?.count ?? 0, mv_data: UnsafeMutableRawPointer(mutating: key?.baseAddress))
        var v = MDB_val()
        let rc = mdb_cursor_get(cursor, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    package mutating func first() throws -> Entry? { try op(MDB_FIRST) }
    package mutating func last() throws -> Entry? { try op(MDB_LAST) }
    package mutating func next() throws -> Entry? { try op(MDB_NEXT) }
    package mutating func previous() throws -> Entry? { try op(MDB_PREV) }
    /// First entry whose key is >= `key`.
    package mutating func seek(_ key: UnsafeRawBufferPointer) throws -> Entry? { try op(MDB_SET_RANGE, key: key) }
    package mutating func seek(_ key: UInt64) throws -> Entry? {
        try withUnsafeBytes(of: key.bigEndian) { try seek($0) }
    }
    /// Positions on exactly `key` (first duplicate) or returns nil.
    package mutating func find(_ key: UnsafeRawBufferPointer) throws -> Entry? { try op(MDB_SET_KEY, key: key) }
    package mutating func nextDuplicate() throws -> Entry? { try op(MDB_NEXT_DUP) }
    /// First duplicate of the next key (DUPSORT databases).
    package mutating func nextKey() throws -> Entry? { try op(MDB_NEXT_NODUP) }
    /// Number of duplicates of the current key (DUPSORT databases).
    package func duplicateCount() throws -> Int {
        var n: Int = 0
        try check(mdb_cursor_count(cursor, &n))
        return n
    }
    /// Replaces the value of the entry the cursor is on (whose key is `key`) with `count` bytes that
    /// `fill` writes in place (`MDB_CURRENT | MDB_RESERVE`), without searching the tree again.
    package mutating func replace(_ key: UnsafeRawBufferPointer, count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        try check(mdb_cursor_put(cursor, &k, &v, UInt32(MDB_CURRENT | MDB_RESERVE)))
        fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }
    /// Stores `value` under `key` through this cursor (`mdb_cursor_put`), leaving it on the new entry:
    /// puts in key order then find each key near the last one instead of from the root.
    package mutating func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, flags: Int32 = 0) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_cursor_put(cursor, &k, &v, UInt32(flags)))
    }
    /// Stores `value` under `key` through this cursor unless the key is there (`MDB_NOOVERWRITE`);
    /// returns whether it stored.
    package mutating func insert(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        let rc = mdb_cursor_put(cursor, &k, &v, UInt32(MDB_NOOVERWRITE))
        if rc == MDB_KEYEXIST { return false }
        try check(rc)
        return true
    }
    package mutating func lastDuplicate() throws -> Entry? { try op(MDB_LAST_DUP) }
    package mutating func previousDuplicate() throws -> Entry? { try op(MDB_PREV_DUP) }
    /// Positions on key `key` and the first duplicate >= `value` (DUPSORT databases).
    package mutating func seek(_ key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws -> Entry? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        let rc = mdb_cursor_get(cursor, &k, &v, MDB_GET_BOTH_RANGE)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
}

extension UnsafeRawBufferPointer {
    /// Reads a big-endian u64 (a sequence number key).
    @inline(__always)
    package var bigEndianUInt64: UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: self[0..<8])) }
        return UInt64(bigEndian: v)
    }
}
