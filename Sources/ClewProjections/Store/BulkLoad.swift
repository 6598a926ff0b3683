import ClewLedger
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The entries of a view's bulk-loaded ``GroupedTable``s, collected while a fold fills an empty view (a
/// rebuild's new generation, a scratch fold) and written once, at its end, in key order with
/// `MDB_APPEND`.
///
/// Why: a table keyed by a hash (the value index's `by_digest`, keyed by SHA-256), or that takes entries
/// all over its range (lineage edges of old nodes), takes each insertion on a page of its own once it is
/// much bigger than a batch, so every batch rewrites most of its pages. At 10M events the value index's
/// fold wrote 60× its final size and lineage 21×, and those shares grew with the log (docs/benchmarks.md).
///
/// Entries arrive in log order into an arena per table. When a write has committed and a table's arena
/// holds more than ``budget`` bytes, its entries are sorted (by key, then arrival) and written to a run
/// file beside the view (`bulk-<table>-<n>.run`). At the end the runs merge; of equal keys the first to
/// arrive is kept, as an insertion keeps it. ``GroupedTable/Builder`` cuts the records where insertions
/// leave them, so they are byte for byte those a fold of the same events writes (tests compare them).
///
/// A write that fails and is retried (its map grown) first drops what it added (``mark()``,
/// ``rollback()``). Not thread-safe: one fold writes a view at a time.
final class BulkLoad {
    /// Where run files go (the folded view's directory, deleted with it).
    let directory: URL
    /// Bytes of entries a table keeps in memory before they are sorted into a run file.
    let budget: Int
    private var tables: [String: Pending]

    /// One table's entries: in the arena as `count of key (4 bytes) ‖ count of value (4) ‖ key ‖ value`,
    /// where each starts in `starts` (arrival order); the run files written so far, oldest first, with
    /// the entries and bytes each holds (a run read back must hold them all).
    final class Pending {
        var arena: [UInt8] = []
        var starts: [Int] = []
        var runs: [Run] = []
        var marked = (arena: 0, starts: 0)
    }

    init(directory: URL, tables: some Sequence<String>, budget: Int) {
        self.directory = directory
        self.budget = max(budget, 1)
        self.tables = Dictionary(uniqueKeysWithValues: tables.map { ($0, Pending()) })
    }

    func holds(_ table: String) -> Bool { tables[table] != nil }

    /// Adds an entry of `table` (one of ``holds(_:)``).
    func add(_ key: [UInt8], _ value: [UInt8], to table: String) {
        let p = tables[table]!
        p.starts.append(p.arena.count)
        withUnsafeBytes(of: UInt32(key.count).littleEndian) { p.arena.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(value.count).littleEndian) { p.arena.append(contentsOf: $0) }
        p.arena.append(contentsOf: key)
        p.arena.append(contentsOf: value)
    }

    /// Called as a write begins: what it adds can be dropped by ``rollback()``.
    func mark() {
        for p in tables.values { p.marked = (p.arena.count, p.starts.count) }
    }

    /// Drops what was added since ``mark()`` (the write failed).
    func rollback() {
        for p in tables.values {
            p.arena.removeSubrange(p.marked.arena...)
            p.starts.removeSubrange(p.marked.starts...)
        }
    }

    /// Called once a write has committed: tables past the budget go to run files.
    func commit() throws {
        for (name, p) in tables where p.arena.count > budget { try spill(name, p) }
    }

    /// Deletes the run files (the fold is abandoned, or written).
    func remove() {
        for p in tables.values {
            for run in p.runs { unlink(run.url.path) }
            p.runs.removeAll()
            p.arena = []
            p.starts = []
        }
    }

    // MARK: sorting

    /// The arena's entries in key order, then arrival order.
    private static func sorted(_ p: Pending) -> [Int] {
        var order = p.starts
        p.arena.withUnsafeBytes { a in
            order.sort { x, y in
                let c = GroupedTable.compare(key(a, x), key(a, y))
                return c != 0 ? c < 0 : x < y
            }
        }
        return order
    }

    /// Calls `body` with the arena's entries in key order, each key once (its first arrival).
    private static func forEachSorted(_ p: Pending, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) rethrows {
        let order = sorted(p)
        try p.arena.withUnsafeBytes { a in
            var last: UnsafeRawBufferPointer?
            for at in order {
                let k = key(a, at)
                if let l = last, GroupedTable.compare(l, k) == 0 { continue }
                try body(k, value(a, at))
                last = k
            }
        }
    }

