public import ClewLedger
public import Foundation
import ClewModel
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long fold (rebuild, verify, catch-up, `--as-of` of a whole view).
public struct FoldProgress: Sendable {
    public var done: UInt64
    public var total: UInt64
    public var elapsed: Double
    public var eventsPerSecond: Double { elapsed > 0 ? Double(done) / elapsed : 0 }
    public var etaSeconds: Double? {
        guard done > 0, eventsPerSecond > 0 else { return nil }
        return Double(total - min(done, total)) / eventsPerSecond
    }
}

/// The views of one ledger: projections of its log in `<ledger>/views/`, each its own LMDB environment,
/// folded in order with the checkpoint (last applied seq) written in the same transaction as the change.
///
/// ```
/// views/runs -> runs.3        a symlink per view to its current generation
/// views/runs.3/data.mdb       the view's environment: its tables and `meta` (checkpoint, ledger id)
/// ```
///
/// ``open(ledger:options:)`` checks every view (present, opens, its meta record, made from this ledger,
/// not ahead of the log, every record's checksum when the file is small enough) and rebuilds a view
/// that fails with a message naming why, then catches all views up. ``rebuild(_:progress:)`` builds into a
/// new generation and swaps the symlink atomically: a crash mid-rebuild leaves the old views in place.
public final class Views: @unchecked Sendable {
    // @unchecked Sendable: `live` and the projections are guarded by `lock`; environments are thread-safe.

    public struct Options: Sendable {
        /// Views whose data file is at most this big get every record's checksum checked when opened;
        /// bigger ones are checked record by record as they are read (and by `clew views verify`).
        public var integrityScanLimit = 64 << 20
        /// Check each view's file against its seal before opening it (see `ViewStore.Seal`).
        public var checkSeals = true
        /// Events per write transaction. A fold of 10M events (`clew views verify`, one run each,
        /// 2026-12-03) took 290 s of CPU with 20,000, 314 s with 100,000 and 339 s with 5,000: smaller
        /// batches write each page of a big view more often; bigger ones likely pay for LMDB's sorted list
        /// of dirty pages, which an insertion shifts (`mdb_mid2l_insert`).
        public var batchEvents = 20_000
        /// Called with what the views did on their own (a rebuild after a problem).
        public var notice: @Sendable (String) -> Void = { _ in }
        public var progress: (@Sendable (FoldProgress) -> Void)? = nil
        /// Seqs per epoch of the runs view's `by_epoch` index, as a power of two (tests use small epochs
        /// to have many; queries read any width).
        package var runEpochBits: UInt64 = 16
        /// Operations of a dataset between two snapshots of the chunk history (tests take snapshots often).
        package var chunkSnapshotOps = ChunkHistory.minimumSnapshotOps
        /// Each view's first map size (it doubles as the view grows); tests start small to grow it often.
        package var mapSize = 64 << 20
        /// Grow a view's map before a fold's write that may not fit (tests switch it off to take the path
        /// of a write retried after `MDB_MAP_FULL`).
        package var growMapAhead = true
        /// Bytes of a bulk-loaded table's entries a rebuild keeps in memory before it sorts them into a
        /// run file (``BulkLoad``); tests make it small to merge many runs.
        package var bulkBudget = 48 << 20
        /// Bytes of memory a rebuild's deferred insertions (lineage `ids`, ``DeferredInserts``) may take
        /// before they move to their spill table; tests make it small to move them often.
        package var deferredBudget = 64 << 20
        /// Hears each move of a rebuild's deferred insertions to their spill: the view and the entries
        /// moved (tests).
        package var deferredFlushed: (@Sendable (ViewName, Int) -> Void)? = nil
        /// Fault injection for tests: asked after a view's write applied its batch, before its checkpoint;
        /// `true` fails the write as LMDB does when the map fills at commit (`MDB_MAP_FULL`), so it is retried.
        package var failWriteAfterApply: (@Sendable (ViewName) -> Bool)? = nil
        public init() {}
    }

    public let ledger: Ledger
    public let directory: URL
    /// Where each view's generations live and how a rebuild swaps them in.
    let generations: ViewGenerations
    let options: Options
    private let lock = Mutex<Void>(())
    private var live: [ViewName: (store: ViewStore, projection: any Projection, checkpoint: UInt64)] = [:]
    /// Views that did not open or check (``openForVerify(ledger:options:)`` only).
    var problems: [ViewName: String] = [:]

