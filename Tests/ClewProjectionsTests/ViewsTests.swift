import ClewBenchmarks
import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Synchronization
import Testing
@testable import ClewEngine
@testable import ClewProjections

@Suite("Views: folds of the log")
struct ViewsTests {
    @Test("the views agree with the engine's own account of the demo runs and with the model's chunk fold")
    func demoViews() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            let views = try Views.open(ledger: ledger)
            let runs = try views.runs(RunQuery(limit: 1000))
            let streams = try ledger.streams(prefix: "run/")
            #expect(runs.count == streams.count)
            #expect(Set(runs.map(\.key.stream)) == Set(streams.map(\.stream)))
            #expect(runs.allSatisfy { $0.state == "succeeded" }, "\(runs.map { ($0.key.description, $0.state) })")
            #expect(runs.map(\.queuedMicros) == runs.map(\.queuedMicros).sorted(by: >), "newest first")
            // The shard run failed once and was resubmitted; its retried shards show two attempts.
            let shard = try #require(runs.first { $0.dag == "shard_etl" })
            let detail = try #require(try views.run(shard.key))
            #expect(detail.tasks.count == DemoDAGs.shardETL.spec.tasks.count)
            if shard.resubmissions > 0 {
                #expect(detail.tasks.contains { $0.attempts == 2 })
            }
            #expect(try views.runs(RunQuery(dag: "numeric_flow")).count == 3)
            #expect(try views.runs(RunQuery(state: "failed")).isEmpty)
            #expect(try views.runs(RunQuery(dag: "csv_orders", state: "succeeded")).count == 1)
            // Every dataset's chunk statuses equal ClewModel's DatasetState fold of its stream.
            for summary in try views.datasets() {
                var state = DatasetState(name: summary.name)
                for e in try ledger.events(inStream: StreamID.dataset(summary.name)) { state.apply(seq: e.seq, type: e.type, payload: e.payload) }
                #expect(summary.chunks == UInt64(state.chunks.count), "\(summary.name)")
                for status in ChunkStatus.allCases {
                    let fromView = Set(try views.chunks(dataset: summary.name, status: status.rawValue, limit: 10_000).map(\.key))
                    let fromModel = Set(state.chunks.values.filter { $0.status == status }.map(\.key))
                    #expect(fromView == fromModel, "\(summary.name) \(status)")
                }
            }
            let seconds = try #require(try views.chunkStatus(dataset: "sensor.seconds"))
            #expect(seconds.dataset.partitioning == "time:86400")
            #expect(seconds.dataset.chunks == 2 && seconds.dataset.missing == 0)
            // Lineage: a daily chunk comes from an hourly chunk through an attempt.
            let up = try views.lineage(node: "chunk:sensor.daily/2026-11-01T00:00:00Z", direction: .up, depth: 2)
            #expect(up.contains { $0.kind == "generated" && $0.from.hasPrefix("attempt:sensor_rollup/") && $0.from.hasSuffix("/day_averages/1") })
            #expect(up.contains { $0.from == "chunk:sensor.hours/2026-11-01T00:00:00Z" && $0.kind == "used" })
            // Values: by name and number, range, prefix, digest.
            let readings = try views.values(name: "readings", match: .equals(.number(345_600)))
            #expect(readings.count == 2 && readings.allSatisfy { $0.task == "ingest_seconds" })
            #expect(try views.values(name: "readings", match: .range(min: 1, max: 10)).isEmpty)
            #expect(try views.values(name: "readings", match: .range(min: 300_000, max: nil)).count == 2)
            let digest = try #require(readings.first?.digest)
            let byDigest = try views.values(name: nil, match: .digest(digest))
            #expect(byDigest.contains { $0.name == "output" || $0.name == "input" })
            // Stored as 32 bytes in the key only, the digest reads back whole on every hit; the hit's other
            // fields (varints) read back as the by-name search gives them.
            #expect(byDigest.allSatisfy { $0.digest == digest }, "\(byDigest)")
            let same = try #require(byDigest.first { $0.seq == readings.first?.seq })
            #expect(same.dag == readings.first?.dag && same.run == readings.first?.run && same.attempt == readings.first?.attempt && same.step == readings.first?.step)
            #expect(digest.count == 64)
            #expect(try views.values(name: nil, match: .digest(digest.uppercased())).isEmpty)
            let differing = try views.verify().filter { !$0.equal }
            #expect(differing.isEmpty, "\(differing)")
        }
    }

    /// Pages of every table of every view (`view.table`).
    static func leafPages(_ views: Views) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for name in ViewName.allCases {
            try views.read(name) { store, txn in
                for t in name.tables { out["\(name.rawValue).\(t)"] = try txn.stat(store.table(t)).pages }
            }
        }
        return out
    }

    /// Appends `source`'s events to `ledger` `step` at a time, catching `views` up after each append.
    static func copy(_ source: Ledger, into ledger: Ledger, catchingUp views: Views, every step: UInt64) async throws {
        var next: UInt64 = 1
        let last = try source.lastSeq
        while next <= last {
            let upTo = min(last, next + step - 1)
            _ = try await ledger.append(contentsOf: try source.events(next...upTo).map(\.draft))
            try views.catchUp()
            next = upTo + 1
        }
    }

    @Test("folding in many small catch-ups gives the same bytes as one rebuild")
    func incrementalEqualsRebuild() async throws {
        try await DemoLedger.withCopy { source, dir in
            let ledger = try Ledger.create(at: dir.appendingPathComponent("growing.ledger"))
            defer { ledger.close() }
            let notices = Notices()
            let views = try Views.open(ledger: ledger, options: notices.options(batch: 7))
            try await Self.copy(source, into: ledger, catchingUp: views, every: 37)
            let incremental = try views.digests()
            let folded = try Self.leafPages(views)
            try views.rebuild()
            #expect(try views.digests() == incremental)
            // A rebuild is copied in key order (MDB_APPEND) before it is swapped in: its pages are full,
            // where a fold's are split. A record of `fwd` takes its key, value and checksum, LMDB's node
            // header (8 bytes) and slot (2).
            let packed = try Self.leafPages(views)
            for (table, pages) in packed { #expect(pages <= folded[table]!, "\(table): \(pages) pages packed, \(folded[table]!) folded") }
            let (fwd, used) = try views.read(.lineage) { store, txn in
                var used = 0
                try ViewTxn.scan(txn, store.table("fwd"), prefix: [], view: "lineage", table: "fwd") { k, v in
                    used += k.count + v.count + Checksum.size + 10
                    return true
                }
                return (try txn.stat(store.table("fwd")), used)
            }
            // Every page but the last is full but for less than a record (a page's header: 16 bytes).
            let fill = Double(used) / Double((fwd.leafPages - 1) * (fwd.pageSize - 16))
            #expect(fwd.pages > 4 && fill > 0.85, "lineage fwd: \(fwd.entries) records, \(used) bytes in \(fwd.leafPages) leaf pages")
            #expect(packed["lineage.fwd"]! < folded["lineage.fwd"]!, "\(packed) \(folded)")
            let whole = try Views.open(ledger: source)
            #expect(try whole.digests() == incremental, "the same events in another ledger fold to the same views")
            #expect(try views.verify().filter { !$0.equal }.isEmpty)
        }
    }

    @Test("catch-ups whose writes outgrow a view's map (each write retried once the map has grown) give the same bytes as one rebuild")
    func mapGrowthRetriesEqualRebuild() async throws {
        try await DemoLedger.withCopy { source, dir in
            let ledger = try Ledger.create(at: dir.appendingPathComponent("growing.ledger"))
            defer { ledger.close() }
            var options = Notices().options(batch: 500)
            options.mapSize = 256 << 10
            options.growMapAhead = false  // so a write runs into MDB_MAP_FULL and is retried
            options.chunkSnapshotOps = 16  // chunk history snapshots are due by counts kept in memory
            // And every third write fails once its batch is applied (as when the map fills at commit).
            let writes = Mutex(0)
            options.failWriteAfterApply = { _ in writes.withLock { $0 += 1; return $0 % 3 == 0 } }
            let views = try Views.open(ledger: ledger, options: options)
            try await Self.copy(source, into: ledger, catchingUp: views, every: 1_500)
            let grown = try ViewName.allCases.filter { name in try views.read(name) { store, _ in try store.env.mapInfo().mapSize } > 256 << 10 }
            #expect(grown.count >= 2, "views whose map grew: \(grown)")
            #expect(writes.withLock { $0 } > 20, "writes made")
            var wholeOptions = Views.Options()
            wholeOptions.chunkSnapshotOps = 16
            let whole = try Views.open(ledger: source, options: wholeOptions)
            #expect(try whole.digests() == views.digests(), "a fold retried after its map grew must equal a fold that never stopped")
            #expect(try views.verify().filter { !$0.equal }.isEmpty)
        }
    }

    @Test("a rebuild whose deferred lineage ids are written many times, in writes that fail and are retried, gives the same bytes as catch-ups")
    func deferredInsertsRetriedEqualCatchUps() async throws {
        try await DemoLedger.withCopy { source, dir in
            let ledger = try Ledger.create(at: dir.appendingPathComponent("growing.ledger"))
            defer { ledger.close() }
            var options = Notices().options(batch: 100)
            options.deferredBudget = 20 * DeferredInserts.bytesPerEntry  // ids moved to the spill every ~20 new nodes
            // Every other lineage write right after a move to the spill fails (as when the map fills at
            // commit), up to six times: its retry must find the moved ids in the spill and add its own
            // again. (Each failure doubles the view's map: an unbounded count would run it into its limit.)
            struct Counts { var flushes = 0, entries = 0, failedAfterFlush = 0, justFlushed = false }
            let counts = Mutex(Counts())
            options.deferredFlushed = { name, entries in
                counts.withLock { c in
                    #expect(name == .lineage)
                    c.flushes += 1
                    c.entries += entries
                    c.justFlushed = true
                }
            }
            options.failWriteAfterApply = { name in
                counts.withLock { c in
                    guard name == .lineage else { return false }
                    defer { c.justFlushed = false }
                    guard c.justFlushed, c.flushes % 2 == 1, c.failedAfterFlush < 6 else { return false }
                    c.failedAfterFlush += 1
                    return true
                }
            }
            let views = try Views.open(ledger: ledger, options: options)
            try await Self.copy(source, into: ledger, catchingUp: views, every: 700)
            // Catch-ups insert as they go: nothing was deferred.
            #expect(counts.withLock { $0.flushes } == 0)
            let incremental = try views.digests()
            try views.rebuild()
            let c = counts.withLock { $0 }
            let nodes = try views.read(.lineage) { store, txn in try NodeName.count(txn, store) }
            #expect(c.flushes >= 10 && c.failedAfterFlush >= 3, "\(c.flushes) flushes, \(c.failedAfterFlush) failed after one")
            // Each id moves once (a key moved twice is refused), most of them before the fold ends.
            #expect(UInt64(c.entries) <= nodes && UInt64(c.entries) >= nodes / 2, "\(c.entries) entries moved for \(nodes) nodes")
            #expect(try views.digests() == incremental, "a rebuild that deferred its ids must equal catch-ups that inserted them")
            #expect(try views.verify().filter { !$0.equal }.isEmpty)
        }
    }

    @Test("the spill's filter never turns away a key it was given, grows by levels, and lets few others through")
    func spillFilter() {
        var filter = SpillFilter(capacity: 1_000)
        #expect(!filter.mayContain(42))
        // Neighbouring keys (homes of one kind probe the next slot) and spread ones.
        let added = (0..<100_000).map { UInt64($0) } + (0..<100_000).map { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 &+ 7 }
        for k in added { filter.add(k) }
        #expect(filter.count == 200_000)
        #expect(added.allSatisfy { filter.mayContain($0) })
        // Eight levels (1,000 to 128,000 keys) of 12 bits a key: about 0.5% false positives a full
        // level, and a query asks them all (2.9% here).
        #expect(filter.bytes == (1..<9).reduce(0) { n, l in n + (((1_000 << (l - 1)) * 12 + 511) / 512) * 64 })
        let others = (0..<100_000).map { UInt64($0) + 1 << 40 }
        let through = others.filter { filter.mayContain($0) }.count
        #expect(through < 4_000, "\(through) of 100,000 keys never added got through")
    }

    @Test("deferred insertions read back before they are written, move to the spill in parts once their write commits and past the budget, a failed write drops only its own, and the end cuts memory and spill into the table")
    func deferredInserts() throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-deferred-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try ViewStore(name: "lineage", directory: dir, tables: ["ids"], building: true)
        defer { store.close() }
        // A move writes about one page of the spill at a time, and the end reads seven entries at a time.
        let deferred = try DeferredInserts(store: store, tables: ["ids"], budget: 10 * DeferredInserts.bytesPerEntry, pagesPerWrite: 1)
        deferred.writeChunk = 7
        #expect(deferred.capacity == 10)
        store.deferred = deferred
        var moves: [Int] = []
        deferred.flushed = { _, n in moves.append(n) }
        let spill = try store.env.openDatabase(DeferredInserts.spillName("ids"))
        // Keys spread over the table, as homes are; values of 0 to 8 bytes.
        func key(_ i: Int) -> [UInt8] { KeyBuilder().u64(UInt64(i) &* 0x9E37_79B9_7F4A_7C15).bytes }
        func value(_ i: Int) -> [UInt8] { (0..<(i % 9)).map { UInt8(truncatingIfNeeded: i &* 31 &+ $0) } }
        func written(_ i: Int) throws -> [UInt8]? {
            try store.env.read { try GroupedTable.get(key(i), $0, store.table("ids"), view: "lineage", table: "ids") }
        }
        func spilled(_ i: Int) throws -> [UInt8]? {
            try store.env.read { txn in try key(i).withUnsafeBytes { try txn.get(spill, $0).map { [UInt8](copying: $0) } } }
        }
        struct Refused: Error {}
        func write(_ range: Range<Int>, fail: Bool = false) throws {
            deferred.mark()
            do {
                try store.env.write { txn in
                    let vt = ViewTxn(txn: txn, store: store)
                    for i in range { #expect(try vt.add(key(i), value(i), grouped: "ids")) }
                    // Already there: waiting in memory, or in the spill.
                    #expect(try !vt.add(key(range.lowerBound), [1], grouped: "ids"))
                    #expect(try !vt.add(key(0), [1], grouped: "ids"))
                    #expect(try vt.get(key(range.lowerBound), grouped: "ids") == value(range.lowerBound))
                    if fail { throw Refused() }
                }
                deferred.commit()
            } catch {
                deferred.rollback()
                throw error
            }
            try deferred.spillIfFull(store)
        }
        // Under the capacity: nothing is moved.
        try write(0..<8)
        #expect(deferred.count("ids") == 8 && deferred.spilledCount("ids") == 0)
        #expect(try written(0) == nil && spilled(0) == nil)
        // Past it, in a write that fails: its entries dropped, the earlier ones still waiting in memory,
        // nothing moved.
        #expect(throws: Refused.self) { try write(8..<13, fail: true) }
        #expect(deferred.count("ids") == 8 && deferred.spilledCount("ids") == 0 && moves.isEmpty)
        #expect(try (0..<13).map(spilled).allSatisfy { $0 == nil })
        try store.env.read { txn throws in
            let vt = ViewTxn(txn: txn, store: store)
            #expect(try vt.get(key(7), grouped: "ids") == value(7))
            #expect(try vt.get(key(12), grouped: "ids") == nil)
        }
        // Retried: all thirteen in the spill once it committed, none left in memory, none in the table
        // yet; read from the spill.
        try write(8..<13)
        #expect(deferred.count("ids") == 0 && deferred.spilledCount("ids") == 13 && moves == [13])
        #expect(try (0..<13).map(spilled) == (0..<13).map(value))
        #expect(try (0..<13).map(written).allSatisfy { $0 == nil })
        try store.env.write { txn throws in
            let vt = ViewTxn(txn: txn, store: store)
            #expect(try !vt.add(key(3), [1], grouped: "ids"))
            #expect(try vt.get(key(12), grouped: "ids") == value(12))
        }
        // Many more moves, landing among the earlier keys, in more parts as the spill grows past a page.
        var i = 13
        while i < 2_013 {
            try write(i..<(i + 20))
            i += 20
        }
        #expect(deferred.count("ids") == 0 && deferred.spilledCount("ids") == 2_013 && moves.count == 101)
        let spillPages = try store.env.read { try $0.stat(spill).pages }
        #expect(spillPages > 8, "the spill grew to \(spillPages) pages, so later moves were written in parts")
        #expect(try (0..<2_013).map(spilled) == (0..<2_013).map(value))
        // Each is found through the fold's lookup (memory, then the spill's filter, then the spill), over
        // the filter's levels of 64, 128, ... 2,048 keys; keys never added are not.
        try store.env.read { txn throws in
            let vt = ViewTxn(txn: txn, store: store)
            #expect(try (0..<2_013).map { try vt.get(key($0), grouped: "ids") } == (0..<2_013).map(value))
            #expect(try (2_013..<2_113).allSatisfy { try vt.get(key($0), grouped: "ids") == nil })
        }
        // The rest at the end of a fold, whatever their count: memory and spill cut into the table together,
        // as a bulk load of the same entries cuts them, and the spill emptied.
        try write(2_013..<2_016)
        #expect(deferred.count("ids") == 3)
        try store.flushDeferred()
        #expect(store.deferred == nil)
        #expect(try (0..<2_016).map(written) == (0..<2_016).map(value))
        #expect(try store.env.read { try $0.stat(spill).entries } == 0)
        let sorted = (0..<2_016).map { (key($0), value($0)) }.sorted { $0.0.lexicographicallyPrecedes($1.0) }
        var expected: [([UInt8], [UInt8])] = []
        var builder = GroupedTable.Builder()
        for (k, v) in sorted {
            k.withUnsafeBytes { k in v.withUnsafeBytes { builder.add(k, $0) { expected.append(($0, GroupedTable.record(key: $0, group: $1))) } } }
        }
        builder.finish { expected.append(($0, GroupedTable.record(key: $0, group: $1))) }
        let records: [([UInt8], [UInt8])] = try store.env.read { txn in
            try txn.withCursor(store.table("ids")) { c in
                var out: [([UInt8], [UInt8])] = []
                var e = try c.first()
                while let (k, v) = e {
                    out.append(([UInt8](copying: k), [UInt8](copying: v)))
                    e = try c.next()
                }
                return out
            }
        }
        #expect(records.count == expected.count && records.map(\.0) == expected.map(\.0) && records.map(\.1) == expected.map(\.1))
        #expect(DeferredInserts.Small(value(8)).bytes == value(8))
        // Deferring into a table that holds entries is refused: its lookups would miss them.
        #expect(throws: ViewError.self) { try DeferredInserts(store: store, tables: ["ids"], budget: 1 << 10) }
    }

    @Test("chunk status and runs as of any seq come from the views (history, snapshots, run epochs) and equal a fold of the log up to it")
    func chunkHistoryAsOf() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("corpus.ledger"))
        defer { ledger.close() }
        try await ViewsCorpus.generate(into: ledger, events: 30_000)
        var options = Views.Options()
        options.runEpochBits = 9  // 512 seqs per epoch: about 60 epochs to merge
        let views = try Views.open(ledger: ledger, options: options)
        let last = try ledger.lastSeq
        // The history's snapshots, by seq: the test looks on both sides of each.
        let snapshots = try Self.chunkSnapshots(views).map(\.seq)
        #expect(snapshots.count >= 4, "30,000 events of the corpus give several snapshots (\(snapshots))")
        // The history's entries: up to 32 events each, none holding events on both sides of a snapshot.
        var entryBytes = 0
        let entries: [(first: UInt64, seqs: [UInt64])] = try views.read(.chunks) { store, txn in
            var out: [(UInt64, [UInt64])] = []
            let prefix = ChunkHistory.prefix(ViewsCorpus.dataset)
            try ViewTxn.scan(txn, store.table("changes"), prefix: prefix, view: "chunks", table: "changes") { k, v in
                let first = UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value
                var seqs: [UInt64] = []
                entryBytes += v.count
                try ChunkHistory.events(v, first: first, view: "chunks") { at, _ in
                    seqs.append(at)
                    return true
                }
                out.append((first, seqs))
                return true
            }
            return out
        }
        let events = entries.reduce(0) { $0 + $1.seqs.count }
        #expect(entries.allSatisfy { $0.seqs.first == $0.first && $0.seqs.count <= ChunkHistoryWriter.groupEvents && $0.seqs == $0.seqs.sorted() })
        #expect(entries.count * 8 < events, "\(entries.count) entries for \(events) events")
        // A status change is one operation, its ordinal a byte from the one before: ~6 bytes an event
        // with its seq and length (13 when changes were a removal and an insertion of whole ordinals).
        #expect(entryBytes < events * 7, "\(entryBytes) bytes of history for \(events) events")
        for s in snapshots {
            #expect(!entries.contains { $0.first <= s && $0.seqs.last! > s }, "an entry straddles the snapshot at \(s)")
        }
        var rng = SplitMix64(seed: 3)
        var seqs = Set((0..<25).map { _ in 1 + rng.next(below: last) })
        for s in snapshots { seqs.formUnion([s - 1, s, s + 1].filter { $0 >= 1 && $0 <= last }) }
        seqs.formUnion([1, 2, last])
        // The truth: a second ledger growing to each seq, its live views caught up.
        let growing = try Ledger.create(at: dir.appendingPathComponent("growing.ledger"))
        defer { growing.close() }
        let truth = try Views.open(ledger: growing)
        var next: UInt64 = 1
        for n in seqs.sorted() {
            if next <= n { _ = try await growing.append(contentsOf: try ledger.events(next...n).map(\.draft)) }
            next = n + 1
            try truth.catchUp()
            #expect(try views.datasets(asOf: n) == truth.datasets(), "datasets as of \(n)")
            let a = try views.chunkStatus(dataset: ViewsCorpus.dataset, ranges: 1_000, asOf: n)
            let b = try truth.chunkStatus(dataset: ViewsCorpus.dataset, ranges: 1_000)
            #expect(a?.dataset == b?.dataset && a?.groups == b?.groups, "chunk status as of \(n)")
            let newest = try truth.runs(RunQuery(limit: 25))
            #expect(try views.runs(RunQuery(limit: 25, asOf: n)) == newest, "runs as of \(n)")
            #expect(try views.runs(RunQuery(state: "running", limit: 5, asOf: n)) == truth.runs(RunQuery(state: "running", limit: 5)))
            let window = RunQuery(untilMicros: newest.last?.queuedMicros, limit: 10, asOf: n)
            #expect(try views.runs(window) == truth.runs(RunQuery(untilMicros: newest.last?.queuedMicros, limit: 10)), "runs before a time as of \(n)")
            for r in newest.prefix(3) {
                let a = try views.run(r.key, asOf: n)
                let b = try truth.run(r.key)
                #expect(a?.run == b?.run && a?.tasks == b?.tasks, "run \(r.key) as of \(n)")
            }
        }
        #expect(throws: ViewError.self) { try views.chunkStatus(dataset: ViewsCorpus.dataset, asOf: last + 1) }
    }

    /// The corpus dataset's chunk history snapshots, in seq order: each one's seq and how many ranges it holds.
    static func chunkSnapshots(_ views: Views) throws -> [(seq: UInt64, ranges: Int)] {
        try views.read(.chunks) { store, txn in
            var out: [(UInt64, Int)] = []
            let prefix = ChunkHistory.prefix(ViewsCorpus.dataset)
            try ViewTxn.scan(txn, store.table("snapshots"), prefix: prefix, view: "chunks", table: "snapshots") { k, v in
                out.append((UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value, try ChunkHistory.State(decoding: v, view: "chunks").rangeCount))
                return true
            }
            return out
        }
    }

    @Test("a chunk history snapshot stores its ranges as gaps (round trip at both ends of UInt64, ~2 bytes a range) and refuses a range past 2^64")
    func chunkSnapshotEncoding() throws {
        let dense = RangeSet(ranges: (0..<1_000).map { i -> ClosedRange<UInt64> in
            let lo = 4_000_000 + UInt64(i) * 3
            return lo...(lo + UInt64(i % 2))
        })
        let state = ChunkHistory.State(
            partitioning: "hourly", fields: nil, lastSeq: 42,
            sets: [1: RangeSet(ranges: [0...0, 2...5, 5_000_000...5_000_010, (UInt64.max - 3)...UInt64.max]), 3: dense, 4: RangeSet()])
        let bytes = try state.encoded()
        let back = try bytes.withUnsafeBytes { try ChunkHistory.State(decoding: $0, view: "chunks") }
        #expect(back == state)
        #expect(back.sets[3]?.ranges.count == 1_000 && back.sets[4] == nil)
        // Each dense range is a one-byte gap and a one-byte length (its first ordinal whole took four).
        let denseOnly = try ChunkHistory.State(partitioning: "", fields: nil, lastSeq: 1, sets: [3: dense]).encoded()
        #expect(denseOnly.count <= 2 * 1_000 + 16, "\(denseOnly.count) bytes for 1,000 ranges")

        // Hand-made snapshots: partitioning and fields empty, lastSeq 1, set 1 with these ranges.
        func snapshot(_ ranges: [(gap: UInt64, length: UInt64)]) -> [UInt8] {
            var out: [UInt8] = [0, 0, 1, 1]
            ProtoWire.appendVarint(UInt64(ranges.count), to: &out)
            for r in ranges {
                ProtoWire.appendVarint(r.gap, to: &out)
                ProtoWire.appendVarint(r.length, to: &out)
            }
            return out
        }
        func decode(_ bytes: [UInt8]) throws -> ChunkHistory.State {
            try bytes.withUnsafeBytes { try ChunkHistory.State(decoding: $0, view: "chunks") }
        }
        #expect(try decode(snapshot([(5, 2), (0, 0), (3, 1)])).sets[1]?.ranges == [5...8, 12...13])
        #expect(try decode(snapshot([(UInt64.max - 1, 1)])).sets[1]?.ranges == [(UInt64.max - 1)...UInt64.max])
        for bad in [[(UInt64.max, 1)], [(UInt64.max - 1, 1), (0, 0)], [(1, 0), (UInt64.max - 1, 0)]] as [[(gap: UInt64, length: UInt64)]] {
            let error = try #require(throws: ViewError.self) { try decode(snapshot(bad)) }
            #expect(error.kind == .corrupt && "\(error)".contains("table snapshots: a range runs past 2^64"), "\(error)")
        }
    }

    @Test("chunk history snapshots fall due after max(minimum, 2 x ranges) operations, and the state as of any seq does not depend on where they fall")
    func chunkSnapshotSpacing() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("corpus.ledger"))
        defer { ledger.close() }
        try await ViewsCorpus.generate(into: ledger, events: 20_000)
        var options = Views.Options()
        options.chunkSnapshotOps = 16
        let often = try Views.open(ledger: ledger, options: options)
        let ds = ViewsCorpus.dataset
        let prefix = ChunkHistory.prefix(ds)
        // Snapshots (seq, ranges) and the number of operations of each event, in seq order, from the tables.
        let snapshots = try Self.chunkSnapshots(often)
        let opsAt: [(seq: UInt64, ops: Int)] = try often.read(.chunks) { store, txn in
            var ops: [(UInt64, Int)] = []
            try ViewTxn.scan(txn, store.table("changes"), prefix: prefix, view: "chunks", table: "changes") { k, v in
                let first = UnsafeRawBufferPointer(rebasing: k[prefix.count...]).bigEndianUInt64Value
                var previous: UInt64 = 0
                try ChunkHistory.events(v, first: first, view: "chunks") { seq, entry in
                    var n = 0
                    try ChunkHistory.ops(entry, seq: seq, previous: &previous, view: "chunks") { _ in n += 1 }
                    ops.append((seq, n))
                    return true
                }
                return true
            }
            return ops
        }
        #expect(snapshots.count >= 8 && snapshots.contains { 2 * $0.ranges > 16 }, "snapshots, some with more than 8 ranges: \(snapshots.prefix(20))")
        var k = 0  // the first event of `opsAt` after the snapshot `a`
        for (a, b) in zip(snapshots, snapshots.dropFirst()) {
            let due = ChunkHistory.snapshotDue(minimumOps: 16, ranges: a.ranges)
            while k < opsAt.count, opsAt[k].seq <= a.seq { k += 1 }
            var total = 0, beforeLast = 0
            while k < opsAt.count, opsAt[k].seq <= b.seq {
                beforeLast = total
                total += opsAt[k].ops
                k += 1
            }
            #expect(total >= due && beforeLast < due, "snapshot at \(b.seq): \(total) operations since \(a.seq) (\(a.ranges) ranges, due \(due))")
        }
        // The same events with the default spacing (4,096 operations) give the same state at any seq.
        var seqs = Set(snapshots.flatMap { [$0.seq - 1, $0.seq, $0.seq + 1] })
        var rng = SplitMix64(seed: 5)
        let last = try ledger.lastSeq
        for _ in 0..<20 { seqs.insert(1 + rng.next(below: last)) }
        // A state applied from operations may keep a set emptied since its snapshot; one read from a
        // snapshot leaves it out. Both mean the same, so they are compared without empty sets.
        func states(_ views: Views) throws -> [ChunkHistory.State?] {
            try seqs.sorted().map { seq in
                try views.read(.chunks) { store, txn in try ChunkHistory.state(ds, asOf: seq, txn, store) }
                    .map { ChunkHistory.State(partitioning: $0.partitioning, fields: $0.fields, lastSeq: $0.lastSeq, sets: $0.sets) }
            }
        }
        let dense = try states(often)
        often.close()
        try FileManager.default.removeItem(at: ledger.directory.appendingPathComponent("views"))
        let seldom = try Views.open(ledger: ledger)
        let sparse = try Self.chunkSnapshots(seldom).count
        #expect(sparse < snapshots.count / 4, "\(sparse) snapshots at the default spacing, \(snapshots.count) at 16")
        for (seq, (a, b)) in zip(seqs.sorted(), zip(try states(seldom), dense)) {
            #expect(a == b, "the chunk history's state as of \(seq)")
        }
        #expect(dense.compactMap { $0 }.count >= seqs.count - 1)
    }

    @Test("--as-of N answers what a ledger holding only events 1...N answers")
    func asOfEqualsPrefix() async throws {
        try await DemoLedger.withCopy { ledger, dir in
            let views = try Views.open(ledger: ledger)
            let last = try ledger.lastSeq
            for n in [last / 5, last / 2, last * 4 / 5, last] {
                let prefix = try await prefixLedger(of: ledger, through: n, in: dir, name: "prefix-\(n).ledger")
                defer { prefix.close() }
                let truth = try Views.open(ledger: prefix)
                #expect(try views.runs(RunQuery(limit: 1000, asOf: n)) == truth.runs(RunQuery(limit: 1000)), "runs as of \(n)")
                for r in try truth.runs(RunQuery(limit: 1000)) {
                    let a = try views.run(r.key, asOf: n)
                    let b = try truth.run(r.key)
                    #expect(a?.run == b?.run && a?.tasks == b?.tasks, "run \(r.key) as of \(n)")
                }
                #expect(try views.runs(RunQuery(state: "running", limit: 1000, asOf: n)) == truth.runs(RunQuery(state: "running", limit: 1000)))
                #expect(try views.datasets(asOf: n) == truth.datasets())
                for d in try truth.datasets() {
                    let a = try views.chunkStatus(dataset: d.name, asOf: n)
                    let b = try truth.chunkStatus(dataset: d.name)
                    #expect(a?.dataset == b?.dataset && a?.groups == b?.groups, "\(d.name) as of \(n)")
                }
                for node in ["chunk:sensor.daily/2026-11-01T00:00:00Z", "dataset:shards.extracted", "chunk:sensor.seconds/2026-11-02T00:00:00Z"] {
                    for direction in [LineageDirection.up, .down] {
                        let a = try views.lineage(node: node, direction: direction, asOf: n)
                        let b = try truth.lineage(node: node, direction: direction)
                        #expect(Set(a) == Set(b), "lineage \(direction) of \(node) as of \(n)")
                    }
                }
                #expect(try views.values(name: "readings", match: .any, asOf: n) == truth.values(name: "readings", match: .any))
                #expect(try views.values(name: "output", match: .range(min: nil, max: nil), asOf: n, limit: 10_000)
                    == truth.values(name: "output", match: .range(min: nil, max: nil), limit: 10_000))
            }
            // Times name the last event at or before them.
            let e = try #require(try ledger.event(at: last / 2))
            let seq = try views.seq(asOf: ISO8601.string(micros: e.timestampMicros))
            #expect(try ledger.event(at: seq)!.timestampMicros <= e.timestampMicros)
            #expect(try ledger.events((seq + 1)...last).allSatisfy { $0.timestampMicros > e.timestampMicros }, "the last event at or before the time")
            #expect(throws: ViewError.self) { try views.seq(asOf: "yesterday") }
            #expect(throws: ViewError.self) { try views.seq(asOf: String(last + 1)) }
        }
    }

    @Test("keys in the partitioning's order take their natural ordinals with no ordinal entry; a second spelling of a window is a chunk of its own")
    func chunkOrdinals() async throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-ordinals-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("o.ledger"))
        defer { ledger.close() }
        let spec = DAG("hourly", datasets: [ChunkPipelines.hourly, DatasetSpec(name: "numbered", partitioning: .sequence)]) {
            Op("ingest") { _ in 1 }.produces("readings")
        }.spec
        var events = [NewEvent(type: EventType.dagRegistered, stream: "dag/hourly", actor: "test", timestampMicros: 1,
            payload: DAGRegistered(dag: "hourly", version: "v1", origin: "test", tasks: ["ingest"], definition: spec).payloadData)]
        func change(_ ds: String, _ key: String, _ from: ChunkStatus?, _ to: ChunkStatus) {
            events.append(NewEvent(type: EventType.chunkStatusChanged, stream: StreamID.dataset(ds), actor: "test", timestampMicros: 2,
                payload: ChunkChange(dataset: ds, chunk: key, from: from, to: to).payloadData))
        }
        // Hours 10 and 12 (11 is missing), hour 10 again spelled without seconds, a free-form key, and
        // sequence numbers 7 and 9 with 7 again as "07".
        for (ds, key) in [("readings", "2026-11-21T10:00:00Z"), ("readings", "2026-11-21T12:00:00Z"), ("readings", "2026-11-21T10:00Z"),
            ("readings", "backfill"), ("numbered", "7"), ("numbered", "9"), ("numbered", "07")]
        {
            change(ds, key, nil, .producing)
            change(ds, key, .producing, .ready)
        }
        change("readings", "2026-11-21T10:00Z", .ready, .consuming)
        _ = try await ledger.append(contentsOf: events)
        let views = try Views.open(ledger: ledger)
        defer { views.close() }
        let readings = try #require(try views.chunkStatus(dataset: "readings"))
        #expect(readings.dataset.chunks == 4 && readings.dataset.ordered == 2 && readings.dataset.missing == 1)
        #expect(readings.dataset.counts == ["ready": 3, "consuming": 1])
        #expect(readings.groups.first { $0.set == "missing" }?.ranges.map(\.first) == ["2026-11-21T11:00:00Z"])
        #expect(try views.chunks(dataset: "readings", status: "consuming").map(\.key) == ["2026-11-21T10:00Z"])
        #expect(try views.chunks(dataset: "readings", status: "ready").map(\.key) == ["2026-11-21T10:00:00Z", "2026-11-21T12:00:00Z", "backfill"])
        let numbered = try #require(try views.chunkStatus(dataset: "numbered"))
        #expect(numbered.dataset.chunks == 3 && numbered.dataset.ordered == 2 && numbered.dataset.missing == 1)
        #expect(try views.chunks(dataset: "numbered", status: "ready").map(\.key) == ["7", "9", "07"])
        // Only the second spellings and the free-form key have an entry in `ordinals`.
        let entries = try views.read(.chunks) { store, txn in try txn.stat(store.table("ordinals")).entries }
        #expect(entries == 3)
        #expect(try views.verify().filter { !$0.equal }.isEmpty)
    }

    @Test("a chunk made again marks what was derived from it stale, until that is made again too")
    func staleness() async throws {
        let dag = ChunkPipelines.pipeline()
        let reingest = ChunkPipelines.reingest()
        try await withEngine([dag, reingest]) { engine, ledger, _ in
            let p = ChunkPipelines.partition("2026-11-21T10:00:00Z")
            #expect(try await engine.run(dag, partition: p).status == .succeeded)
            var views = try Views.open(ledger: ledger)
            #expect(try views.chunkStatus(dataset: "averages")?.dataset.stale == 0)
            #expect(try await engine.run(reingest, partition: p).status == .succeeded)
            try views.catchUp()
            let report = try #require(try views.chunkStatus(dataset: "averages"))
            #expect(report.dataset.stale == 1)
            #expect(report.groups.first { $0.set == "stale" }?.ranges.first?.first == "2026-11-21T10:00:00Z")
            let stale = try views.chunks(dataset: "averages", status: "stale")
            #expect(stale.first?.staleBecause?.contains("readings/2026-11-21T10:00:00Z") == true)
            // Running the whole DAG again refreshes it.
            #expect(try await engine.run(dag, partition: p).status == .succeeded)
            try views.catchUp()
            #expect(try views.chunkStatus(dataset: "averages")?.dataset.stale == 0)
            views.close()
            views = try Views.open(ledger: ledger)
            #expect(try views.verify().filter { !$0.equal }.isEmpty)
        }
    }
}