    @inline(__always)
    private static func key(_ a: UnsafeRawBufferPointer, _ at: Int) -> UnsafeRawBufferPointer {
        let n = Int(UInt32(littleEndian: a.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        return UnsafeRawBufferPointer(rebasing: a[(at + 8)..<(at + 8 + n)])
    }

    @inline(__always)
    private static func value(_ a: UnsafeRawBufferPointer, _ at: Int) -> UnsafeRawBufferPointer {
        let k = Int(UInt32(littleEndian: a.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        let n = Int(UInt32(littleEndian: a.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)))
        return UnsafeRawBufferPointer(rebasing: a[(at + 8 + k)..<(at + 8 + k + n)])
    }

    /// Sorts the table's arena into a new run file (each key once, its first arrival) and empties it.
    private func spill(_ table: String, _ p: Pending) throws {
        let url = directory.appendingPathComponent("bulk-\(table)-\(p.runs.count).run")
        var out = try RunWriter(url)
        defer { out.close() }
        var entries = 0
        try Self.forEachSorted(p) { k, v in
            try out.put(k, v)
            entries += 1
        }
        try out.finish()
        p.runs.append(Run(url: url, entries: entries, bytes: out.written))
        p.arena = []
        p.starts = []
    }

    // MARK: writing

    /// Writes `table`'s entries into `store`'s table of that name (empty: nothing else writes it), in key
    /// order as groups, checksummed, with `MDB_APPEND` (``ViewStore/append(_:to:)``, every ``chunkBytes``
    /// of records); then deletes its runs.
    func write(_ table: String, into store: ViewStore) throws {
        guard let p = tables[table] else { return }
        defer {
            for run in p.runs { unlink(run.url.path) }
            p.runs.removeAll()
        }
        try Self.append(into: store, table) { add in
            if p.runs.isEmpty {
                try Self.forEachSorted(p, add)
            } else {
                if !p.starts.isEmpty { try spill(table, p) }
                try merge(p.runs, add)
            }
        }
        p.arena = []
        p.starts = []
    }

    /// Writes the entries `entries` gives (in increasing key order, each key once) into `store`'s empty
    /// grouped table `table`, as groups cut by ``GroupedTable/Builder``, checksummed, with `MDB_APPEND`
    /// (``ViewStore/append(_:to:)``, every ``chunkBytes`` of records).
    static func append(
        into store: ViewStore, _ table: String,
        _ entries: (_ add: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws {
        let db = store.table(table)
        var chunk: [([UInt8], [UInt8])] = []
        var bytes = 0
        func flush() throws {
            guard !chunk.isEmpty else { return }
            try store.append(chunk, to: db)
            chunk.removeAll(keepingCapacity: true)
            bytes = 0
        }
        var builder = GroupedTable.Builder()
        let emit = { (key: [UInt8], group: [UInt8]) throws in
            let stored = GroupedTable.record(key: key, group: group)
            bytes += key.count + stored.count + 16
            chunk.append((key, stored))
            if bytes >= chunkBytes { try flush() }
        }
        try entries { k, v in try builder.add(k, v, emit: emit) }
        try builder.finish(emit: emit)
        try flush()
    }

    /// Records per commit of ``write(_:into:)``.
    static let chunkBytes = 8 << 20

    /// Calls `body` with the runs' entries in key order, each key once (from the oldest run that has it).
    private func merge(_ runs: [Run], _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws {
        var readers: [RunReader] = []
        defer { for i in readers.indices { readers[i].close() } }
        for run in runs { readers.append(try RunReader(run)) }
        // A min-heap of the readers that have an entry, by key, then age (index).
        var heap: [Int] = []
        for i in readers.indices where try readers[i].next() { heap.append(i) }
        func less(_ a: Int, _ b: Int) -> Bool {
            let c = readers[a].withKey { ka in readers[b].withKey { GroupedTable.compare(ka, $0) } }
            return c != 0 ? c < 0 : a < b
        }
        func siftDown(_ from: Int) {
            var i = from
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, less(heap[l], heap[m]) { m = l }
                if r < heap.count, less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        var last: [UInt8] = []
        var started = false
        while let top = heap.first {
            let duplicate = started && readers[top].withKey { k in last.withUnsafeBytes { GroupedTable.compare($0, k) == 0 } }
            if !duplicate {
                try readers[top].withEntry { k, v in
                    try body(k, v)
                    last.removeAll(keepingCapacity: true)
                    last.append(contentsOf: k)
                }
                started = true
            }
            if try readers[top].next() {
                siftDown(0)
            } else {
                heap.swapAt(0, heap.count - 1)
                heap.removeLast()
                siftDown(0)
            }
        }
    }
}

/// A run file: where, and the entries and bytes written to it.
struct Run {
    let url: URL
    let entries: Int
    let bytes: Int
}

/// A run file being written: entries as `varint count ‖ key ‖ varint count ‖ value`, buffered.
private struct RunWriter {
    let url: URL
    private(set) var written = 0
    private var fd: Int32
    private var buffer = KeyBuilder(capacity: RunReader.bufferBytes)

    init(_ url: URL) throws {
        self.url = url
        fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.failed("create", url) }
    }

    mutating func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        buffer.appendVarint(UInt64(key.count))
        buffer.bytes.append(copying: key)
        buffer.appendVarint(UInt64(value.count))
        buffer.bytes.append(copying: value)
        if buffer.bytes.count >= RunReader.bufferBytes { try drain() }
    }

    mutating func finish() throws { try drain() }

    private mutating func drain() throws {
        let url = url, fd = fd
        try buffer.bytes.withUnsafeBytes { b in
            var done = 0
            while done < b.count {
                let n = Glibc.write(fd, b.baseAddress! + done, b.count - done)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw Self.failed("write", url) }
                done += n
            }
        }
        written += buffer.bytes.count
        buffer.bytes.removeAll(keepingCapacity: true)
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    static func failed(_ what: String, _ url: URL) -> ViewError {
        ViewError(.invalidInput, view: nil, "views: cannot \(what) the sorted run \(url.path) of a rebuild: \(String(cString: strerror(errno)))")
    }
}

/// A run file read in order, through a buffer that grows to hold any entry.
private struct RunReader {
    static let bufferBytes = 256 << 10
    let run: Run
    var url: URL { run.url }
    private var entries = 0
    private var bytesRead = 0
    private var fd: Int32
    private var buffer = [UInt8](repeating: 0, count: bufferBytes)
    /// The unread bytes are `start..<end`; the current entry's key and value lie in the buffer.
    private var start = 0
    private var end = 0
    private var atEOF = false
    private var key = 0..<0
    private var value = 0..<0

    init(_ run: Run) throws {
        self.run = run
        fd = open(run.url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RunWriter.failed("open", run.url) }
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Moves to the next entry; false past the last.
    mutating func next() throws -> Bool {
        while true {
            if let (k, v) = Self.entry(buffer, start, end) {
                key = k
                value = v
                start = v.upperBound
                entries += 1
                return true
            }
            if atEOF {
                guard start == end else { throw corrupt("ends inside an entry") }
                // Cut at an entry's end, or grown: as much a fault as a cut entry.
                guard entries == run.entries, bytesRead == run.bytes else {
                    throw corrupt("holds \(entries) entries in \(bytesRead) bytes; \(run.entries) in \(run.bytes) were written")
                }
                return false
            }
            try refill()
        }
    }

    func withKey<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[key])) }
    }

    func withEntry<T>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[key]), UnsafeRawBufferPointer(rebasing: $0[value])) }
    }

    /// The entry at `at`, when all of it is before `end`.
    private static func entry(_ b: [UInt8], _ at: Int, _ end: Int) -> (Range<Int>, Range<Int>)? {
        b.withUnsafeBytes { all in
            var r = KeyReader(UnsafeRawBufferPointer(rebasing: all[..<end]), at: at)
            guard let kn = r.wholeVarint(), kn <= end - r.offset else { return nil }
            let k = r.offset..<(r.offset + Int(kn))
            r.skip(Int(kn))
            guard let vn = r.wholeVarint(), vn <= end - r.offset else { return nil }
            return (k, r.offset..<(r.offset + Int(vn)))
        }
    }

    /// Moves the unread bytes to the front (growing the buffer when they fill it) and reads more.
    private mutating func refill() throws {
        if start > 0 {
            buffer.withUnsafeMutableBytes { b in
                if end > start { memmove(b.baseAddress!, b.baseAddress! + start, end - start) }
            }
            end -= start
            start = 0
        }
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        let fd = fd, from = end
        let n = buffer.withUnsafeMutableBytes { b in
            var n: Int
            repeat { n = read(fd, b.baseAddress! + from, b.count - from) } while n < 0 && errno == EINTR
            return n
        }
        guard n >= 0 else { throw RunWriter.failed("read", url) }
        if n == 0 { atEOF = true }
        end += n
        bytesRead += n
    }

    private func corrupt(_ what: String) -> ViewError {
        ViewError(.corrupt, view: nil, "views: the sorted run \(url.path) of a rebuild \(what)")
    }
}