    init(ledger: Ledger, options: Options) {
        self.ledger = ledger
        self.directory = ledger.directory.appendingPathComponent("views")
        self.generations = ViewGenerations(directory: directory)
        self.options = options
    }

    deinit { close() }

    /// Seals the views this process wrote and closes them (also done when the views are released).
    public func close() {
        let stores = lock.withLock { _ in
            defer { live.removeAll() }
            return live.values.map(\.store)
        }
        for s in stores { s.close() }
    }

    /// Opens the views of `ledger`, rebuilding any that is missing, truncated, corrupt or foreign (with a
    /// ``Options/notice``), and catches them all up with the log.
    public static func open(ledger: Ledger, options: Options = Options()) throws -> Views {
        guard !ledger.isReadOnly else {
            throw ViewError(.invalidInput, view: nil, "views need a writable ledger; \(ledger.directory.path) was opened read-only")
        }
        let views = Views(ledger: ledger, options: options)
        try FileManager.default.createDirectory(at: views.directory, withIntermediateDirectories: true)
        var broken: [(ViewName, String)] = []
        for name in ViewName.allCases {
            do {
                try views.attach(name)
            } catch let e as ViewError {
                broken.append((name, e.message))
            }
        }
        if !broken.isEmpty {
            let last = try ledger.lastSeq
            if broken.count == ViewName.allCases.count, broken.allSatisfy({ $0.1.hasSuffix("is missing") }) {
                options.notice("views: none yet; building them from the log (\(last) events)")
            } else {
                for (name, why) in broken {
                    options.notice("views: \(why); rebuilding \(name.rawValue) from the log (\(last) events)")
                }
            }
            try views.rebuild(broken.map(\.0))
        }
        try views.catchUp()
        return views
    }

    /// Opens the view's current generation and checks it; throws a ``ViewError`` naming what is wrong.
    /// - Parameter justSealed: the generation is one this process has just written and sealed (a
    ///   rebuild's), so hashing its file again to check the seal would only repeat that work.
    func attach(_ name: ViewName, justSealed: Bool = false) throws {
        guard let dir = generations.current(name), FileManager.default.fileExists(atPath: dir.appendingPathComponent("data.mdb").path) else {
            throw ViewError(.missing, view: name.rawValue, "view \(name.rawValue) is missing")
        }
        let sealed = try justSealed || (options.checkSeals ? ViewStore.checkSeal(dir, view: name.rawValue) : false)
        let store: ViewStore
        do {
            store = try ViewStore(name: name.rawValue, directory: dir, tables: name.tables, mapSize: options.mapSize)
        } catch let e as ViewError {
            throw e
        } catch {
            throw ViewError(.corrupt, view: name.rawValue, "view \(name.rawValue) does not open (\(error))")
        }
        do {
            let checkpoint = try check(store, name, sealed: sealed)
            lock.withLock { _ in
                if let old = live[name] { old.store.close() }
                live[name] = (store, name.makeProjection(options), checkpoint)
            }
        } catch {
            store.close()
            if let e = error as? ViewError { throw e }
            throw ViewError(.corrupt, view: name.rawValue, "view \(name.rawValue) does not read (\(error))")
        }
    }

    private func check(_ store: ViewStore, _ name: ViewName, sealed: Bool) throws -> UInt64 {
        let last = try ledger.lastSeq
        let size = (try? FileManager.default.attributesOfItem(atPath: store.directory.appendingPathComponent("data.mdb").path)[.size] as? Int) ?? 0
        return try store.env.read { txn in
            guard let meta = try store.readMeta(txn) else {
                throw ViewError(.corrupt, view: name.rawValue, "view \(name.rawValue) has no meta record")
            }
            guard meta.format == ViewStore.formatVersion, meta.view == name.rawValue else {
                throw ViewError(.mismatched, view: name.rawValue, "view \(name.rawValue) was written by another format (\(meta.format)) or is not this view (\(meta.view))")
            }
            guard meta.ledger == ledger.id else {
                throw ViewError(.mismatched, view: name.rawValue, "view \(name.rawValue) belongs to ledger \(meta.ledger), not \(ledger.id)")
            }
            guard meta.state == "ready" else {
                throw ViewError(.corrupt, view: name.rawValue, "view \(name.rawValue) was left half-built")
            }
            guard meta.checkpoint <= last else {
                throw ViewError(.mismatched, view: name.rawValue, "view \(name.rawValue) is at seq \(meta.checkpoint), ahead of the log (\(last) events)")
            }
            if !sealed, size <= options.integrityScanLimit { _ = try store.checkIntegrity(txn) }
            return meta.checkpoint
        }
    }