enum ChunkPipelines {
    static let hourly = DatasetSpec(name: "readings", partitioning: .time(seconds: 3600))

    static func pipeline() -> DAG {
        DAG("hourly", datasets: [hourly, DatasetSpec(name: "averages", partitioning: .time(seconds: 3600))]) {
            Op("ingest") { ctx in
                try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
                try Data("[1,2,3]".utf8).write(to: ctx.outputDirectory.appendingPathComponent("readings"))
                return 3
            }.produces("readings")
            Op("average", after: "ingest") { _ in 2.0 }.consumes("readings").produces("averages")
        }
    }

    static func reingest() -> DAG {
        DAG("reingest", datasets: [hourly]) {
            Op("ingest") { ctx in
                try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
                try Data("[1,2,4]".utf8).write(to: ctx.outputDirectory.appendingPathComponent("readings"))
                return 3
            }.produces("readings")
        }
    }

    static func partition(_ key: String) -> Partition {
        let s = PartitionKey.parse(key)!
        return Partition(start: s, end: s + 3_600_000_000)
    }
}

@Suite("Binary view records")
struct BinaryRecordTests {
    /// Fails when a sample leaves a field nil or empty: a field added to a record must be added to its
    /// sample here, and then to its stored form, or the round trip below loses it.
    static func assertEveryFieldSet<R>(_ record: R, sourceLocation: SourceLocation = #_sourceLocation) {
        for child in Mirror(reflecting: record).children {
            let m = Mirror(reflecting: child.value)
            let empty = (m.displayStyle == .optional || m.displayStyle == .collection || m.displayStyle == .dictionary) && m.children.isEmpty
            #expect(!empty, "\(R.self).\(child.label ?? "?") is empty in the sample", sourceLocation: sourceLocation)
        }
    }

