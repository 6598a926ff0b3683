internal import CLMDB
#if canImport(Glibc)
public import ClewCore
import Glibc
#endif

/// A result code from LMDB (or the `errno` it passes through), as a value.
///
/// Codes are structs with static constants rather than an open enum, so callers can match the ones they
/// care about and still carry any other code: `catch LMDBError.mapFull { ... }`.
public struct LMDBError: ClewError, Hashable {
    /// The raw return code of the LMDB call.
    public let code: Int32

    public init(code: Int32) { self.code = code }

    public static let keyExists = LMDBError(code: MDB_KEYEXIST)
    public static let notFound = LMDBError(code: MDB_NOTFOUND)
    public static let corrupted = LMDBError(code: MDB_CORRUPTED)
    public static let panic = LMDBError(code: MDB_PANIC)
    public static let versionMismatch = LMDBError(code: MDB_VERSION_MISMATCH)
    public static let invalid = LMDBError(code: MDB_INVALID)
    public static let mapFull = LMDBError(code: MDB_MAP_FULL)
    public static let dbsFull = LMDBError(code: MDB_DBS_FULL)
    public static let readersFull = LMDBError(code: MDB_READERS_FULL)
    public static let txnFull = LMDBError(code: MDB_TXN_FULL)
    public static let mapResized = LMDBError(code: MDB_MAP_RESIZED)
    public static let badTransaction = LMDBError(code: MDB_BAD_TXN)
    public static let badValueSize = LMDBError(code: MDB_BAD_VALSIZE)
    public static let permissionDenied = LMDBError(code: EACCES)
    public static let readOnlyFileSystem = LMDBError(code: EROFS)
    public static let noSuchFile = LMDBError(code: ENOENT)
    public static let noSpace = LMDBError(code: ENOSPC)

    /// LMDB's own text for the code (`mdb_strerror`), which also covers `errno` values.
    public var description: String {
        "\(String(cString: mdb_strerror(code))) (LMDB code \(code))"
    }

    /// Lets callers write `catch LMDBError.mapFull`.
    public static func ~= (pattern: LMDBError, error: any Error) -> Bool {
        (error as? LMDBError)?.code == pattern.code
    }

    /// A full map or a full disk (or quota) is insufficient storage; every other LMDB failure is a
    /// storage error.
    public var category: ErrorCategory { [Self.mapFull.code, ENOSPC, EDQUOT].contains(code) ? .insufficientStorage : .storage }
}

/// The single place every LMDB return code goes through.
@inline(__always)
func check(_ rc: Int32) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc) }
}