    // MARK: catching up

    /// Folds every event past each view's checkpoint into it (through seq `through` at most), or at most
    /// `maxEvents` of them past the lowest checkpoint (a slice, so a caller that shares the views can let
    /// others in between slices while the log grows faster than one catch-up folds). Returns the seq the
    /// views reached.
    @discardableResult
    public func catchUp(maxEvents: UInt64 = .max, through: UInt64 = .max) throws -> UInt64 {
        try reattachIfSwapped()
        let (targets, lowest) = lock.withLock { _ in
            (live.map { FoldTarget(name: $0.key, store: $0.value.store, projection: $0.value.projection) }, live.values.map(\.checkpoint).min() ?? 0)
        }
        let last = min(try ledger.lastSeq, max(through, lowest))
        let end = maxEvents >= last - min(lowest, last) ? last : lowest + maxEvents
        var erasure: UInt64?
        let reached = try fold(targets, through: end, progress: nil, onErasure: { erasure = $0 })
        lock.withLock { _ in for (name, seq) in reached { live[name]?.checkpoint = seq } }
        // Payloads erased since (`clew erase`, `clew retention`, by any process): the views still hold
        // what they said, so they are folded again without them.
        if let erasure {
            options.notice("views: payloads were erased (seq \(erasure)); rebuilding the views without them")
            try rebuild(ViewName.allCases)
            return lock.withLock { _ in live.values.map(\.checkpoint).min() } ?? 0
        }
        return reached.values.min() ?? 0
    }

    /// Another process may have rebuilt a view (a new generation): follow its symlink.
    private func reattachIfSwapped() throws {
        for name in ViewName.allCases {
            let dir = lock.withLock { _ in live[name]?.store.directory }
            if let dir, generations.current(name)?.lastPathComponent != dir.lastPathComponent {
                do { try attach(name) } catch let e as ViewError {
                    options.notice("views: \(e.message); rebuilding \(name.rawValue) from the log")
                    try rebuild([name])
                }
            }
        }
    }

    struct FoldTarget {
        let name: ViewName
        let store: ViewStore
        let projection: any Projection
        var limit: UInt64 = .max
    }

    /// Folds the log into `targets` (each from its own checkpoint) through seq `end`, in batches of one
    /// write transaction each. Returns each target's checkpoint afterwards.
    /// `onErasure` hears the seq of each `ledger.payloads_erased` event folded.
    func fold(
        _ targets: [FoldTarget], through end: UInt64, progress: (@Sendable (FoldProgress) -> Void)?, onErasure: ((UInt64) -> Void)? = nil
    ) throws -> [ViewName: UInt64] {
        var checkpoints: [ViewName: UInt64] = [:]
        for t in targets {
            checkpoints[t.name] = try t.store.env.read { try t.store.readMeta($0)?.checkpoint ?? 0 }
        }
        guard let start = checkpoints.values.min(), start < end else { return checkpoints }
        let total = end - start
        let began = Date()
        var lastReport = Date.distantPast
        // What each batch needs decoded: the interests of the targets that still fold part of it. A
        // target's checkpoint only grows, so its checkpoint now (or the batch's start) bounds it.
        let needs = targets.map { (start: checkpoints[$0.name]!, limit: $0.limit, interest: type(of: $0.projection).interest) }
        let reader = FoldReader(ledger: ledger, batchEvents: options.batchEvents) { first, last in
            var interest: Fact.Interest = []
            for n in needs where max(n.start, first - 1) < min(last, n.limit) { interest.formUnion(n.interest) }
            return interest
        }

        func apply(_ batch: DecodedBatch) throws {
            guard let last = batch.headers.last?.seq else { return }
            for seq in batch.erasures { onErasure?(seq) }
            // Each view is an environment and a projection of its own: the due ones write on as many
            // threads as there are cores (besides the reader's), the biggest first, so they end together.
            let due = targets.filter { checkpoints[$0.name]! < min(last, $0.limit) }.sorted { $0.name.weight > $1.name.weight }
            let from = due.map { checkpoints[$0.name]! }
            let reached = Self.concurrently(due.indices) { i in try write(due[i], batch, from: from[i]) }
            for (t, result) in zip(due, reached) {
                if case .success(let seq) = result { checkpoints[t.name] = seq }
            }
            for case .failure(let error) in reached { throw error }
            if let progress, Date().timeIntervalSince(lastReport) > 0.2 || last == end {
                lastReport = Date()
                progress(FoldProgress(done: last - start, total: total, elapsed: Date().timeIntervalSince(began)))
            }
        }

        // More than one batch: the next batch is read and decoded while this one is written.
        if total > UInt64(options.batchEvents) {
            try reader.pipelined((start + 1)...end, body: apply)
        } else {
            try reader.inline((start + 1)...end, body: apply)
        }
        return checkpoints
    }

