/// What kind of failure an error is. The one place that decides what a failure means to whoever reports
/// it: the `clew` command's exit status and the server's HTTP status.
///
/// | category | exit | HTTP |
/// |---|---|---|
/// | ``invalidInput`` | 1 | 400 |
/// | ``ambiguous`` | 1 | 400 |
/// | ``unauthorized`` | 1 | 401 |
/// | ``forbidden`` | 1 | 403 |
/// | ``notFound`` | 1 | 404 |
/// | ``conflict`` | 1 | 409 |
/// | ``tooLarge`` | 1 | 413 |
/// | ``verificationFailed`` | 2 | 422 |
/// | ``corrupted`` | 1 | 500 |
/// | ``storage`` | 1 | 500 |
/// | ``internal`` | 1 | 500 |
/// | ``unavailable`` | 1 | 503 |
/// | ``insufficientStorage`` | 1 | 507 |
///
/// An error that is not a ``ClewError`` is ``internal``: the server answers 500, never a guess.
public struct ErrorCategory: Hashable, Sendable, CustomStringConvertible {
    /// A short name (`not-found`), as in logs and JSON error bodies.
    public let name: String
    /// The `clew` command's exit status.
    public let exitStatus: Int32
    /// The HTTP status of a response that reports it.
    public let httpStatus: Int

    public init(_ name: String, exitStatus: Int32 = 1, httpStatus: Int) {
        self.name = name
        self.exitStatus = exitStatus
        self.httpStatus = httpStatus
    }

    public var description: String { name }

    /// What the caller gave is wrong (a malformed event, an unknown option value, a bad file).
    public static let invalidInput = ErrorCategory("invalid-input", httpStatus: 400)
    /// A name matches more than one thing; the caller must say which.
    public static let ambiguous = ErrorCategory("ambiguous", httpStatus: 400)
    /// No credentials, or credentials that are not valid.
    public static let unauthorized = ErrorCategory("unauthorized", httpStatus: 401)
    /// Valid credentials without the right to do this.
    public static let forbidden = ErrorCategory("forbidden", httpStatus: 403)
    /// What was named does not exist (a run, a chunk, a ledger, a seq outside the log).
    public static let notFound = ErrorCategory("not-found", httpStatus: 404)
    /// The request is valid but the state forbids it now (the run exists, the ledger is read-only).
    public static let conflict = ErrorCategory("conflict", httpStatus: 409)
    /// The input exceeds a configured limit.
    public static let tooLarge = ErrorCategory("too-large", httpStatus: 413)
    /// A signature, proof or hash chain does not check.
    public static let verificationFailed = ErrorCategory("verification-failed", exitStatus: 2, httpStatus: 422)
    /// Stored bytes do not decode or contradict their hashes.
    public static let corrupted = ErrorCategory("corrupted", httpStatus: 500)
    /// The storage engine failed (an LMDB or file-system error).
    public static let storage = ErrorCategory("storage", httpStatus: 500)
    /// A bug, or an error nobody classified.
    public static let `internal` = ErrorCategory("internal", httpStatus: 500)
    /// Not now: closed, shutting down, or a view still being built.
    public static let unavailable = ErrorCategory("unavailable", httpStatus: 503)
    /// The ledger's map reached its size limit.
    public static let insufficientStorage = ErrorCategory("insufficient-storage", httpStatus: 507)
}

/// An error of Clew's: a message written for the person who reads it, and the ``ErrorCategory`` that
/// decides its exit status and HTTP status. Every error type of every Clew module conforms; the CLI
/// and the server map errors through this protocol alone.
public protocol ClewError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    var category: ErrorCategory { get }
}

extension ErrorCategory {
    /// The category of any error: a ``ClewError``'s own, ``internal`` for every other.
    public static func of(_ error: any Error) -> ErrorCategory {
        (error as? any ClewError)?.category ?? .internal
    }

    // No `~=` on categories: it would take `any Error`, and a `switch` over an error type with members
    // of the same names (`LMDBError.corrupted`, `.notFound`) would turn ambiguous. Match an error type's
    // own codes (`catch LedgerError.Code.mapFull`), or `catch let e as any ClewError where
    // e.category == .notFound`.
}
