public import ClewCore
import ClewLedger
import ClewModel
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An error from the views: what is wrong, with which view, and what Clew did or will do about it.
public struct ViewError: ClewError {
    public enum Kind: String, Sendable {
        /// The view's files are missing.
        case missing
        /// The view's bytes do not check (a record's checksum, LMDB's structure, its meta record).
        case corrupt
        /// The view was built from another ledger, by another format, or is ahead of the log.
        case mismatched
        /// A query or argument is invalid (unknown view, bad `--as-of`).
        case invalidInput
        /// The view answered something the log contradicts.
        case inconsistent
    }

    public let kind: Kind
    /// The view concerned, when there is one.
    public let view: String?
    public let message: String

    public init(_ kind: Kind, view: String?, _ message: String) {
        self.kind = kind
        self.view = view
        self.message = message
    }

    public var description: String { message }

    /// Missing views are unavailable (being built); corrupt or contradicted views are corrupted;
    /// mismatched views conflict with the ledger; a bad query is invalid input.
    public var category: ErrorCategory {
        switch kind {
        case .missing: return .unavailable
        case .corrupt, .inconsistent: return .corrupted
        case .mismatched: return .conflict
        case .invalidInput: return .invalidInput
        }
    }
}

/// One view's LMDB environment: its tables (named databases), a `meta` table with the checkpoint, and
/// checksummed records. Every value is stored as `bytes ‖ checksum(key, bytes)` and checked on every read.
final class ViewStore: @unchecked Sendable {
    // @unchecked Sendable: `env` is thread-safe (MDB_NOTLS); the table handles are fixed after `init`.
    let name: String
    let directory: URL
    let env: Environment
    private(set) var tables: [String: Database] = [:]
    let meta: Database
    /// Table names in digest order.
    let tableNames: [String]

    /// 2: branch tasks' choices (a list) are folded; format 1 dropped their task.succeeded.
    /// 3: runs and tasks take their times from a payload's `time_us` (when the producer reported it) and
    /// keep a run's `external_id`.
    /// 4: the chunk view keeps its history (`changes`, `snapshots`) and the runs view a `by_epoch` index,
    /// for `--as-of` without a refold; a dataset's `lastSeq` moves when its chunks are marked stale.
    /// 5: the lineage view interns node ids (8-byte numbers with the node's kind in the top byte); the
    /// value index keeps digests as 32 bytes (`by_digest`: in the key only) and attempts and steps as varints.
    /// 6: run, task, chunk and dataset records are binary (``BinaryRecord``) instead of JSON; an entry
    /// of the chunk history (`changes`) holds up to 32 events of a dataset; value hits leave out what
    /// their key holds.
    /// 7: lineage node ids are stored once (`names`, without their kind's prefix, a value's digest as 32
    /// bytes) and found from a hash (`ids`) instead of a table keyed by ids (`nodes`).
    /// 8: chunk keys in their partitioning's order have no `ordinals` entry (found by their chunk record);
    /// the value index (`by_name`, `by_digest`), the staleness tables (`consumers`, `outputs`) and the
    /// lineage node tables (`names`, `ids`) are ``GroupedTable``s: neighbouring entries share a record.
    /// 9: a chunk record stores its key as the spelling of its ordinal when it is one (``ChunkKeyForm``)
    /// and its `producedSeq` back from `since`; the chunk history moves an ordinal between sets in one
    /// operation and stores ordinals as differences from the entry's previous one.
    /// 10: a ``GroupedTable``'s groups start where its entries say (a hash of the key), not where
    /// insertions split them, so a rebuild loads the value index and lineage edges in key order
    /// (``BulkLoad``) and writes the records a fold of the same events writes.
    /// 11: a chunk history snapshot stores each range's start as its gap from the range before, and is
    /// due after twice as many operations as it holds ranges (when more than 4,096).
    static let formatVersion = 11

