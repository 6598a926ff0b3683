/// An error from the ledger, with what went wrong, the offending input or place, and what to do.
///
/// Matches by code: `catch LedgerError.Code.notALedger`... via ``code``; ``description`` is written
/// for the person at the terminal.
public struct LedgerError: Error, Sendable, CustomStringConvertible {
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
        /// A ledger written by a newer, incompatible format.
        public static let unsupportedFormat = Code("unsupported-format")
    }

    public let code: Code
    public let message: String
    public let underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(message) (\(underlying))" }
        return message
    }
}
