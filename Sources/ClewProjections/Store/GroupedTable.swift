import ClewLedger
#if canImport(Glibc)
import Glibc
#endif

/// A sorted map of byte keys to byte values stored as groups of neighbouring entries, one record per
/// group (or a few, for a big group), keyed by its first entry's key. Each entry saves a record's fixed
/// cost (LMDB's node header and slot, 10 bytes, and the 8-byte checksum) and the prefix its key shares
/// with the key before it, which for index tables (a name, a value, then a seq; a chunk then an attempt)
/// is most of the key.
///
/// A record's value (before its checksum): the first entry's value length and value (its key is the
/// record's), then for each later entry the length of the prefix its key shares with the key before it,
/// the length of the rest and the rest, then its value's length and value; every length a varint. Keys
/// strictly increase within and across records.
///
/// Where groups start depends on the entries alone: the table's first entry starts one, and so does
/// every entry that ``startsGroup(_:valueCount:)`` picks (from a hash of its key, with a chance that
/// grows with its size, so a group holds ``meanBytes`` of entries on average). A group is cut into
/// records greedily, each at most ``recordBytes``. So the same entries give the same records whatever
/// order they arrive in and however they are batched: a catch-up's insertions one at a time, a fold's
/// in log order, or a rebuild's bulk load in key order (``Builder``, ``BulkLoad``) all write the same
/// bytes. (Format 9 split a group in halves when it outgrew 512 bytes: its records depended on the order
/// of insertions, so a table could not be loaded in key order and still equal a fold.)
///
/// Entries are only inserted: the views that keep these tables drop them whole to fold again.
enum GroupedTable {
    /// The mean number of entry bytes (key and value, as they arrive) between group starts. Group sizes
    /// are spread (exponentially): on the 1M-event corpus (`clew bench views`, 2026-12-04) the views
    /// took 105.3 MB with a mean of 320 (more groups, each with its record's fixed cost), 103.4 with 512
    /// and 103.6 with 768 (more groups cut in records), against 102.1 MB in format 9.
    static let meanBytes: UInt64 = 512

    /// A group is cut into records of at most this many bytes (a record of one entry may be bigger), so
    /// no record nears LMDB's largest node on 4 KiB pages (~2 KiB, past which a value takes pages of its
    /// own: uncut groups of mean 512 put 9% of `by_digest` in such pages) and pages filled in key order
    /// lose little at their ends. 768 gave 103.4 MB where 1,024 gave 103.8 and 1,536 104.7.
    static let recordBytes = 768

    /// Whether the entry `key` (with a value of `valueCount` bytes) starts a group: its key's hash
    /// falls under a bound proportional to its size (``meanBytes`` bytes of entries per start on average).
    /// Part of the format: changing it changes every grouped table's records.
    @inline(__always)
    static func startsGroup(_ key: UnsafeRawBufferPointer, valueCount: Int) -> Bool {
        let h = Checksum.of(key, UnsafeRawBufferPointer(start: nil, count: 0), seed: 0x1319_8A2E_0370_7344) >> 32
        let weight = UInt64(key.count + valueCount + 2)
        return h &* meanBytes < weight << 32
    }

    static func startsGroup(_ key: [UInt8], valueCount: Int) -> Bool {
        key.withUnsafeBytes { startsGroup($0, valueCount: valueCount) }
    }

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
    /// Most insertions rewrite the record whose range holds the key, found with one search of the tree,
    /// through the cursor that found it; a key that starts a group (``startsGroup(_:valueCount:)``)
    /// splits the record instead, the entries after it moving into its new group, and a key after
    /// every entry of a full record goes into a record of its own. Where ``Builder`` would cut the
    /// group's records otherwise (a middle record outgrows ``recordBytes``, a split group continues in
    /// another record, the key goes before every entry), the group's records are read whole and
    /// written again as it cuts them.
    @discardableResult
    static func insert(_ key: [UInt8], _ value: [UInt8], into table: String, _ txn: ViewTxn) throws -> Bool {
        let db = txn.store.table(table)
        let view = txn.store.name
        let bounds = txn.txn.mapBounds()
        let starts = startsGroup(key, valueCount: value.count)
        enum Outcome { case present, empty, written, put([UInt8], [UInt8]), whole }
        let outcome = try txn.txn.withCursor(db) { c -> Outcome in
            let after = try key.withUnsafeBytes { try c.seek($0) }
            if let (k, _) = after, k.elementsEqual(key) { return .present }
            // Whether the record after this one continues its group (its first entry starts none): asked
            // only where it matters, off the common path of a key inside a record.
            func continued() throws -> Bool {
                guard let (nk, nv) = after else { return false }
                try ViewTxn.inBounds(nk, nv, bounds, view: view, table: table)
                let record = try ViewTxn.checked(key: nk, stored: nv, view: view, table: table)
                return try !startsGroup(nk, valueCount: firstValueCount(nk, record, view: view, table: table))
            }
            let found = after == nil ? try c.last() : try c.previous()
            guard let (k, v) = found else { return after == nil ? .empty : .whole }
            try ViewTxn.inBounds(k, v, bounds, view: view, table: table)
            let record = try ViewTxn.checked(key: k, stored: v, view: view, table: table)
            guard let (head, tail, last) = try inserting(key, value, startsGroup: starts, intoGroup: k, record, view: view, table: table) else {
                return .present
            }
            if starts {
                // The group ends before the key: its continuation, if any, would be cut again.
                guard tail!.count <= recordBytes, try !continued() else { return .whole }
            } else if head.count > recordBytes {
                // The key after every entry of a full record that ends its group: a record of its own.
                guard last, try !continued() else { return .whole }
                return .put(key, entry(value: value))
            }
            // A record that grew stays full for the next record of its group: a key in its middle leaves its
            // last key as it was, and a key at its end adds more bytes than the next record's first entry
            // saves in the prefix it now shares with the key.
            // The key is copied first: it lies in the page the replacement changes.
            let groupKey = [UInt8](copying: k)
            try groupKey.withUnsafeBytes { k in
                try head.withUnsafeBytes { h in try c.replace(k, count: h.count + Checksum.size) { ViewTxn.store(h, key: k, in: $0) } }
            }
            guard let tail else { return .written }
            return .put(key, tail)
        }
        switch outcome {
        case .present: return false
        case .written: return true
        case .empty:
            try txn.put(db, key, entry(value: value))
            return true
        case .put(let k, let bytes):
            try txn.put(db, k, bytes)
            return true
        case .whole:
            return try insertWhole(key, value, into: table, txn)
        }
    }