    init(
        name: String, directory: URL, tables tableNames: [String], readOnly: Bool = false, building: Bool = false, mapSize: Int = 64 << 20
    ) throws {
        self.name = name
        self.directory = directory
        self.tableNames = tableNames
        if !readOnly { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        var options = Environment.Options()
        // Its tables, `meta`, and the spills of deferred insertions (``DeferredInserts``) while it is built.
        options.maxDatabases = UInt32(2 * tableNames.count + 2)
        options.readOnly = readOnly
        options.mapSize = mapSize
        // Views are caches of the log and their checkpoint commits with their data: a crash may undo the
        // last commits (they are folded again), never tear one. A rebuild flushes once, before the swap.
        options.noMetaSync = true
        options.noSync = building
        env = try Environment(path: directory.path, options: options)
        meta = try env.openDatabase("meta")
        for t in tableNames { tables[t] = try env.openDatabase(t) }
    }

    func table(_ name: String) -> Database { tables[name]! }

    /// The entries of bulk-loaded tables while a fold fills this (empty) view; written by
    /// ``finishBulk()`` or by ``copyPacked(into:)`` into the packed copy.
    var bulk: BulkLoad?
    /// The insertions into grouped tables with random keys that a fold into this (empty) view keeps in
    /// memory and writes many at once (``DeferredInserts``); nil once written (``flushDeferred()``).
    var deferred: DeferredInserts?

    /// Writes the deferred insertions into this view's tables (``DeferredInserts/writeAll(into:)``).
    func flushDeferred() throws {
        guard let deferred else { return }
        try deferred.writeAll(into: self)
        self.deferred = nil
    }

    /// Writes the bulk-loaded tables into this view's own tables.
    func finishBulk() throws {
        guard let bulk else { return }
        self.bulk = nil
        defer { bulk.remove() }
        for t in tableNames where bulk.holds(t) { try bulk.write(t, into: self) }
    }

    /// Whether this process has written to the view since it was last sealed.
    var unsealed = false

    func close() {
        if unsealed { try? seal() }
        env.close()
    }

    /// Closes the view without sealing it and deletes its directory: for a generation nothing will read
    /// (a rebuild's folded copy, once packed). A later ``close()`` does nothing.
    func discard() {
        bulk?.remove()
        bulk = nil
        deferred = nil
        unsealed = false
        env.close()
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: seal

    /// `SEAL`: the size and SHA-256 of `data.mdb` as a process that wrote the view left it. A view whose file
    /// no longer matches was changed at rest (bit rot, a stray write) and is rebuilt before LMDB reads a
    /// page of it; without a seal (a writer is active, or one was killed) records are checked instead.
    struct Seal: Codable, Equatable {
        var size: Int
        var sha256: String
    }

    static func sealURL(_ directory: URL) -> URL { directory.appendingPathComponent("SEAL") }

    /// The file hashed through a read-only mapping, in one pass with no copies (reading it in 1 MiB
    /// chunks through `FileHandle` cost about 4% of a rebuild in allocations and copies).
    static func fileDigest(_ file: URL) throws -> Seal {
        let data = try Data(contentsOf: file, options: .alwaysMapped)
        var hasher = SHA256()
        data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return Seal(size: data.count, sha256: Array(hasher.finalize()).hex)
    }

    /// Seals the file, holding LMDB's writer lock so no commit lands in the middle.
    func seal() throws {
        try env.write { _ in
            let seal = try Self.fileDigest(directory.appendingPathComponent("data.mdb"))
            let tmp = directory.appendingPathComponent("SEAL.tmp")
            try JSONEncoder().encode(seal).write(to: tmp)
            _ = rename(tmp.path, Self.sealURL(directory).path)
        }
        unsealed = false
    }

    /// Drops the seal before the first write of a session (inside the write transaction).
    func unsealIfNeeded() {
        guard !unsealed else { return }
        unlink(Self.sealURL(directory).path)
        unsealed = true
    }

    /// Checks the file against its seal: true when sealed and matching, false when there is no seal.
    static func checkSeal(_ directory: URL, view: String) throws -> Bool {
        guard let data = try? Data(contentsOf: sealURL(directory)) else { return false }
        guard let seal = try? JSONDecoder().decode(Seal.self, from: data) else {
            throw ViewError(.corrupt, view: view, "view \(view) has an unreadable seal")
        }
        let now = try fileDigest(directory.appendingPathComponent("data.mdb"))
        guard now == seal else {
            throw ViewError(.corrupt, view: view, "view \(view) does not match its seal (its file changed at rest)")
        }
        return true
    }

    // MARK: packing

    /// Copies every table (and the meta record) into `dest`, a new and empty store of the same view, in
    /// key order with `MDB_APPEND`, so LMDB fills each page before it starts the next. A fold inserts keys
    /// in log order, which is random order for most tables, and LMDB splits a full page into two halves:
    /// views folded that way are about half empty pages. The entries, and so the digest, are the same.
    /// Commits every ``packChunk`` entries, each chunk read before its write so a retried write (the map
    /// grown) puts the same entries again.
    func copyPacked(into dest: ViewStore) throws {
        for name in ["meta"] + tableNames {
            if let bulk, bulk.holds(name) {
                try bulk.write(name, into: dest)
                continue
            }
            if let deferred, deferred.holds(name) {
                try deferred.merge(name, from: self, into: dest)
                continue
            }
            let source = name == "meta" ? meta : table(name)
            let target = name == "meta" ? dest.meta : dest.table(name)
            var after: [UInt8]? = nil
            while true {
                // The next chunk: up to packChunk entries after `after`, copied out of the read transaction.
                let chunk: [([UInt8], [UInt8])] = try env.read { txn in
                    try txn.withCursor(source) { c in
                        var out: [([UInt8], [UInt8])] = []
                        var e: Cursor.Entry?
                        if let after {
                            e = try after.withUnsafeBytes { try c.seek($0) }
                            if let (k, _) = e, k.elementsEqual(after) { e = try c.next() }
                        } else {
                            e = try c.first()
                        }
                        while let (k, v) = e, out.count < Self.packChunk {
                            out.append((Array(k), Array(v)))
                            e = try c.next()
                        }
                        return out
                    }
                }
                guard let last = chunk.last else { break }
                try dest.append(chunk, to: target)
                after = last.0
            }
        }
    }

    static let packChunk = 50_000

    /// Appends `records` (keys after every key of `db`, in order; values stored as they are, their checksum
    /// included) with `MDB_APPEND` in one write transaction, the map grown first. The transaction only
    /// reads `records`, so a write retried after the map grew puts the same records again.
    func append(_ records: [([UInt8], [UInt8])], to db: Database) throws {
        try env.ensureRoom((1 << 20) + records.reduce(0) { $0 + 2 * ($1.0.count + $1.1.count + 16) })
        try env.write { txn in
            for (k, v) in records {
                try k.withUnsafeBytes { key in try v.withUnsafeBytes { try txn.append(db, key, $0) } }
            }
        }
    }

    // MARK: meta

    struct Meta: Codable, Equatable, Sendable {
        var format: Int
        var view: String
        var ledger: String
        /// Seq of the last event folded into the view.
        var checkpoint: UInt64
        /// `ready` once built; `building` while a rebuild fills it.
        var state: String
    }

    static let metaKey = Array("view".utf8)

    func readMeta(_ txn: Transaction) throws -> Meta? {
        guard let bytes = try ViewTxn.checkedGet(txn, meta, Self.metaKey, view: name, table: "meta") else { return nil }
        do {
            return try JSONDecoder().decode(Meta.self, from: Data(bytes))
        } catch {
            throw ViewError(.corrupt, view: name, "the meta record of view \(name) does not decode: \(error)")
        }
    }

    func writeMeta(_ txn: Transaction, _ m: Meta) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try ViewTxn.checkedPut(txn, meta, Self.metaKey, Array(try encoder.encode(m)))
    }

    // MARK: digest and integrity

    /// SHA-256 over every table's records in key order (name, then length-prefixed key and value), the
    /// meta table left out: equal digests mean equal views. `records` counts LMDB records (a group of a
    /// ``GroupedTable`` is one).
    func digest(_ txn: Transaction) throws -> (digest: String, records: Int) {
        var hasher = SHA256()
        var records = 0
        let bounds = txn.mapBounds()
        for t in tableNames {
            hasher.update(data: Array(t.utf8) + [0])
            try txn.withCursor(table(t)) { c in
                var e = try c.first()
                while let (k, v) = e {
                    try ViewTxn.inBounds(k, v, bounds, view: name, table: t)
                    withUnsafeBytes(of: UInt32(k.count).bigEndian) { hasher.update(bufferPointer: $0) }
                    hasher.update(bufferPointer: k)
                    withUnsafeBytes(of: UInt32(v.count).bigEndian) { hasher.update(bufferPointer: $0) }
                    hasher.update(bufferPointer: v)
                    records += 1
                    e = try c.next()
                }
            }
        }
        return (Array(hasher.finalize()).hex, records)
    }

    /// Walks every record of every table checking its checksum and the key order; throws on the first
    /// problem, naming the table and key.
    func checkIntegrity(_ txn: Transaction) throws -> Int {
        var checked = 0
        let bounds = txn.mapBounds()
        for t in ["meta"] + tableNames {
            let db = t == "meta" ? meta : table(t)
            try txn.withCursor(db) { c in
                var previous: [UInt8]? = nil
                var e = try c.first()
                while let (k, v) = e {
                    try ViewTxn.inBounds(k, v, bounds, view: name, table: t)
                    try ViewTxn.check(key: k, stored: v, view: name, table: t)
                    let key = Array(k)
                    if let p = previous, !p.lexicographicallyPrecedes(key) {
                        throw ViewError(.corrupt, view: name, "view \(name), table \(t): keys out of order at \(Self.show(key))")
                    }
                    previous = key
                    checked += 1
                    e = try c.next()
                }
            }
        }
        return checked
    }

    static func show(_ key: [UInt8]) -> String {
        let printable = key.map { $0 >= 0x20 && $0 < 0x7f ? Character(UnicodeScalar($0)) : "." }
        return "\"" + String(printable.prefix(80)) + "\""
    }
}

/// A transaction on one view with checksummed reads and writes.
struct ViewTxn {
    let txn: Transaction
    let store: ViewStore