    static func roundTrip<R: BinaryRecord>(_ record: R, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
        let bytes = record.encoded()
        let back = try bytes.withUnsafeBytes { try R.decoded($0) }
        #expect(back == record, sourceLocation: sourceLocation)
        #expect(back.encoded() == bytes, "deterministic", sourceLocation: sourceLocation)
        // Every truncation and every appended byte is refused, never misread or a crash.
        for n in 0..<bytes.count {
            #expect(throws: RecordReader.Malformed.self, sourceLocation: sourceLocation) {
                try Array(bytes[0..<n]).withUnsafeBytes { try R.decoded($0) }
            }
        }
        #expect(throws: RecordReader.Malformed.self, sourceLocation: sourceLocation) { try (bytes + [0]).withUnsafeBytes { try R.decoded($0) } }
        return bytes
    }

    static let digest = "c1dfda7a5eb236f8acb06798004bbc2f1b5051c62d0332cd582d6717a91d279d"

    static func chunk() -> ChunkRecord {
        var c = ChunkRecord(key: "2026-01-01T01:00:00Z", ordinal: 490_897, status: "consumed", since: 99, sinceMicros: 1_767_225_600_004_950)
        c.dag = "etl"
        c.run = "scheduled__2026-01-01"
        c.task = "aggregate"
        c.attempt = 2
        c.partition = c.key
        c.location = "/data/hourly/" + c.key
        c.digest = digest
        c.bytes = 7733
        c.validated = false
        c.producedSeq = .max
        c.staleBecause = "hourly/2026-01-01T00:00:00Z was produced again at seq 120"
        c.leases = ["lease-1", "lease-2"]
        c.anomalies = ["seq 98: consumed -> producing"]
        return c
    }

    static func run() -> RunRecord {
        var r = RunRecord(dag: "etl", run: "manual__2026-11-03T00:00:00+00:00", state: "succeeded", queuedMicros: 1_767_225_600_000_000, firstSeq: 40, lastSeq: 90)
        r.version = "b3nch0000000v001"
        r.trigger = "dag:parent/r1"
        r.params = ["b": "2", "a": "1", "é": "ü"]
        r.partition = "2026-11-03"
        r.intervalStart = "2026-11-03T00:00:00Z"
        r.intervalEnd = "2026-11-04T00:00:00Z"
        r.startedMicros = 1_767_225_600_000_500
        r.endedMicros = 1_767_225_599_000_000  // before queued: a producer's clock
        r.attempts = 7
        r.resubmissions = 1
        r.taskStates = ["succeeded": 4, "failed": 1, "odd state": -1]
        r.failedTasks = ["load"]
        r.pid = 4242
        r.host = "worker-3"
        r.externalID = "manual__2026-11-03T00:00:00+00:00"
        r.externalIDs = ["scheduled__2026-11-03T00:00:00+00:00", "manual__2026-11-03T00:00:00+00:00"]
        return r
    }

    static func task() -> TaskRecord {
        var t = TaskRecord(task: "aggregate", state: "queued (pool)", firstSeq: 42, lastSeq: 41)
        t.attempts = 3
        t.order = 4
        t.firstStartMicros = 1_767_225_600_002_150
        t.lastStartMicros = 1_767_225_600_012_150
        t.endedMicros = .min
        t.durationMillis = 417
        t.error = "ValueError: no rows"
        t.reason = "pool full"
        t.outputDigest = digest.uppercased()  // not lowercase hex: kept as text
        t.branch = "left"
        t.exitCode = -9
        t.timedOut = true
        t.sql = "SELECT 1"
        return t
    }

    static func dataset() -> DatasetSummary {
        var d = DatasetSummary(name: "hourly", partitioning: "time:3600")
        d.counts = ["ready": 10, "consumed": 3, "made up": 1]
        d.chunks = 14
        d.stale = 2
        d.firstOrdinal = 490_000
        d.lastOrdinal = ChunksProjection.keyOrdinalBase + 5
        d.ordered = 13
        d.nextKeyOrdinal = ChunksProjection.keyOrdinalBase + 6
        d.lastSeq = 1_000_000
        d.fields = [.init(name: "id"), .init(name: "amount", type: "double"), .init(name: "note", type: nil, description: "free text")]
        return d
    }

    @Test("every record round-trips with every field set, deterministically, and a short or long record is refused")
    func roundTrips() throws {
        Self.assertEveryFieldSet(Self.chunk())
        Self.assertEveryFieldSet(Self.run())
        Self.assertEveryFieldSet(Self.task())
        Self.assertEveryFieldSet(Self.dataset())
        let chunk = try Self.roundTrip(Self.chunk())
        _ = try Self.roundTrip(Self.run())
        _ = try Self.roundTrip(Self.task())
        _ = try Self.roundTrip(Self.dataset())
        // Partition and location around the key, digest as its 32 bytes, status as a byte.
        let json = try JSONEncoder().encode(Self.chunk())
        #expect(chunk.count * 2 < json.count, "\(chunk.count) bytes against \(json.count) of JSON")
        #expect(!chunk.indices.contains { chunk[$0...].starts(with: Array(Self.digest.utf8)) })

        // Fields that do not follow the usual shapes keep their exact text.
        var odd = Self.chunk()
        odd.partition = ""
        odd.location = "s3://b/" + odd.key + "/part-0"
        odd.status = "sideways"
        odd.key = ""
        _ = try Self.roundTrip(odd)
        var empty = ChunkRecord(key: "k", ordinal: 0, status: "ready", since: 0, sinceMicros: -1)
        empty.location = "k"
        _ = try Self.roundTrip(empty)
        var bare = TaskRecord(task: "t", state: "running", firstSeq: 1, lastSeq: 1)
        bare.lastStartMicros = 5  // with no first start
        _ = try Self.roundTrip(bare)
    }

    @Test("a chunk key that spells its ordinal is stored as a byte or three; any other key keeps its exact text")
    func chunkKeyForms() throws {
        func stored(_ key: String, _ ordinal: UInt64) throws -> Int {
            var c = ChunkRecord(key: key, ordinal: ordinal, status: "ready", since: 10, sinceMicros: 1)
            c.partition = key
            c.producedSeq = 10
            return try Self.roundTrip(c).count
        }
        let hour = UInt64(1_767_229_200 / 3600)  // 2026-01-01T01:00:00Z
        let bare = try stored("", 0)
        // The one spelling of the ordinal: no text.
        #expect(try stored("2026-01-01T01:00:00Z", hour) <= bare + 3)
        #expect(try stored("2026-01-01T00:00:00Z", UInt64(1_767_225_600 / 86_400)) <= bare + 4)  // daily
        #expect(try stored("2026-01-01T01:15:00Z", UInt64(1_767_230_100 / 900)) <= bare + 5)  // 15 minutes
        #expect(try stored("0001-01-01T00:00:01Z", 1) > 0)
        #expect(try stored("9999-12-31T23:59:59Z", 253_402_300_799) > 0)
        #expect(try stored("42", 42) <= bare + 2)
        #expect(try stored("0", 0) <= bare + 2)
        #expect(try stored(String(UInt64.max), .max) <= bare + 11)
        // Other spellings, other ordinals, and keys of no partitioning: their text.
        for (key, ordinal) in [
            ("2026-01-01T01:00Z", hour), ("2026-01-01T01:00:00Z", hour + 1), ("2026-01-01T01:00:00Z", 7), ("2026-01-01", hour),
            ("2026-02-31T00:00:00Z", 0), ("2026-01-01T01:00:00Z", 0), ("1970-01-01T00:00:00Z", 0), ("07", 7), ("+7", 7),
            ("-7", 7), ("7", 8), ("", 1), ("hourly/2026", 2026), ("１２", 12), ("2026-01-01T01:00:00Y", hour),
        ] {
            #expect(try stored(key, ordinal) >= bare + key.utf8.count, "\(key) at \(ordinal)")
        }
        // A window key whose ordinal and length spell a time past year 9999, or overflow, is refused.
        for seconds in [UInt64(1) << 40, .max] {
            var w = RecordWriter(optionals: ChunkRecord.optionals)
            w.varint(1 << 30)
            w.byte(ChunkKeyForm.window)
            w.varint(seconds)
            w.word("ready")
            w.varint(1)
            w.int(1)
            w.strings([])
            #expect(throws: RecordReader.Malformed.self) { try w.bytes.withUnsafeBytes { try ChunkRecord.decoded($0) } }
        }
    }

    @Test("value hits read back their exact text, whether the key holds it or the hit does")
    func valueTexts() async throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-values-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("v.ledger"))
        defer { ledger.close() }
        let long = String(repeating: "é", count: 150)  // 300 bytes: cut at 200 in the hit, 64 in the key
        let values: [(String, JSONTree)] = [
            ("x", .number(1.5)), ("x", .number(-0.0)), ("x", .number(1e300)), ("x", .number(-7)), ("s", .string("abc")),
            ("s", .string("é\"x\\")), ("s", .string(String(repeating: "a", count: 64))), ("s", .string(String(repeating: "b", count: 65))),
            ("s", .string(long)), ("s", .string("a\u{0}b")), ("b", .bool(true)), ("b", .bool(false)), ("a\u{0}b", .number(3)),
        ]
        var events: [NewEvent] = []
        for (i, (name, value)) in values.enumerated() {
            let payload = JSONTree.object([
                "task": .string("t"), "attempt": .number(1), "step": .number(Double(i)), "name": .string(name),
                "digest": .string(String(repeating: "0", count: 63) + String(i % 10)), "value": value,
            ])
            events.append(NewEvent(type: EventType.variableRecorded, stream: "run/d/r", actor: "test", timestampMicros: 1, payload: Data(payload.canonicalBytes)))
        }
        _ = try await ledger.append(contentsOf: events)
        let views = try Views.open(ledger: ledger)
        defer { views.close() }
        var found: [ValueHit] = []
        for name in ["x", "s", "b", "a\u{0}b"] { found += try views.values(name: name, match: .any) }
        #expect(found.count == values.count)
        for hit in found {
            let (name, value) = values[try #require(hit.step)]
            #expect(hit.name == ValuesProjection.indexed(name: name))
            #expect(hit.value == String(value.text.utf8.prefix(200)) ?? value.text, "\(name) = \(value.text)")
            #expect(hit.dag == "d" && hit.run == "r" && hit.task == "t" && hit.attempt == 1)
        }
        #expect(found.contains { $0.name == "a\u{FFFD}b" && $0.value == "3" })
        #expect(try views.values(name: "s", match: .equals(.string(long))).first?.step == 8)
        // Thirteen hits of one run: the run is interned once, and no hit holds its id.
        let (interned, raw) = try views.read(.values) { store, txn in
            var hasID = false
            try ViewTxn.scan(txn, store.table("by_name"), prefix: [], view: "values", table: "by_name") { _, v in
                hasID = hasID || Array(v).starts(with: Array("d\u{0}r".utf8))
                return true
            }
            return (try txn.stat(store.table("runs")).entries, hasID)
        }
        #expect(interned == 1 && !raw)
        #expect(try views.values(name: "x", match: .equals(.number(0))).first?.value == JSONTree.number(-0.0).text)
        let differing = try views.verify().filter { !$0.equal }
        #expect(differing.isEmpty, "\(differing)")
    }

    @Test("random bytes are refused or read as some record, never a crash")
    func randomBytes() {
        var rng = SystemRandomNumberGenerator()
        var refused = 0
        for _ in 0..<20_000 {
            var bytes = Self.chunk().encoded()
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if (try? bytes.withUnsafeBytes { try ChunkRecord.decoded($0) }) == nil { refused += 1 }
        }
        #expect(refused > 0)
    }
}