    /// Folds the part of `batch` that `t` has not folded (it stood at `checkpoint`) into `t` in one write
    /// transaction, with its new checkpoint. Returns the checkpoint it reached.
    private func write(_ t: FoldTarget, _ batch: DecodedBatch, from checkpoint: UInt64) throws -> UInt64 {
        let headers = batch.headers, facts = batch.facts
        guard let first = headers.first?.seq, let last = headers.last?.seq else { return checkpoint }
        let upTo = min(last, t.limit)
        let wanted = type(of: t.projection).interest
        // Room for the batch, estimated high (~2 KiB of pages per event), so its write seldom runs
        // into the map's end (LMDB 0.9.24 can damage its free-page lists aborting such a write).
        if options.growMapAhead {
            try t.store.env.ensureRoom((1 << 20) + headers.count * 2048)
        }
        var attempts = 0
        t.store.bulk?.mark()
        t.store.deferred?.mark()
        let reached: UInt64
        do {
            reached = try t.store.env.write { txn -> UInt64 in
                // A write retried after the map grew (here or in another process): what the failed
                // attempt applied to the projection's caches is dropped, to be read again from the view.
                attempts += 1
                if attempts > 1 {
                    t.projection.reset()
                    t.store.bulk?.rollback()
                    t.store.deferred?.rollback()
                }
                t.store.unsealIfNeeded()
                var meta = try t.store.readMeta(txn) ?? ViewStore.Meta(
                    format: ViewStore.formatVersion, view: t.name.rawValue, ledger: ledger.id, checkpoint: 0, state: "ready")
                if meta.checkpoint != checkpoint { t.projection.reset() }  // someone else folded
                let from = meta.checkpoint
                guard from < upTo else { return from }
                let vt = ViewTxn(txn: txn, store: t.store)
                do {
                    var i = Int(from + 1 > first ? from + 1 - first : 0)
                    while i < headers.count, headers[i].seq <= upTo {
                        if Self.wants(facts[i], wanted) { try t.projection.apply(facts[i], headers[i], vt) }
                        i += 1
                    }
                    try t.projection.flush(vt)
                } catch {
                    t.projection.reset()
                    throw error
                }
                if let fail = options.failWriteAfterApply, fail(t.name) { throw LMDBError.mapFull }
                meta.checkpoint = upTo
                try t.store.writeMeta(txn, meta)
                return upTo
            }
            try t.store.bulk?.commit()
            t.store.deferred?.commit()
        } catch {
            // A write that fails after the projection applied part of the batch (at commit, say)
            // leaves its caches ahead of the view: dropped, to be read again from the view.
            t.projection.reset()
            t.store.bulk?.rollback()
            t.store.deferred?.rollback()
            throw error
        }
        // What this write added is in the view's memory for good: past its budget, it moves to the spill.
        try t.store.deferred?.spillIfFull(t.store)
        return reached
    }

