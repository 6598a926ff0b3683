import ClewLedger

/// Write-back cache of binary records (``BinaryRecord``) for one batch: reads go to the view once, every change stays in memory
/// and is written once at ``flush(_:_:_:)``, with the record as it was before the batch so indexes can
/// move their entries.
struct RecordCache<R: BinaryRecord> {
    private var entries: [ByteKey: (original: R?, current: R?)] = [:]
    let table: String

    init(table: String) { self.table = table }

    var count: Int { entries.count }

    mutating func get(_ key: [UInt8], _ txn: ViewTxn, _ db: Database) throws -> R? {
        if let e = entries[ByteKey(key)] { return e.current }
        let r = try txn.get(db, key, table: table).map { try Self.decode($0, table: table, view: txn.store.name) }
        entries[ByteKey(key)] = (r, r)
        return r
    }

    mutating func set(_ key: [UInt8], _ record: R) {
        if let e = entries[ByteKey(key)] {
            entries[ByteKey(key)] = (e.original, record)
        } else {
            preconditionFailure("RecordCache.set before get for \(table)")
        }
    }

    /// Writes every changed record (sorted by key, so writes are deterministic) and calls `moved` with
    /// the before/after of each.
    mutating func flush(_ txn: ViewTxn, _ db: Database, moved: ([UInt8], R?, R?) throws -> Void = { _, _, _ in }) throws {
        for (k, e) in entries.filter({ $0.value.original != $0.value.current }).sorted(by: { $0.key < $1.key }) {
            let key = k.bytes
            if let c = e.current {
                try txn.put(db, key, c.encoded())
            } else {
                try txn.delete(db, key)
            }
            try moved(key, e.original, e.current)
        }
        entries.removeAll(keepingCapacity: true)
    }

    mutating func reset() { entries.removeAll() }

    /// The record under `key` in `table`, checksum-checked and decoded (nil when absent).
    static func read(_ key: [UInt8], table: String, _ txn: Transaction, _ store: ViewStore) throws -> R? {
        try ViewTxn.checkedGet(txn, store.table(table), key, view: store.name, table: table)
            .map { try decode($0, table: table, view: store.name) }
    }

    static func decode(_ bytes: [UInt8], table: String, view: String) throws -> R {
        try bytes.withUnsafeBytes { try decode($0, table: table, view: view) }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, table: String, view: String) throws -> R {
        do {
            return try R.decoded(bytes)
        } catch {
            throw ViewError(.corrupt, view: view, "view \(view), table \(table): a record does not decode (\(error))")
        }
    }
}