@Suite("Lineage view storage: ids and edges")
struct LineageStorageTests {
    @Test("lineage node ids: stored once, found from their home, colliding homes probe on, digest prefixes read a range")
    func nodeNumbers() async throws {
        // Round trips, and a value's home is its digest's first 7 bytes.
        let digest = "0123456789abcdef" + String(repeating: "e", count: 48)
        for id in ["value:" + digest, "value:" + digest.uppercased(), "value:", "value:x\u{0}y", "task:d/t", "chunk:ds/é/1", "plain", "", "run:"] {
            let node = NodeName(id)
            #expect(node.stored.withUnsafeBytes { NodeName.id(number: node.home, stored: $0) } == id)
            #expect(node.home >> 56 == UInt64(NodeKind(of: id).rawValue))
        }
        #expect(NodeName("value:" + digest).home == 0x05_01_23_45_67_89_ab_cd)
        #expect(NodeName("value:" + digest).stored.count == 33)
        #expect(NodeName.next(after: NodeKind.value.base | NodeName.homeMask) == NodeKind.value.base)
        #expect(try NodeName.number(home: NodeKind.task.base | 77, counter: [0x81, 0x01]) == NodeKind.task.base | 129)
        #expect(throws: ViewError.self) { try NodeName.number(home: 1, counter: [0x81]) }
        #expect(NodeName.valueRange("0123")! == (NodeKind.value.base | 0x0123_0000_0000_00, NodeKind.value.base | 0x0123_ffff_ffff_ff))
        #expect(NodeName.valueRange("xyz") == nil)

        // Three values whose homes collide (a and b share their first 7 bytes, c's home is the one b
        // probes on to), and one of the same home that is never written.
        let zeros = String(repeating: "0", count: 14)
        let a = zeros + String(repeating: "a", count: 50)
        let b = zeros + String(repeating: "b", count: 50)
        let c = String(repeating: "0", count: 13) + "1" + String(repeating: "c", count: 50)
        let never = zeros + String(repeating: "d", count: 50)
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-nodes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("n.ledger"))
        defer { ledger.close() }
        var events: [NewEvent] = []
        for (i, d) in [a, b, c].enumerated() {
            let payload = JSONTree.object(["task": .string("t\(i)"), "attempt": .number(1), "digest": .string(d)])
            events.append(NewEvent(type: EventType.valueProduced, stream: "run/d/r", actor: "test", timestampMicros: 1, payload: Data(payload.canonicalBytes)))
        }
        // t0's attempt then starts: its edges to its task and run join the group that holds its value.
        let started = JSONTree.object(["task": .string("t0"), "attempt": .number(1)])
        events.append(NewEvent(type: EventType.taskStarted, stream: "run/d/r", actor: "test", timestampMicros: 1, payload: Data(started.canonicalBytes)))
        _ = try await ledger.append(contentsOf: events)
        let views = try Views.open(ledger: ledger)
        defer { views.close() }
        let (numbers, homes) = try views.read(.lineage) { store, txn in
            let names = LineageNames(store: store, txn: txn)
            var homes: [UInt64] = []
            try GroupedTable.scan(txn, store.table("ids"), prefix: [NodeKind.value.rawValue], view: "lineage", table: "ids") { k, _ in
                homes.append(k.bigEndianUInt64Value)
                return true
            }
            return (try [a, b, c, never].map { try names.number(of: "value:" + $0) }, homes)
        }
        // Counters in the order nodes appear (each attempt just before its value); homes probed on.
        let value = NodeKind.value.base
        #expect(numbers == [value | 2, value | 4, value | 6, nil])
        #expect(homes == [value, value + 1, value + 2])
        for (i, d) in [a, b, c].enumerated() {
            #expect(try views.lineageNodeExists("value:" + d))
            let up = try views.lineage(node: "value:" + d, direction: .up, depth: 1)
            #expect(up.map(\.from) == ["attempt:d/r/t\(i)/1"], "\(up)")
        }
        #expect(try !views.lineageNodeExists("value:" + never))
        #expect(try views.lineageNodes(prefix: "value:" + zeros) == ["value:" + a, "value:" + b])
        #expect(try views.lineageNodes(prefix: "value:" + b) == ["value:" + b], "found past the range its digest gives, on the probe chain")
        #expect(try views.lineageNodes(prefix: "value:" + String(repeating: "0", count: 13)) == ["value:" + a, "value:" + b, "value:" + c])
        #expect(try views.lineageNodes(prefix: "value:", limit: 2) == ["value:" + a, "value:" + b])
        #expect(try views.lineageNodes(prefix: "attempt:d/r/t1") == ["attempt:d/r/t1/1"])
        #expect(try views.lineageNodeCount() == 8)
        // A kind's neighbours are a range of the attempt's edges.
        let attempt = "attempt:d/r/t0/1"
        #expect(try views.lineageNeighbors(of: attempt, direction: .down, prefix: "value:").map(\.to) == ["value:" + a])
        #expect(try views.lineageNeighbors(of: attempt, direction: .down, prefix: "run:").map(\.to) == ["run:d/r"])
        #expect(try views.lineageNeighbors(of: attempt, direction: .down, prefix: "task:").map(\.to) == ["task:d/t0"])
        #expect(try views.lineageNeighbors(of: attempt, direction: .down, prefix: "chunk:").isEmpty)
        #expect(try views.lineageNeighbors(of: attempt, direction: .down, prefix: "").count == 3)
        #expect(try views.lineage(node: attempt, direction: .down, depth: 1, asOf: 3).map(\.to) == ["value:" + a])
        let records = try views.read(.lineage) { store, txn in try txn.stat(store.table("fwd")).entries }
        #expect(records == 1, "the edges of every node share one record")
        // Each id is stored once, a digest as its 32 bytes.
        let texts = try views.read(.lineage) { store, txn in
            var all: [String] = []
            try GroupedTable.scan(txn, store.table("names"), prefix: [], view: "lineage", table: "names") { _, v in
                all.append(String(decoding: v, as: UTF8.self))
                return true
            }
            return all
        }
        #expect(texts.count == 8 && !texts.contains { $0.contains(a) || $0.contains("value:") || $0.contains("attempt:") })
        let differing = try views.verify().filter { !$0.equal }
        #expect(differing.isEmpty, "\(differing)")
    }

    @Test("lineage edge entries: the other end, kind and first seq round-trip; damaged entries are refused")
    func edgeEntries() throws {
        let key = EdgeEntry.key(9, NodeKind.task.base | 300)
        let value = EdgeEntry.value(.generated, seq: 1_000_000)
        let e = try key.withUnsafeBytes { k in try value.withUnsafeBytes { try EdgeEntry.decode(key: k, value: $0, table: "fwd") } }
        #expect(e.other == NodeKind.task.base | 300 && e.kind == .generated && e.seq == 1_000_000)
        #expect(value.count == 4, "a kind byte and a varint")
        for (k, v) in [(key, Array(value.dropLast())), (key, value + [1]), (key, [0xee] + value.dropFirst()), (key, []), (Array(key.dropLast()), value)] {
            #expect(throws: ViewError.self) { try k.withUnsafeBytes { k in try v.withUnsafeBytes { try EdgeEntry.decode(key: k, value: $0, table: "fwd") } } }
        }
    }
}