    func get(_ db: Database, _ key: [UInt8], table: String) throws -> [UInt8]? {
        try Self.checkedGet(txn, db, key, view: store.name, table: table)
    }

    func put(_ db: Database, _ key: [UInt8], _ value: [UInt8]) throws {
        try Self.checkedPut(txn, db, key, value)
    }

    /// Adds `key` → `value` to the grouped table `table` unless the key is there: collected for the bulk
    /// load when the view has one for the table (which keeps the first value of a key), else inserted
    /// (``GroupedTable/insert(_:_:into:_:)``). Returns false when the key was there (only known when
    /// inserted).
    @discardableResult
    func add(_ key: [UInt8], _ value: [UInt8], grouped table: String) throws -> Bool {
        if let bulk = store.bulk, bulk.holds(table) {
            bulk.add(key, value, to: table)
            return true
        }
        if let deferred = store.deferred, deferred.holds(table) {
            return try deferred.add(key, value, to: table, self)
        }
        return try GroupedTable.insert(key, value, into: table, self)
    }

    /// The value of `key` in the grouped table `table`, deferred (``DeferredInserts``) or written.
    func get(_ key: [UInt8], grouped table: String) throws -> [UInt8]? {
        if let deferred = store.deferred, deferred.holds(table) { return try deferred.get(key, from: table, self) }
        return try GroupedTable.get(key, txn, store.table(table), view: store.name, table: table)
    }

