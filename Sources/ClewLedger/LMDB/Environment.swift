internal import CLMDB
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An LMDB environment: one memory-mapped file holding named databases.
///
/// Transactions are only reachable through the scoped ``read(_:)`` and ``write(_:)`` closures, so a
/// transaction never escapes and never outlives its environment. The map grows on `MDB_MAP_FULL`
/// (doubling up to ``maxMapSize``) and follows growth made by other processes (`MDB_MAP_RESIZED`).
package final class Environment: @unchecked Sendable {
    // @unchecked Sendable: `handle` is written only in `init` and `close()`; LMDB environments are
    // thread-safe with MDB_NOTLS, and map resizing, which LMDB requires to happen with no transaction
    // open in this process, is serialised against every transaction by `gate` (a reader/writer lock).

    package struct Options: Sendable {
        package var mapSize: Int = 64 << 20
        package var maxMapSize: Int = 1 << 40
        package var maxDatabases: UInt32 = 16
        package var maxReaders: UInt32 = 126
        package var readOnly = false
        /// `MDB_NOMETASYNC`: commits flush data but not the meta page; a crash may undo the last commit,
        /// never integrity (for caches such as views, whose checkpoint travels with the data).
        package var noMetaSync = false
        /// `MDB_NOSYNC`: no flush at commit; call ``Environment/sync()`` before relying on the data.
        package var noSync = false

        package init() {}
    }

    private(set) var handle: OpaquePointer?
    package let path: String
    package let options: Options
    /// True when the environment was opened without LMDB's lock file (a read-only medium).
    let lockless: Bool
    private let gate = ReadWriteLock()
    /// Where the data file is mapped in this process, found in /proc/self/maps by the file's inode;
    /// refreshed when the map is resized (LMDB may move it).
    private var mapBase: UnsafeRawPointer?

    /// Opens (creating if needed and writable) the environment in directory `path`.
    package init(path: String, options: Options) throws {
        self.path = path
        self.options = options
        if !options.readOnly { try Self.requireSpace(path: path, options: options) }
        var opened: (OpaquePointer, Bool)?
        do {
            opened = (try Environment.open(path: path, options: options, noLock: false), false)
        } catch let error as LMDBError
            where options.readOnly && (error == .permissionDenied || error == .readOnlyFileSystem)
        {
            // A ledger on a read-only medium: read it without the lock file. Safe as long as nobody
            // writes to it, which the medium itself guarantees.
            opened = (try Environment.open(path: path, options: options, noLock: true), true)
        }
        self.handle = opened!.0
        self.lockless = opened!.1
        do {
            try checkFileLength()
            if !lockless { _ = clearStaleReaders() }
            mapBase = Self.findMapping(path + "/data.mdb")
        } catch {
            mdb_env_close(handle)
            handle = nil
            throw error
        }
    }

    /// The least free space a writable environment is opened with: LMDB maps its lock file and a new
    /// data file's first pages and writes them through the map, and a write through a map to a full
    /// filesystem is a SIGBUS, not an error (seen: `clew rebuild` on a full tmpfs died in mdb_env_open).
    /// Refusing below this turns that into ``LedgerError/Code/diskFull``.
    static let minimumFreeBytes: UInt64 = 1 << 20

    /// Bytes an unprivileged writer may still use on the filesystem holding `path`; nil if it cannot be read.
    private static func freeBytes(_ path: String) -> UInt64? {
        var fs = statvfs()
        return statvfs(path, &fs) == 0 ? UInt64(fs.f_bavail) * UInt64(fs.f_frsize) : nil
    }

    private static func requireSpace(path: String, options: Options) throws {
        guard let free = freeBytes(path) else { return }  // not there yet: mdb_env_open says why
        guard free < minimumFreeBytes else { return }
        throw LedgerError(
            .diskFull,
            "the filesystem holding \(path) is full (\(free) bytes left, \(minimumFreeBytes) needed to open it for writing): nothing was written; free space and retry")
    }

    private static func open(path: String, options: Options, noLock: Bool) throws -> OpaquePointer {
        var env: OpaquePointer?
        try check(mdb_env_create(&env))
        guard let env else { throw LMDBError.invalid }
        do {
            try check(mdb_env_set_maxdbs(env, options.maxDatabases))
            try check(mdb_env_set_maxreaders(env, options.maxReaders))
            try check(mdb_env_set_mapsize(env, options.mapSize))
            var flags = UInt32(MDB_NOTLS)
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            if noLock { flags |= UInt32(MDB_NOLOCK) }
            if options.noMetaSync { flags |= UInt32(MDB_NOMETASYNC) }
            if options.noSync { flags |= UInt32(MDB_NOSYNC) }
            try check(mdb_env_open(env, path, flags, 0o644))
            return env
        } catch {
            mdb_env_close(env)
            throw error
        }
    }

    /// A data file shorter than the pages its meta page claims would fault (SIGBUS) on first access,
    /// so a truncated file is refused before any page is touched.
    private func checkFileLength() throws {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        try check(mdb_env_info(handle, &info))
        try check(mdb_env_stat(handle, &stat))
        let needed = (Int(info.me_last_pgno) + 1) * Int(stat.ms_psize)
        let file = path + "/data.mdb"
        let actual = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        if actual < needed {
            throw LedgerError(
                .corrupted,
                "the data file \(file) is truncated: its meta page needs \(needed) bytes but the file has \(actual)"
            )
        }
    }

    /// Closes the environment. Safe to call twice; `deinit` calls it as a backstop.
    package func close() {
        gate.withWriteLock {
            if let handle { mdb_env_close(handle) }
            handle = nil
        }
    }

    deinit { close() }

    /// Removes reader slots left behind by dead processes (a crashed reader pins pages otherwise).
    /// - Returns: how many were removed; 0 when the environment is closed or LMDB could not check (a
    ///   best-effort repair: the caller's own error stands then).
    @discardableResult
    func clearStaleReaders() -> Int32 {
        gate.withReadLock {
            guard let handle else { return 0 }
            var dead: Int32 = 0
            return mdb_reader_check(handle, &dead) == MDB_SUCCESS ? dead : 0
        }
    }

    /// Copies the environment into the empty directory `path` as one consistent snapshot, compacted
    /// (free pages left out, pages renumbered), while other transactions go on (`mdb_env_copy2` with
    /// `MDB_CP_COMPACT` reads in one read transaction).
    package func copy(to path: String) throws {
        try gate.withReadLock {
            guard let handle else { throw LedgerError(.closed, "the ledger is closed") }
            try check(mdb_env_copy2(handle, path, UInt32(MDB_CP_COMPACT)))
        }
    }

    /// Flushes every committed transaction to disk (after commits made with `noSync`).
    package func sync() throws {
        try gate.withReadLock { try check(mdb_env_sync(handle, 1)) }
    }

    /// The page size LMDB uses.
    /// - Throws: ``LedgerError`` (`.closed`) after ``close()``; ``LMDBError``.
    package func pageSize() throws -> Int {
        try gate.withReadLock {
            guard let handle else { throw LedgerError(.closed, "the ledger is closed") }
            var stat = MDB_stat()
            try check(mdb_env_stat(handle, &stat))
            return Int(stat.ms_psize)
        }
    }

    /// Current map size and the number of pages in use.
    /// - Throws: ``LedgerError`` (`.closed`) after ``close()``; ``LMDBError``.
    package func mapInfo() throws -> (mapSize: Int, pagesUsed: Int) {
        try gate.withReadLock {
            guard let handle else { throw LedgerError(.closed, "the ledger is closed") }
            var info = MDB_envinfo()
            try check(mdb_env_info(handle, &info))
            return (info.me_mapsize, Int(info.me_last_pgno) + 1)
        }
    }

    /// Opens (or, in a writable environment, creates) a named database.
    package func openDatabase(_ name: String, flags: Int32 = 0) throws -> Database {
        if options.readOnly {
            // A handle opened in a read-only transaction lives on only if that transaction commits.
            return try gate.withReadLock {
                var txn: OpaquePointer?
                try check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn))
                let db: Database
                do { db = try Transaction(txn!, writable: false).openDatabase(name, flags: flags) } catch {
                    mdb_txn_abort(txn)
                    throw error
                }
                try check(mdb_txn_commit(txn))  // frees the transaction, whether it succeeds or not
                return db
            }
        }
        return try write { txn in try txn.openDatabase(name, flags: flags | MDB_CREATE) }
    }

    /// Runs `body` in a read-only transaction that ends when it returns.
    package func read<T>(_ body: (Transaction) throws -> T) throws -> T {
        while true {
            do {
                return try gate.withReadLock {
                    guard let handle else { throw LedgerError(.closed, "the ledger is closed") }
                    var txn: OpaquePointer?
                    try check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn))
                    defer { mdb_txn_abort(txn) }
                    return try body(Transaction(txn!, writable: false, mapBase: mapBase))
                }
            } catch LMDBError.mapResized {
                try adoptMapSize()
            } catch LMDBError.readersFull where clearStaleReaders() > 0 {
                continue
            }
        }
    }

    /// A failed commit's error. A full filesystem shows as ENOSPC, or as EIO when LMDB's page write
    /// came back short (tmpfs, some network filesystems): either, with the filesystem (nearly) full, is
    /// ``LedgerError/Code/diskFull`` naming the directory and the bytes left. Nothing of the transaction
    /// was recorded; the ledger is as it was before it.
    private func commitFailure(_ rc: Int32) -> any Error {
        guard [ENOSPC, EDQUOT, EIO].contains(rc) else { return LMDBError(code: rc) }
        let free = Self.freeBytes(path)
        if rc == EIO, let free, free >= 16 << 20 { return LMDBError(code: rc) }
        let left = free.map { "\($0) bytes left" } ?? "no space left"
        return LedgerError(
            .diskFull,
            "the filesystem holding \(path) is full (\(left)): this write was not recorded, and what was recorded is intact; free space and retry",
            underlying: LMDBError(code: rc))
    }

    /// Runs `body` in a write transaction and commits durably when it returns; aborts if it throws.
    ///
    /// `body` may run more than once: when the map is full the transaction is aborted, the map grown
    /// and `body` run again, so it must not have effects outside the transaction.
    package func write<T>(_ body: (Transaction) throws -> T) throws -> T {
        while true {
            do {
                return try gate.withReadLock {
                    guard let handle else { throw LedgerError(.closed, "the ledger is closed") }
                    var txn: OpaquePointer?
                    try check(mdb_txn_begin(handle, nil, 0, &txn))
                    let result: T
                    do { result = try body(Transaction(txn!, writable: true)) } catch {
                        mdb_txn_abort(txn)
                        throw error
                    }
                    // mdb_txn_commit frees the transaction whether it succeeds or not: aborting it after a
                    // failed commit (a disk full, found by the disk-full test) was a double free.
                    let rc = mdb_txn_commit(txn)
                    if rc != 0 { throw commitFailure(rc) }
                    return result
                }
            } catch LMDBError.mapFull {
                try growMap()
            } catch LMDBError.mapResized {
                try adoptMapSize()
            }
        }
    }

    /// Grows the map before a write that may need `bytes` more than the pages in use, so the write does
    /// not run into the map's end. LMDB 0.9.24 (Debian 12) can corrupt its free-page lists when a write
    /// transaction is aborted with `MDB_MAP_FULL` after many page splits (the "a full map grows on
    /// demand" test crashed in `mdb_midl_search`); growing first keeps that path for what an estimate
    /// misses. Does nothing when the room is there or the map is at its limit (the write then reports
    /// `mapFull` as before).
    package func ensureRoom(_ bytes: Int) throws {
        let needsGrowth = try gate.withReadLock { () -> Bool in
            guard let handle else { throw LedgerError(.closed, "the ledger is closed") }
            var info = MDB_envinfo()
            var stat = MDB_stat()
            try check(mdb_env_info(handle, &info))
            try check(mdb_env_stat(handle, &stat))
            return (Int(info.me_last_pgno) + 1) * Int(stat.ms_psize) + bytes > info.me_mapsize && info.me_mapsize < options.maxMapSize
        }
        if needsGrowth { try growMap(toHold: bytes) }
    }

    private func growMap(toHold extra: Int = 0) throws {
        try gate.withWriteLock {
            var info = MDB_envinfo()
            var stat = MDB_stat()
            try check(mdb_env_info(handle, &info))
            try check(mdb_env_stat(handle, &stat))
            let current = info.me_mapsize
            let used = (Int(info.me_last_pgno) + 1) * Int(stat.ms_psize)
            if extra > 0, used + extra <= current { return }  // another writer grew it meanwhile
            guard current < options.maxMapSize else {
                throw LedgerError(
                    .mapFull,
                    "the ledger map is full at \(current) bytes, its configured limit; nothing of the failed "
                        + "append was written (raise the limit with --max-map-size)"
                )
            }
            let next = min(max(current * 2, current + (64 << 20), used + extra * 2), options.maxMapSize)
            try check(mdb_env_set_mapsize(handle, next))
            mapBase = Self.findMapping(path + "/data.mdb")
        }
    }

    private func adoptMapSize() throws {
        try gate.withWriteLock {
            try check(mdb_env_set_mapsize(handle, 0))
            mapBase = Self.findMapping(path + "/data.mdb")
        }
    }

    /// The start of this process's mapping of `file` (matched by inode and name), from /proc/self/maps.
    static func findMapping(_ file: String) -> UnsafeRawPointer? {
        guard let inode = (try? FileManager.default.attributesOfItem(atPath: file))?[.systemFileNumber] as? Int,
            let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        else { return nil }
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, Int(fields[4]) == inode, fields[5].hasSuffix("/data.mdb") else { continue }
            guard let start = UInt(fields[0].split(separator: "-")[0], radix: 16) else { continue }
            return UnsafeRawPointer(bitPattern: start)
        }
        return nil
    }
}

/// A reader/writer lock (pthread), writer-preferring, used to keep map resizes away from open
/// transactions.
final class ReadWriteLock: @unchecked Sendable {
    // @unchecked Sendable: the pthread lock is heap-allocated once and is itself the synchronisation.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func withReadLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withWriteLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