@Suite("Grouped tables")
struct GroupedTableTests {
    /// Keys with long shared prefixes (a few names, then a value, then a seq), values of 0-40 bytes (or
    /// of 0-`maxValue`).
    static func entries(_ n: Int, _ rng: inout SplitMix64, maxValue: UInt64 = 40) -> [([UInt8], [UInt8])] {
        (0..<n).map { i in
            let name = ["a", "ab", "b", "output.mean", "\u{ff}"][Int(rng.next(below: 5))]
            let key = KeyBuilder().string(name).u64(rng.next(below: 50)).u64(UInt64(i)).bytes
            let value = (0..<Int(rng.next(below: maxValue + 1))).map { _ in UInt8(truncatingIfNeeded: rng.nextValue()) }
            return (key, value)
        }
    }

    @Test("random insertions agree with a sorted map: gets, prefix scans from any start, the last of a prefix; groups stay small and deterministic")
    func againstModel() throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-grouped-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try ViewStore(name: "values", directory: dir.appendingPathComponent("a"), tables: ["t"])
        defer { a.close() }
        let b = try ViewStore(name: "values", directory: dir.appendingPathComponent("b"), tables: ["t"])
        defer { b.close() }
        var rng = SplitMix64(seed: 5)
        let all = Self.entries(3000, &rng)
        var model: [ByteKey: [UInt8]] = [:]
        // Inserted in a random order, with repeats (refused, the first value kept), in batches of 1-50
        // into `a` and one at a time into `b`.
        var order = (all + all.prefix(300).map { ($0.0, [UInt8(9)]) })
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next(below: UInt64(i + 1)))) }
        var i = 0
        while i < order.count {
            let n = min(order.count - i, Int(rng.next(below: 50)) + 1)
            try a.env.write { txn in
                for (k, v) in order[i..<(i + n)] {
                    let inserted = try GroupedTable.insert(k, v, into: "t", ViewTxn(txn: txn, store: a))
                    #expect(inserted == (model[ByteKey(k)] == nil))
                    if inserted { model[ByteKey(k)] = v }
                }
            }
            i += n
        }
        // Into `b` one at a time: the entries `a` kept in another random order, then the repeats again.
        var other = model.keys.sorted().map { ($0.bytes, model[$0]!) }
        for i in stride(from: other.count - 1, to: 0, by: -1) { other.swapAt(i, Int(rng.next(below: UInt64(i + 1)))) }
        for (k, v) in other + all.prefix(300).map({ ($0.0, [UInt8(9)]) }) {
            let fresh = try b.env.read { txn in try GroupedTable.get(k, txn, b.table("t"), view: "values", table: "t") == nil }
            let done = try b.env.write { txn in try GroupedTable.insert(k, v, into: "t", ViewTxn(txn: txn, store: b)) }
            #expect(done == fresh)
        }
        // Groups start where the entries say: the same entries inserted in any order and batches leave the
        // same records.
        #expect(try a.env.read { try a.digest($0) } == b.env.read { try b.digest($0) }, "the same entries in another order and batches give the same records")

        let sorted = model.keys.sorted()
        try a.env.read { txn in
            let db = a.table("t")
            // Every record holds valid entries keyed by its first: the table's first, one the rule picks to
            // start a group, or one that did not fit in the record before (a group cut in records of at
            // most recordBytes, or of one entry). No later entry is one the rule picks.
            var records = 0
            var bytes = 0
            var cut = 0
            var previous: (bytes: Int, last: [UInt8])?
            try ViewTxn.scan(txn, db, prefix: [], view: "values", table: "t") { k, v in
                var w = GroupedTable.Walk(first: k, bytes: v, view: "values", table: "t")
                var n = 0
                while try w.next() {
                    let starts = w.withKey { GroupedTable.startsGroup($0, valueCount: w.value.count) }
                    if n == 0, let previous, !starts {
                        let fits = previous.bytes + w.withKey { k in previous.last.withUnsafeBytes { GroupedTable.encodedCount(key: k, after: $0, value: w.value.count) } }
                        #expect(fits > GroupedTable.recordBytes, "record \(records) continues a group that had room for its first entry")
                        cut += 1
                    }
                    if n > 0 { #expect(!starts, "entry \(n) of record \(records) starts a group") }
                    n += 1
                }
                #expect(n >= 1)
                #expect(v.count <= GroupedTable.recordBytes || n == 1)
                previous = (v.count, w.key)
                records += 1
                bytes += v.count
                return true
            }
            #expect(cut > 0, "groups cut in records")
            #expect(records > 1 && records < sorted.count / 5, "\(records) records for \(sorted.count) entries")
            #expect(bytes / records > 150 && bytes / records < 600, "\(bytes / records) bytes per group")
            // Everything back, in order.
            var scanned: [ByteKey] = []
            try GroupedTable.scan(txn, db, prefix: [], view: "values", table: "t") { k, v in
                scanned.append(ByteKey(Array(k)))
                #expect(model[ByteKey(Array(k))] == Array(v))
                return true
            }
            #expect(scanned.count == sorted.count)
            #expect(scanned == sorted, "first difference at \(zip(scanned, sorted).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
            for _ in 0..<300 {
                let key = sorted[Int(rng.next(below: UInt64(sorted.count)))].bytes
                #expect(try GroupedTable.get(key, txn, db, view: "values", table: "t") == model[ByteKey(key)])
                #expect(try GroupedTable.get(key + [0], txn, db, view: "values", table: "t") == nil)
                #expect(try GroupedTable.get(Array(key.dropLast()), txn, db, view: "values", table: "t") == nil)
                // A prefix scan from a start inside it, stopped after a few.
                let prefix = Array(key.prefix(Int(rng.next(below: UInt64(key.count + 1)))))
                let start = rng.next(below: 2) == 0 ? key : prefix
                let want = sorted.filter { $0.bytes.hasPrefix(prefix) && !($0 < ByteKey(start)) }.prefix(7).map(\.bytes)
                var got: [[UInt8]] = []
                try GroupedTable.scan(txn, db, prefix: prefix, from: start, view: "values", table: "t") { k, _ in
                    got.append(Array(k))
                    return got.count < 7
                }
                #expect(got == Array(want))
                let last = sorted.last { $0.bytes.hasPrefix(prefix) }?.bytes
                #expect(try GroupedTable.last(txn, db, prefix: prefix, view: "values", table: "t")?.key == last)
            }
            #expect(try GroupedTable.get([0], txn, db, view: "values", table: "t") == nil)
            #expect(try GroupedTable.last(txn, db, prefix: [0x00], view: "values", table: "t") == nil)
        }

        // Damaged groups are refused, not misread.
        let key = Array("k".utf8)
        let good: [UInt8] = [1, 7, 1, 1, UInt8(ascii: "x"), 0, 1, 1, UInt8(ascii: "z"), 2, 5, 6]  // k → 7, kx → "", kz → 5 6
        for (bad, ok) in [(good, true), (Array(good.dropLast()), false), (good + [0x80], false), ([], false),
            (good.prefix(6) + [1, 1, UInt8(ascii: "a"), 0], false), ([1, 7, 2, 1, UInt8(ascii: "x"), 0], false), ([1, 7, 0, 0, 0], false)]
        {
            let walked: Result<Int, any Error> = Result {
                try key.withUnsafeBytes { k in
                    try bad.withUnsafeBytes { v in
                        var w = GroupedTable.Walk(first: k, bytes: v, view: "values", table: "t")
                        var n = 0
                        while try w.next() { n += 1 }
                        return n
                    }
                }
            }
            if ok { #expect(try walked.get() == 3) } else { #expect(throws: ViewError.self) { try walked.get() } }
        }
    }

    /// Entries of up to 40 bytes of value (groups seldom cut in records), and of up to 400 (often cut).
    @Test(
        "a bulk load (sorted runs merged, repeats resolved to the first arrival, a retried write's additions dropped) writes the records insertions write, in any order",
        arguments: [UInt64(40), 400])
    func bulkLoadEqualsInsertions(maxValue: UInt64) throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-bulk-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SplitMix64(seed: 11)
        let all = Self.entries(6000, &rng, maxValue: maxValue)
        var arrivals = all + all.prefix(700).map { ($0.0, [UInt8(9), 9]) }
        for i in stride(from: arrivals.count - 1, to: 0, by: -1) { arrivals.swapAt(i, Int(rng.next(below: UInt64(i + 1)))) }
        let batches = stride(from: 0, to: arrivals.count, by: 97).map { arrivals[$0..<min($0 + 97, arrivals.count)] }

        let inserted = try ViewStore(name: "values", directory: dir.appendingPathComponent("inserted"), tables: ["t"])
        defer { inserted.close() }
        for batch in batches {
            try inserted.env.write { txn in for (k, v) in batch { _ = try GroupedTable.insert(k, v, into: "t", ViewTxn(txn: txn, store: inserted)) } }
        }
        let want = try inserted.env.read { try inserted.digest($0) }
        // The same entries inserted in key order (each after every other: records fill and the next
        // entry opens a record of its own) and in reverse (each before every other), ten to a write.
        let kept = try inserted.env.read { txn in
            var out: [([UInt8], [UInt8])] = []
            try GroupedTable.scan(txn, inserted.table("t"), prefix: [], view: "values", table: "t") { k, v in
                out.append((Array(k), Array(v)))
                return true
            }
            return out
        }
        for (name, order) in [("ascending", kept), ("descending", kept.reversed())] {
            let store = try ViewStore(name: "values", directory: dir.appendingPathComponent(name), tables: ["t"])
            defer { store.close() }
            for i in stride(from: 0, to: order.count, by: 10) {
                let inserted = try store.env.write { txn in
                    try order[i..<min(i + 10, order.count)].filter { (k, v) in try GroupedTable.insert(k, v, into: "t", ViewTxn(txn: txn, store: store)) }.count
                }
                #expect(inserted == min(10, order.count - i))
            }
            #expect(try store.env.read { try store.digest($0) } == want, "inserted in \(name) order")
        }

        // In memory only (a big budget), and through runs of ~2 KiB merged.
        for budget in [1 << 30, 2048] {
            let store = try ViewStore(name: "values", directory: dir.appendingPathComponent("bulk-\(budget)"), tables: ["t"], building: true)
            defer { store.close() }
            let load = BulkLoad(directory: store.directory, tables: ["t"], budget: budget)
            store.bulk = load
            for (n, batch) in batches.enumerated() {
                load.mark()
                for (k, v) in batch { try store.env.write { txn in _ = try ViewTxn(txn: txn, store: store).add(k, v, grouped: "t") } }
                if n % 5 == 0 {
                    // The write failed and is retried: what it added is dropped and added again.
                    load.rollback()
                    for (k, v) in batch { load.add(k, v, to: "t") }
                }
                try load.commit()
            }
            let runs = try FileManager.default.contentsOfDirectory(atPath: store.directory.path).filter { $0.hasPrefix("bulk-t-") }
            #expect(budget > 1 << 20 ? runs.isEmpty : runs.count > 20, "\(runs.count) runs")
            #expect(try store.env.read { txn in try txn.stat(store.table("t")).entries } == 0, "nothing is inserted while the fold runs")
            try store.finishBulk()
            #expect(try store.env.read { try store.digest($0) } == want, "budget \(budget)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory.path).filter { $0.hasPrefix("bulk-") }.isEmpty)
        }
    }

    @Test("a sorted run that cannot be written, or is cut short, fails the bulk load with an error naming it")
    func bulkLoadRunFailures() throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-bulk-bad-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SplitMix64(seed: 3)
        let entries = Self.entries(500, &rng)
        // No directory to write runs in.
        let missing = BulkLoad(directory: dir.appendingPathComponent("nowhere"), tables: ["t"], budget: 1024)
        for (k, v) in entries { missing.add(k, v, to: "t") }
        #expect {
            try missing.commit()
        } throws: { error in
            "\(error)".contains("cannot create the sorted run") && "\(error)".contains("nowhere/bulk-t-0.run")
        }
        // A run cut short (the disk filled, a stray truncate), inside an entry or at an entry's end, is
        // refused, not merged as far as it goes.
        let last = entries.sorted { $0.0.lexicographicallyPrecedes($1.0) }.last!
        let lastBytes = 2 + last.0.count + last.1.count  // both counts are one-byte varints here
        for (cut, why) in [(3, "ends inside an entry"), (lastBytes, "holds 499 entries")] {
            let store = try ViewStore(name: "values", directory: dir.appendingPathComponent("store-\(cut)"), tables: ["t"], building: true)
            defer { store.close() }
            let load = BulkLoad(directory: store.directory, tables: ["t"], budget: 1024)
            for (k, v) in entries { load.add(k, v, to: "t") }
            try load.commit()
            for (k, v) in entries.prefix(50) { load.add(k + [1], v, to: "t") }
            let run = store.directory.appendingPathComponent("bulk-t-0.run")
            let size = try FileManager.default.attributesOfItem(atPath: run.path)[.size] as! Int
            #expect(truncate(run.path, off_t(size - cut)) == 0)
            #expect {
                try load.write("t", into: store)
            } throws: { error in
                "\(error)".contains("bulk-t-0.run") && "\(error)".contains(why)
            }
        }
    }
}