    /// `body` of each index, on the calling thread and others at once when there are several (GCD's
    /// `concurrentPerform`, a thread per core), with the results in order; every call has ended when this
    /// returns.
    static func concurrently<R>(_ indices: Range<Int>, _ body: (Int) throws -> R) -> [Result<R, any Error>] {
        guard indices.count > 1 else { return indices.map { i in Result { try body(i) } } }
        var results = [Result<R, any Error>?](repeating: nil, count: indices.count)
        withoutActuallyEscaping(body) { body in
            results.withUnsafeMutableBufferPointer { slots in
                // Unchecked: each call writes its own slot only, and the callers' bodies touch their own
                // index's view (its environment and projection) and read what the batch shares.
                let shared = Unchecked((body: body, slots: slots))
                DispatchQueue.concurrentPerform(iterations: indices.count) { k in
                    shared.value.slots[k] = Result { try shared.value.body(indices.lowerBound + k) }
                }
            }
        }
        return results.map { $0! }
    }

    static func wants(_ fact: Fact, _ interest: Fact.Interest) -> Bool {
        // Patterns without bindings: nothing of the fact is copied.
        switch fact {
        case .run(_, .consumed): return interest.contains(.run) || interest.contains(.consumption)
        case .run: return interest.contains(.run)
        case .chunk, .lease, .described: return interest.contains(.chunks)
        case .dagRegistered: return interest.contains(.dags)
        case .malformed, .other: return false
        }
    }

    // MARK: rebuild

    /// How long a rebuild's two parts took.
    public struct RebuildTimes: Sendable {
        /// Reading, decoding and folding the log into the new generations.
        public var foldSeconds: Double
        /// Copying each folded view in key order into the generation swapped in, syncing and sealing it.
        public var packSeconds: Double
    }

    /// Rebuilds `names` (all views by default) from the log into new generations and swaps them in
    /// atomically. Readers of the old generation keep a consistent view until they reopen.
    @discardableResult
    public func rebuild(_ names: [ViewName] = ViewName.allCases, progress: (@Sendable (FoldProgress) -> Void)? = nil) throws -> RebuildTimes {
        let times = try generations.withRebuildLock {
            generations.removeOrphans()
            var targets: [FoldTarget] = []
            for name in names {
                let dir = generations.next(name)
                let store = try ViewStore(name: name.rawValue, directory: dir, tables: name.tables, building: true, mapSize: options.mapSize)
                store.bulk = makeBulk(name, dir)
                store.deferred = try makeDeferred(name, store)
                try store.env.write { txn in
                    try store.writeMeta(txn, ViewStore.Meta(
                        format: ViewStore.formatVersion, view: name.rawValue, ledger: ledger.id, checkpoint: 0, state: "building"))
                }
                targets.append(FoldTarget(name: name, store: store, projection: name.makeProjection(options)))
            }
            defer { for t in targets { t.store.close() } }
            let began = Date()
            // Fold until no event arrived meanwhile, so the swapped-in view is current.
            var end = try ledger.lastSeq
            while true {
                _ = try fold(targets, through: end, progress: progress ?? options.progress)
                let now = try ledger.lastSeq
                if now == end { break }
                end = now
            }
            let folded = Date()
            // Each view's copy is environments of its own: copied concurrently, the biggest first.
            let ordered = targets.sorted { $0.name.weight > $1.name.weight }
            let copies = Self.concurrently(ordered.indices) { i in try self.pack(ordered[i]) }
            var packed: [(ViewName, ViewStore)] = []
            defer { for (_, store) in packed { store.close() } }
            for (t, copy) in zip(ordered, copies) {
                if case .success(let store) = copy { packed.append((t.name, store)) }
            }
            for case .failure(let error) in copies { throw error }
            for (name, store) in packed {
                try generations.swap(name, to: store.directory)
            }
            return RebuildTimes(foldSeconds: folded.timeIntervalSince(began), packSeconds: Date().timeIntervalSince(folded))
        }
        // Sealed by this process a moment ago: not hashed again to check it.
        for name in names { try attach(name, justSealed: true) }
        _ = try generations.ifRebuildLockFree { generations.removeOrphans() }
        return times
    }

    /// Marks the folded view `t` ready and copies it into the next generation of its view, synced and
    /// sealed; returns that copy (open). The fold left its pages about half full (keys arrive in log order,
    /// not key order): the copy is made in key order (`copyPacked`). The folded copy is deleted at once,
    /// unsealed: nothing will read it, and the other views' copies need its disk.
    private func pack(_ t: FoldTarget) throws -> ViewStore {
        try t.store.env.write { txn in
            guard var meta = try t.store.readMeta(txn) else { return }
            meta.state = "ready"
            try t.store.writeMeta(txn, meta)
        }
        let store = try ViewStore(
            name: t.name.rawValue, directory: generations.next(t.name), tables: t.name.tables, building: true, mapSize: options.mapSize)
        do {
            try t.store.copyPacked(into: store)
            t.store.discard()
            try store.env.sync()
            try store.seal()
        } catch {
            store.close()
            throw error
        }
        return store
    }

