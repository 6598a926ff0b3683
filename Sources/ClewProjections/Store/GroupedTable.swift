import ClewLedger
#if canImport(Glibc)
import Glibc
#endif

/// A sorted map of byte keys to byte values stored as groups of neighbouring entries: one record per
/// group, keyed by its first entry's key. Each entry saves a record's fixed cost (LMDB's node header and
/// slot, 10 bytes, and the 8-byte checksum) and the prefix its key shares with the key before it, which
/// for index tables (a name, a value, then a seq; a chunk then an attempt) is most of the key.
///
/// A group's value (before its checksum): the first entry's value length and value (its key is the
/// record's), then for each later entry the length of the prefix its key shares with the key before it,
/// the length of the rest and the rest, then its value's length and value; every length a varint. Keys
/// strictly increase within and across groups.
///
/// An insertion goes into the group whose range holds its key (the last group whose first key is not
/// after it; the first group for a key before all of them), and a group grown past ``maxBytes`` is split
/// in two halves by bytes. Where groups split depends only on what was inserted and in what order, so a
/// view folded in any batches has the same records as one folded at once.
///
/// Entries are only inserted: the views that keep these tables drop them whole to fold again.
enum GroupedTable {
    /// A group's value is split past this many bytes: an eighth of a 4 KiB page, so pages filled in key
    /// order (a rebuild's copy) lose little at their ends, and an insertion rewrites half a kilobyte.
    /// (1 KiB groups were 1% smaller in all and no faster to fold.)
    static let maxBytes = 512

    /// The entries of one group in order: after each ``next()``, the entry's key (``withKey(_:)``,
    /// ``compare(_:)``, ``key``) and its value as ``value``, a range of ``bytes``.
    struct Walk {
        let bytes: UnsafeRawBufferPointer
        /// The current key is the first `keyCount` bytes (the buffer only grows).
        private var buffer: [UInt8]
        private(set) var keyCount: Int
        private(set) var value: Range<Int> = 0..<0
        /// Where the current entry starts and where the next one does.
        private(set) var start = 0
        private(set) var end = 0
        private var started = false
        let view: String
        let table: String

        init(first: UnsafeRawBufferPointer, bytes: UnsafeRawBufferPointer, view: String, table: String) {
            self.bytes = bytes
            self.buffer = [UInt8](copying: first)
            self.keyCount = first.count
            self.view = view
            self.table = table
        }