    /// The byte count of a record's first value (the record keyed `key`).
    private static func firstValueCount(_ key: UnsafeRawBufferPointer, _ record: UnsafeRawBufferPointer, view: String, table: String) throws -> Int {
        var r = KeyReader(record)
        guard let n = r.wholeVarint(), n <= record.count - r.offset else { throw corrupt(view, table, key, "its first value does not decode") }
        return Int(n)
    }

    private static func corrupt(_ view: String, _ table: String, _ key: UnsafeRawBufferPointer, _ what: String) -> ViewError {
        ViewError(.corrupt, view: view, "view \(view), table \(table): a group of entries at \(ViewStore.show(Array(key))): \(what)")
    }

    /// Inserts by cutting the records of the key's group again as ``Builder`` cuts them, from the record
    /// the key falls in to the first record that starts where it did.
    private static func insertWhole(_ key: [UInt8], _ value: [UInt8], into table: String, _ txn: ViewTxn) throws -> Bool {
        let db = txn.store.table(table)
        let view = txn.store.name
        let bounds = txn.txn.mapBounds()
        // The group's records as they were, and as ``Builder`` cuts them with the key.
        var old: [([UInt8], [UInt8])] = []
        var records: [([UInt8], [UInt8])] = []
        var builder = Builder()
        let present = try txn.txn.withCursor(db) { c -> Bool in
            let after = try key.withUnsafeBytes { try c.seek($0) }
            // From the record the key falls in (the table's first when it goes before every entry): the
            // records before it are cut as they were, since a cut depends only on the entries before it.
            var e = after == nil ? try c.last() : try c.previous()
            if e == nil { e = try c.first() }
            // Its entries with the key among them, through the record before the next start, or before
            // the first record that still starts where it did (the ones after it are then unchanged).
            var placed = false
            while let (k, v) = e {
                try ViewTxn.inBounds(k, v, bounds, view: view, table: table)
                let record = try ViewTxn.checked(key: k, stored: v, view: view, table: table)
                if !old.isEmpty {
                    if !placed {
                        key.withUnsafeBytes { k in value.withUnsafeBytes { builder.add(k, $0) { records.append(($0, $1)) } } }
                        placed = true
                    }
                    let n = try firstValueCount(k, record, view: view, table: table)
                    if startsGroup(k, valueCount: n) || builder.cuts(before: k, valueCount: n) { break }
                }
                old.append(([UInt8](copying: k), [UInt8](copying: record)))
                var w = Walk(first: k, bytes: record, view: view, table: table)
                while try w.next() {
                    if !placed {
                        let order = w.compare(key)
                        if order == 0 { return true }
                        if order > 0 {
                            key.withUnsafeBytes { k in value.withUnsafeBytes { builder.add(k, $0) { records.append(($0, $1)) } } }
                            placed = true
                        }
                    }
                    w.withKey { k in builder.add(k, w.valueBytes) { records.append(($0, $1)) } }
                }
                e = try c.next()
            }
            if !placed { key.withUnsafeBytes { k in value.withUnsafeBytes { builder.add(k, $0) { records.append(($0, $1)) } } } }
            builder.finish { records.append(($0, $1)) }
            return false
        }
        if present { return false }
        // Only what changed is written: records cut as before (those before the key, mostly) stay.
        let kept = Set(records.map { ByteKey($0.0) })
        let unchanged = Dictionary(old.map { (ByteKey($0.0), $0.1) }, uniquingKeysWith: { a, _ in a })
        for (k, _) in old where !kept.contains(ByteKey(k)) { try txn.delete(db, k) }
        for (k, v) in records where unchanged[ByteKey(k)] != v { try txn.put(db, k, v) }
        return true
    }