    // MARK: scratch folds (verify, --as-of)

    /// Folds the log through `seq` into fresh, temporary copies of `names` and calls `body` with them.
    func withScratch<T>(
        _ names: [ViewName], through seqs: [ViewName: UInt64], progress: (@Sendable (FoldProgress) -> Void)? = nil,
        _ body: ([ViewName: ViewStore]) throws -> T
    ) throws -> T {
        let dir = generations.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var stores: [ViewName: ViewStore] = [:]
        defer { for s in stores.values { s.close() } }
        var targets: [FoldTarget] = []
        for name in names {
            let store = try ViewStore(
                name: name.rawValue, directory: dir.appendingPathComponent(name.rawValue), tables: name.tables, building: true, mapSize: options.mapSize)
            store.bulk = makeBulk(name, store.directory)
            store.deferred = try makeDeferred(name, store)
            stores[name] = store
            targets.append(FoldTarget(name: name, store: store, projection: name.makeProjection(options), limit: seqs[name] ?? 0))
        }
        let end = seqs.values.max() ?? 0
        _ = try fold(targets, through: end, progress: progress)
        for store in stores.values {
            try store.flushDeferred()
            try store.finishBulk()
        }
        return try body(stores)
    }

    /// The bulk load of a fold into the empty view `name` in `directory`, when the view has bulk tables.
    private func makeBulk(_ name: ViewName, _ directory: URL) -> BulkLoad? {
        let tables = name.projectionType.bulkTables
        return tables.isEmpty ? nil : BulkLoad(directory: directory, tables: tables, budget: options.bulkBudget)
    }

    /// The deferred insertions of a fold into `store`, the empty view `name`, when the view has such tables.
    private func makeDeferred(_ name: ViewName, _ store: ViewStore) throws -> DeferredInserts? {
        let tables = name.projectionType.deferredTables
        guard !tables.isEmpty else { return nil }
        let deferred = try DeferredInserts(store: store, tables: tables, budget: options.deferredBudget)
        if let hook = options.deferredFlushed { deferred.flushed = { _, count in hook(name, count) } }
        return deferred
    }

    // MARK: access

    /// Runs `body` in a read transaction of the live view. A checksum failure rebuilds the view (with a
    /// notice) and runs `body` once more.
    func read<T>(_ name: ViewName, _ body: (ViewStore, Transaction) throws -> T, repair: Bool = true) throws -> T {
        do {
            return try readLive(name, body)
        } catch let e as ViewError where repair && (e.kind == .corrupt || e.kind == .inconsistent) {
            options.notice("views: \(e.message); rebuilding \(name.rawValue) from the log")
            try rebuild([name])
            return try readLive(name, body)
        }
    }

    private func readLive<T>(_ name: ViewName, _ body: (ViewStore, Transaction) throws -> T) throws -> T {
        guard let store = lock.withLock({ _ in live[name]?.store }) else {
            throw ViewError(.missing, view: name.rawValue, "view \(name.rawValue) is not open")
        }
        do {
            return try store.env.read { try body(store, $0) }
        } catch let e as LMDBError where Self.meansCorruption(e) {
            throw ViewError(.corrupt, view: name.rawValue, "view \(name.rawValue) does not read (\(e))")
        }
    }

    /// LMDB results that mean damaged pages (`MDB_PAGE_NOTFOUND`, `MDB_CORRUPTED`, `MDB_PANIC`,
    /// `MDB_INVALID`, `MDB_VERSION_MISMATCH`), as opposed to a bad call.
    static func meansCorruption(_ e: LMDBError) -> Bool {
        [LMDBError.corrupted, .panic, .invalid, .versionMismatch, LMDBError(code: -30797)].contains(e)
    }

    /// The checkpoint (last folded seq) of each view.
    public func checkpoints() -> [ViewName: UInt64] {
        lock.withLock { _ in live.mapValues(\.checkpoint) }
    }
}

/// A value handed to concurrent code whose safety the compiler cannot check; each use says why it holds.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
