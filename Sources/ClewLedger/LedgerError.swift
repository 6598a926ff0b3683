public import ClewCore
/// An error from the ledger, with what went wrong, the offending input or place, and what to do.
///
/// Matches by code (`catch LedgerError.Code.notALedger { … }`); ``description`` is written for the
/// person at the terminal; ``category`` decides the exit and HTTP status.
public struct LedgerError: ClewError {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The directory exists but holds no ledger (no `LEDGER` file).
        public static let notALedger = Code("not-a-ledger")
        /// A ledger already exists where one was to be created.
        public static let alreadyExists = Code("already-exists")
        /// The ledger (or its medium) refuses writes.
        public static let readOnly = Code("read-only")
        /// The map reached its configured size limit.
        public static let mapFull = Code("map-full")
        /// The filesystem holding the ledger has no space left (or the quota is spent); the write that
        /// met it was not recorded.
        public static let diskFull = Code("disk-full")
        /// Stored bytes do not decode or do not match their hashes.
        public static let corrupted = Code("corrupted")
        /// An event or argument given by the caller is invalid.
        public static let invalidInput = Code("invalid-input")
        /// A sequence number or tree size outside the log.
        public static let outOfRange = Code("out-of-range")
        /// A signature or proof does not check.
        public static let verificationFailed = Code("verification-failed")
        /// The ledger was closed.
        public static let closed = Code("closed")
        /// A condition of the append (a stream's last seq, compare-and-append) no longer held; nothing
        /// was written.
        public static let conflict = Code("conflict")
        /// The shared log's server could not be reached or refused the request.
        public static let unavailable = Code("unavailable")
        /// A ledger written by a newer, incompatible format.
        public static let unsupportedFormat = Code("unsupported-format")
    }

    public let code: Code
    public let message: String
    public let underlying: (any Error & Sendable)?
    /// A ``Code/conflict``'s stream: the one whose last event was not the expected one.
    public let stream: String?

    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil, stream: String? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.stream = stream
    }

    public var description: String {
        if let underlying { return "\(message) (\(underlying))" }
        return message
    }

    /// What the code means to a caller: ``Code/notALedger`` and ``Code/outOfRange`` are not found,
    /// ``Code/verificationFailed`` exits 2, a full map is insufficient storage.
    public var category: ErrorCategory {
        switch code {
        case .notALedger, .outOfRange: return .notFound
        case .alreadyExists, .readOnly, .conflict: return .conflict
        case .mapFull, .diskFull: return .insufficientStorage
        case .corrupted: return .corrupted
        case .invalidInput: return .invalidInput
        case .verificationFailed: return .verificationFailed
        case .closed, .unavailable: return .unavailable
        default: return .internal
        }
    }
}

extension LedgerError.Code {
    /// Matches a ledger error by code: `catch LedgerError.Code.mapFull { … }`.
    public static func ~= (code: LedgerError.Code, error: any Error) -> Bool {
        (error as? LedgerError)?.code == code
    }
}