        /// Moves to the next entry (the first on the first call); false past the last.
        mutating func next() throws -> Bool {
            if started, end >= bytes.count { return false }
            start = end
            var r = KeyReader(bytes, at: start)
            if started {
                guard let shared = r.wholeVarint(), let n = r.wholeVarint(), shared <= keyCount, n > 0, n <= bytes.count - r.offset else {
                    throw corrupt("an entry's key does not decode")
                }
                let s = Int(shared)
                let count = Int(n)
                if s < keyCount, bytes[r.offset] <= buffer[s] { throw corrupt("entries out of order") }
                if buffer.count < s + count { buffer.append(contentsOf: repeatElement(0, count: s + count - buffer.count)) }
                let from = bytes.baseAddress! + r.offset
                buffer.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: s).copyMemory(from: from, byteCount: count) }
                keyCount = s + count
                r.skip(count)
            }
            guard let n = r.wholeVarint(), n <= bytes.count - r.offset else { throw corrupt("an entry's value does not decode") }
            value = r.offset..<(r.offset + Int(n))
            end = value.upperBound
            started = true
            return true
        }

        var valueBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[value]) }

        /// The current key, copied.
        var key: [UInt8] { Array(buffer[0..<keyCount]) }

        func withKey<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
            try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<keyCount])) }
        }

        /// How the current key sorts against `other` (LMDB's order: bytes, then length): < 0, 0 or > 0.
        func compare(_ other: [UInt8]) -> Int {
            buffer.withUnsafeBytes { a in other.withUnsafeBytes { b in GroupedTable.compare(UnsafeRawBufferPointer(rebasing: a[0..<keyCount]), b) } }
        }

        /// Whether the current key starts with `prefix`.
        func hasPrefix(_ prefix: [UInt8]) -> Bool {
            keyCount >= prefix.count && buffer.withUnsafeBytes { a in prefix.withUnsafeBytes { b in b.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, b.count) == 0 } }
        }

        func corrupt(_ what: String) -> ViewError {
            ViewError(.corrupt, view: view, "view \(view), table \(table): a group of entries at \(ViewStore.show(key)): \(what)")
        }
    }

    /// LMDB's order of keys: bytes, then length.
    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        let c = n == 0 ? 0 : Int(memcmp(a.baseAddress!, b.baseAddress!, n))
        return c != 0 ? c : a.count - b.count
    }

    // MARK: writing

    /// Inserts `key` → `value` unless the key is there; returns whether it inserted.
    ///
    /// The group is rewritten through the cursor that found it (one search of the tree) unless it
    /// splits or takes a new first key.
    @discardableResult
    static func insert(_ key: [UInt8], _ value: [UInt8], into table: String, _ txn: ViewTxn) throws -> Bool {
        let db = txn.store.table(table)
        let view = txn.store.name
        let bounds = txn.txn.mapBounds()
        enum Outcome { case present, empty, written, pending(old: [UInt8], new: [UInt8], bytes: [UInt8]) }
        let outcome = try txn.txn.withCursor(db) { c -> Outcome in
            let after = try key.withUnsafeBytes { try c.seek($0) }
            if let (k, _) = after, k.elementsEqual(key) { return .present }
            var e = after == nil ? try c.last() : try c.previous()
            // Before every group: the first one takes it.
            if e == nil, after != nil { e = try key.withUnsafeBytes { try c.seek($0) } }
            guard let (k, v) = e else { return .empty }
            try ViewTxn.inBounds(k, v, bounds, view: view, table: table)
            let group = try ViewTxn.checked(key: k, stored: v, view: view, table: table)
            guard let (first, bytes) = try inserting(key, value, intoGroup: k, group, view: view, table: table) else { return .present }
            let groupKey = [UInt8](copying: k)
            guard first == nil, bytes.count <= maxBytes else { return .pending(old: groupKey, new: first ?? groupKey, bytes: bytes) }
            try groupKey.withUnsafeBytes { k in
                try bytes.withUnsafeBytes { v in try c.replace(k, count: v.count + Checksum.size) { ViewTxn.store(v, key: k, in: $0) } }
            }
            return .written
        }
        switch outcome {
        case .present: return false
        case .written: return true
        case .empty:
            try txn.put(db, key, entry(value: value))
            return true
        case .pending(let old, let recordKey, let out):
            if recordKey != old { try txn.delete(db, old) }
            guard out.count > maxBytes else {
                try txn.put(db, recordKey, out)
                return true
            }
            // Split at the first entry starting in the second half of the bytes (never the first entry).
            try out.withUnsafeBytes { bytes in
                try recordKey.withUnsafeBytes { first in
                    var w = Walk(first: first, bytes: bytes, view: view, table: table)
                    while try w.next() {
                        guard w.start > 0, w.start >= bytes.count / 2 else { continue }
                        try txn.put(db, recordKey, [UInt8](copying: UnsafeRawBufferPointer(rebasing: bytes[..<w.start])))
                        var second = entry(value: w.valueBytes)
                        second.append(copying: UnsafeRawBufferPointer(rebasing: bytes[w.end...]))
                        try txn.put(db, w.key, second)
                        return
                    }
                    try txn.put(db, recordKey, [UInt8](copying: bytes))
                }
            }
            return true
        }
    }

    /// The group keyed `groupKey` holding `bytes` with `key` → `value` inserted, and the group's new first
    /// key when `key` goes before its first entry; nil when the group holds `key`.
    static func inserting(
        _ key: [UInt8], _ value: [UInt8], intoGroup groupKey: UnsafeRawBufferPointer, _ bytes: UnsafeRawBufferPointer, view: String, table: String
    ) throws -> (first: [UInt8]?, bytes: [UInt8])? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + key.count + value.count + 8)
        var w = Walk(first: groupKey, bytes: bytes, view: view, table: table)
        // The first entry after the key (if any), and where the one before it starts.
        var previousStart: Int?
        var following = false
        while try w.next() {
            let c = w.compare(key)
            if c == 0 { return nil }
            if c > 0 {
                following = true
                break
            }
            previousStart = w.start
        }
        guard let previousStart else {
            // Before the group's first entry (`w`): the key becomes the group's.
            out += entry(value: value)
            key.withUnsafeBytes { k in w.withKey { append(&out, key: $0, after: k, value: w.valueBytes) } }
            out.append(copying: UnsafeRawBufferPointer(rebasing: bytes[w.end...]))
            return (key, out)
        }
        // After the entry at `previousStart`: that entry's key again, then the new entry and the next one
        // re-encoded against it.
        var p = Walk(first: groupKey, bytes: bytes, view: view, table: table)
        while try p.next(), p.start < previousStart {}
        out.append(copying: UnsafeRawBufferPointer(rebasing: bytes[..<p.end]))
        key.withUnsafeBytes { k in p.withKey { append(&out, key: k, after: $0, value: value) } }
        if following {
            key.withUnsafeBytes { k in w.withKey { append(&out, key: $0, after: k, value: w.valueBytes) } }
            out.append(copying: UnsafeRawBufferPointer(rebasing: bytes[w.end...]))
        }
        return (nil, out)
    }

    /// A group's first entry: its value's length and value.
    private static func entry(value: UnsafeRawBufferPointer) -> [UInt8] {
        var k = KeyBuilder(capacity: value.count + 2)
        k.appendVarint(UInt64(value.count))
        k.bytes.append(copying: value)
        return k.bytes
    }

    private static func entry(value: [UInt8]) -> [UInt8] { value.withUnsafeBytes { entry(value: $0) } }

    /// A later entry, `key` against `previous`.
    private static func append(_ out: inout [UInt8], key: UnsafeRawBufferPointer, after previous: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        var shared = 0
        let n = min(key.count, previous.count)
        while shared < n, key[shared] == previous[shared] { shared += 1 }
        var k = KeyBuilder(capacity: 0)
        swap(&k.bytes, &out)
        k.appendVarint(UInt64(shared))
        k.appendVarint(UInt64(key.count - shared))
        k.bytes.append(copying: UnsafeRawBufferPointer(rebasing: key[shared...]))
        k.appendVarint(UInt64(value.count))
        k.bytes.append(copying: value)
        swap(&k.bytes, &out)
    }

    private static func append(_ out: inout [UInt8], key: UnsafeRawBufferPointer, after previous: UnsafeRawBufferPointer, value: [UInt8]) {
        value.withUnsafeBytes { append(&out, key: key, after: previous, value: $0) }
    }

    // MARK: reading

    /// The value of `key`, or nil.
    static func get(_ key: [UInt8], _ txn: Transaction, _ db: Database, view: String, table: String) throws -> [UInt8]? {
        var found: [UInt8]?
        try scan(txn, db, prefix: key, view: view, table: table) { k, v in
            if k.count == key.count { found = [UInt8](copying: v) }
            return false
        }
        return found
    }

    /// Calls `body` with each entry whose key starts with `prefix` (from `start` when given, which must
    /// start with it), in key order, until it returns false.
    static func scan(
        _ txn: Transaction, _ db: Database, prefix: [UInt8], from start: [UInt8]? = nil, view: String, table: String,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let s = start ?? prefix
        let bounds = txn.mapBounds()
        try txn.withCursor(db) { c in
            // The group holding `s`: the last whose first key is not after it.
            var e = s.isEmpty ? try c.first() : try s.withUnsafeBytes { try c.seek($0) }
            if !s.isEmpty, e.map({ !$0.key.elementsEqual(s) }) ?? true {
                let had = e != nil
                e = had ? try c.previous() : try c.last()
                if e == nil, had { e = try s.withUnsafeBytes { try c.seek($0) } }
            }
            while let (k, v) = e {
                try ViewTxn.inBounds(k, v, bounds, view: view, table: table)
                let bytes = try ViewTxn.checked(key: k, stored: v, view: view, table: table)
                var w = Walk(first: k, bytes: bytes, view: view, table: table)
                while try w.next() {
                    if w.compare(s) < 0 { continue }
                    guard w.hasPrefix(prefix) else { return }
                    let more = try w.withKey { try body($0, w.valueBytes) }
                    if !more { return }
                }
                e = try c.next()
            }
        }
    }

    /// The greatest entry whose key starts with `prefix`, or nil.
    static func last(_ txn: Transaction, _ db: Database, prefix: [UInt8], view: String, table: String) throws -> (key: [UInt8], value: [UInt8])? {
        var found: ([UInt8], [UInt8])?
        try ViewTxn.last(txn, db, prefix: [], below: ViewTxn.upperBound(of: prefix).nilIfEmpty, view: view, table: table) { k, v in
            var w = Walk(first: k, bytes: v, view: view, table: table)
            while try w.next() {
                if w.hasPrefix(prefix) { found = (w.key, [UInt8](copying: w.valueBytes)) }
            }
        }
        return found
    }
}

extension Array where Element == UInt8 {
    fileprivate var nilIfEmpty: [UInt8]? { isEmpty ? nil : self }
}