    /// Stores `value` unless `key` exists; returns whether it stored.
    @discardableResult
    func insert(_ db: Database, _ key: [UInt8], _ value: [UInt8]) throws -> Bool {
        try Self.checkedPut(txn, db, key, value, noOverwrite: true)
    }

    func delete(_ db: Database, _ key: [UInt8]) throws {
        try key.withUnsafeBytes { try txn.delete(db, $0) }
    }

    /// Calls `body` with each entry whose key starts with `prefix` (from `start` when given), checked,
    /// until it returns false.
    func scan(
        _ db: Database, prefix: [UInt8], from start: [UInt8]? = nil, table: String, reverse: Bool = false,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try Self.scan(txn, db, prefix: prefix, from: start, view: store.name, table: table, reverse: reverse, body)
    }

    static func scan(
        _ txn: Transaction, _ db: Database, prefix: [UInt8], from start: [UInt8]? = nil, view: String, table: String,
        reverse: Bool = false, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let bounds = txn.mapBounds()
        try txn.withCursor(db) { c in
            var e: Cursor.Entry?
            if reverse {
                e = try lastBefore(upperBound(of: prefix), &c)
            } else {
                let s = start ?? prefix
                e = s.isEmpty ? try c.first() : try s.withUnsafeBytes { try c.seek($0) }
            }
            while let (k, v) = e {
                try inBounds(k, v, bounds, view: view, table: table)
                guard k.hasPrefix(prefix) else { return }
                if try !body(k, checked(key: k, stored: v, view: view, table: table)) { return }
                e = reverse ? try c.previous() : try c.next()
            }
        }
    }