@Suite("RangeSet")
struct RangeSetTests {
    @Test("random inserts and removes agree with a plain set, and ranges stay maximal")
    func againstSet() {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<20 {
            var r = RangeSet()
            var s = Set<UInt64>()
            for _ in 0..<400 {
                let x = rng.next(below: 120)
                if rng.next(below: 3) == 0 { r.remove(x); s.remove(x) } else { r.insert(x); s.insert(x) }
            }
            #expect(r.count == UInt64(s.count))
            for x in 0..<UInt64(125) { #expect(r.contains(x) == s.contains(x)) }
            for (a, b) in zip(r.ranges, r.ranges.dropFirst()) { #expect(a.upperBound + 1 < b.lowerBound) }
            let gaps = r.complement(in: 0...124)
            #expect(gaps.reduce(0) { $0 + $1.count } == 125 - s.count)
        }
    }

    @Test("thousands of ranges (many blocks): ranges that merge across blocks, splits, equality whatever the blocking")
    func manyBlocks() {
        var rng = SplitMix64(seed: 7)
        let domain: UInt64 = 20_000
        var r = RangeSet()
        var s = Set<UInt64>()
        // Scattered points first: thousands of ranges, so the set spans many blocks.
        for _ in 0..<6_000 {
            let x = rng.next(below: domain)
            r.insert(x)
            s.insert(x)
        }
        #expect(r.rangeCount > 2 * RangeSet.blockLimit)
        for round in 0..<3_000 {
            let x = rng.next(below: domain)
            switch rng.next(below: 4) {
            case 0:
                r.remove(x)
                s.remove(x)
            case 1:
                // A long range: merges every range it touches, across block boundaries.
                let hi = min(domain - 1, x + rng.next(below: 1_500))
                r.insert(x...hi)
                for y in x...hi { s.insert(y) }
            default:
                r.insert(x)
                s.insert(x)
            }
            if round % 500 == 0 {
                for y in 0..<domain where r.contains(y) != s.contains(y) {
                    Issue.record("round \(round): \(y) is \(r.contains(y) ? "in" : "not in") the range set")
                    break
                }
            }
        }
        #expect(r.count == UInt64(s.count))
        for y in 0..<domain { #expect(r.contains(y) == s.contains(y)) }
        let ranges = r.ranges
        #expect(ranges.count == r.rangeCount)
        for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound + 1 < b.lowerBound) }
        var seen: [ClosedRange<UInt64>] = []
        r.forEachRange { seen.append($0); return seen.count < 10 }
        #expect(seen == Array(ranges.prefix(10)))
        // The same ranges inserted in order (different blocks) make an equal set; one more point does not.
        let rebuilt = RangeSet(ranges: ranges)
        #expect(rebuilt == r)
        var other = rebuilt
        if let gap = r.complement(in: 0...(domain - 1)).first { other.insert(gap.lowerBound) }
        #expect(other != r)
        #expect(r.complement(in: 0...(domain - 1)).reduce(0) { $0 + $1.count } == Int(domain) - s.count)
        // The top of the domain: a range ending at UInt64.max merges with everything after its start.
        var top = RangeSet(ranges: [(UInt64.max - 10)...(UInt64.max - 8), (UInt64.max - 5)...(UInt64.max - 5)])
        top.insert((UInt64.max - 9)...UInt64.max)
        #expect(top.ranges == [(UInt64.max - 10)...UInt64.max])
        top.remove(UInt64.max)
        #expect(top.ranges == [(UInt64.max - 10)...(UInt64.max - 1)])
    }
}

@Suite("Event schema against the engine")
struct EngineEventSchemaTests {
    @Test("every event the demo pipelines write decodes as its type's payload, with no undeclared field")
    func demoLedgerConforms() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            var problems: [String] = []
            var checked = 0
            try ledger.scan { event in
                if EventSchema.payload(of: event.type) != nil { checked += 1 }
                problems += EventSchema.problems(type: event.type, payload: event.payload).map { "seq \(event.seq): \($0)" }
                return true
            }
            #expect(checked > 100)
            #expect(problems.isEmpty, "\(problems.prefix(20).joined(separator: "\n"))")
        }
    }
}