    /// The record keyed `groupKey` holding `bytes` (whose first key is before `key`), with `key` → `value`
    /// inserted: the record's new bytes, and when the key starts a group of its own, that group's bytes
    /// (the key's entry and the entries after it, which leave this record); whether the key is the
    /// record's last; nil when the record holds `key`.
    static func inserting(
        _ key: [UInt8], _ value: [UInt8], startsGroup starts: Bool, intoGroup groupKey: UnsafeRawBufferPointer, _ bytes: UnsafeRawBufferPointer,
        view: String, table: String
    ) throws -> (head: [UInt8], tail: [UInt8]?, last: Bool)? {
        var w = Walk(first: groupKey, bytes: bytes, view: view, table: table)
        // The first entry after the key (if any), and the one before it.
        var previousStart = -1
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
        guard previousStart >= 0 else { throw w.corrupt("the key \(ViewStore.show(key)) sorts before the group's first") }
        var p = Walk(first: groupKey, bytes: bytes, view: view, table: table)
        while try p.next(), p.start < previousStart {}
        var head = [UInt8](copying: UnsafeRawBufferPointer(rebasing: bytes[..<p.end]))
        var tail: [UInt8] = []
        if starts {
            tail = entry(value: value)
        } else {
            head.reserveCapacity(bytes.count + key.count + value.count + 8)
            key.withUnsafeBytes { k in p.withKey { append(&head, key: k, after: $0, value: value) } }
        }
        if following {
            // The next entry, re-encoded against the key, then the rest as it was.
            var next: [UInt8] = []
            key.withUnsafeBytes { k in w.withKey { append(&next, key: $0, after: k, value: w.valueBytes) } }
            next.append(copying: UnsafeRawBufferPointer(rebasing: bytes[w.end...]))
            if starts { tail += next } else { head += next }
        }
        return (head, starts ? tail : nil, !following)
    }

    /// Cuts entries given in increasing key order into the records insertions of the same entries would
    /// leave (a bulk load). A group starts at the first entry and at every entry that
    /// ``startsGroup(_:valueCount:)`` picks; a group is cut into records of at most ``recordBytes``: an
    /// entry that would take its record past that starts the next record (a record of one entry may be
    /// bigger).
    struct Builder {
        /// The open record's first key and bytes, and the last key added.
        private var first: [UInt8] = []
        private var bytes: [UInt8] = []
        private var previous: [UInt8] = []
        private var open = false

        /// Adds the next entry (its key after every key added so far); `emit` takes each record this
        /// closes, as its key and value (without the checksum).
        mutating func add(
            _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, emit: (_ key: [UInt8], _ bytes: [UInt8]) throws -> Void
        ) rethrows {
            var starts = !open || GroupedTable.startsGroup(key, valueCount: value.count)
            if !starts {
                let n = previous.withUnsafeBytes { encodedCount(key: key, after: $0, value: value.count) }
                starts = bytes.count + n > recordBytes
            }
            if starts {
                if open { try emit(first, bytes) }
                first = [UInt8](copying: key)
                bytes = entry(value: value)
                open = true
            } else {
                previous.withUnsafeBytes { p in append(&bytes, key: key, after: p, value: value) }
            }
            previous.removeAll(keepingCapacity: true)
            previous.append(copying: key)
        }

        /// Whether an entry `key` (not one that starts a group) added next would start a record: the open
        /// record has no room for it.
        func cuts(before key: UnsafeRawBufferPointer, valueCount: Int) -> Bool {
            open && bytes.count + previous.withUnsafeBytes { encodedCount(key: key, after: $0, value: valueCount) } > recordBytes
        }

        /// Emits the open record, if any.
        mutating func finish(emit: (_ key: [UInt8], _ bytes: [UInt8]) throws -> Void) rethrows {
            if open { try emit(first, bytes) }
            open = false
        }
    }

    /// The stored record of a group's bytes (as ``Builder`` emits them): the bytes and their checksum.
    static func record(key: [UInt8], group: [UInt8]) -> [UInt8] {
        var stored = group
        let sum = key.withUnsafeBytes { k in group.withUnsafeBytes { Checksum.of(k, $0) } }.littleEndian
        withUnsafeBytes(of: sum) { stored.append(contentsOf: $0) }
        return stored
    }

    /// The bytes of a later entry of a record: `key` against `previous`, and a value of `value` bytes.
    static func encodedCount(key: UnsafeRawBufferPointer, after previous: UnsafeRawBufferPointer, value: Int) -> Int {
        var shared = 0
        let n = min(key.count, previous.count)
        while shared < n, key[shared] == previous[shared] { shared += 1 }
        return varintCount(shared) + varintCount(key.count - shared) + key.count - shared + varintCount(value) + value
    }

    private static func varintCount(_ n: Int) -> Int {
        var n = UInt64(n), c = 1
        while n >= 0x80 {
            n >>= 7
            c += 1
        }
        return c
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