    /// Calls `body` with the greatest entry whose key starts with `prefix` and sorts before `below` (the
    /// last with the prefix when `below` is nil), checked; does nothing when there is none.
    static func last(
        _ txn: Transaction, _ db: Database, prefix: [UInt8], below: [UInt8]?, view: String, table: String,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let bounds = txn.mapBounds()
        try txn.withCursor(db) { c in
            guard let (k, v) = try lastBefore(below ?? upperBound(of: prefix), &c) else { return }
            try inBounds(k, v, bounds, view: view, table: table)
            guard k.hasPrefix(prefix) else { return }
            try body(k, checked(key: k, stored: v, view: view, table: table))
        }
    }

    /// The smallest key after every key that starts with `prefix`: the prefix with its last byte below
    /// 0xff incremented (empty when there is none: every key).
    static func upperBound(of prefix: [UInt8]) -> [UInt8] {
        var upper = prefix
        while let b = upper.last, b == 0xff { upper.removeLast() }
        if !upper.isEmpty { upper[upper.count - 1] += 1 }
        return upper
    }

    /// The cursor on the last entry whose key sorts before `upper` (the last entry when `upper` is empty).
    static func lastBefore(_ upper: [UInt8], _ c: inout Cursor) throws -> Cursor.Entry? {
        if upper.isEmpty { return try c.last() }
        return try upper.withUnsafeBytes { try c.seek($0) } != nil ? try c.previous() : try c.last()
    }

    /// A damaged node can point outside the map; reading there would crash, so it is refused first.
    @inline(__always)
    static func inBounds(_ k: UnsafeRawBufferPointer, _ v: UnsafeRawBufferPointer, _ map: UnsafeRawBufferPointer?, view: String, table: String) throws {
        guard let map, let base = map.baseAddress else { return }
        let end = base + map.count
        for b in [k, v] where b.count > 0 {
            guard let p = b.baseAddress, p >= base, b.count <= end - p else {
                throw ViewError(.corrupt, view: view, "view \(view), table \(table): a record points outside the file")
            }
        }
    }

    static func check(key: UnsafeRawBufferPointer, stored: UnsafeRawBufferPointer, view: String, table: String) throws {
        guard stored.count >= Checksum.size else {
            throw ViewError(.corrupt, view: view, "view \(view), table \(table): record \(ViewStore.show(Array(key))) is too short")
        }
        let body = UnsafeRawBufferPointer(rebasing: stored[0..<(stored.count - Checksum.size)])
        let want = UnsafeRawBufferPointer(rebasing: stored[(stored.count - Checksum.size)...]).loadUnaligned(as: UInt64.self)
        guard Checksum.of(key, body) == UInt64(littleEndian: want) else {
            throw ViewError(.corrupt, view: view, "view \(view), table \(table): record \(ViewStore.show(Array(key))) fails its checksum")
        }
    }

    /// The value of a record read in place, once its checksum holds (the checksum removed).
    static func checked(key: UnsafeRawBufferPointer, stored: UnsafeRawBufferPointer, view: String, table: String) throws -> UnsafeRawBufferPointer {
        try check(key: key, stored: stored, view: view, table: table)
        return UnsafeRawBufferPointer(rebasing: stored[0..<(stored.count - Checksum.size)])
    }

    static func checkedGet(_ txn: Transaction, _ db: Database, _ key: [UInt8], view: String, table: String) throws -> [UInt8]? {
        try key.withUnsafeBytes { k in
            guard let v = try txn.get(db, k) else { return nil }
            try inBounds(UnsafeRawBufferPointer(start: nil, count: 0), v, txn.mapBounds(), view: view, table: table)
            try check(key: k, stored: v, view: view, table: table)
            return Array(v[0..<(v.count - Checksum.size)])
        }
    }

    /// Writes `value` and its checksum (with `key`) into `dst`, which has room for both.
    static func store(_ value: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, in dst: UnsafeMutableRawBufferPointer) {
        let sum = Checksum.of(key, value).littleEndian
        dst.copyMemory(from: value)
        withUnsafeBytes(of: sum) { UnsafeMutableRawBufferPointer(rebasing: dst[value.count...]).copyMemory(from: $0) }
    }

    @discardableResult
    static func checkedPut(_ txn: Transaction, _ db: Database, _ key: [UInt8], _ value: [UInt8], noOverwrite: Bool = false) throws -> Bool {
        try key.withUnsafeBytes { k in
            try value.withUnsafeBytes { v in
                if noOverwrite, try txn.get(db, k) != nil { return false }
                try txn.reserve(db, k, count: v.count + Checksum.size) { store(v, key: k, in: $0) }
                return true
            }
        }
    }
}
