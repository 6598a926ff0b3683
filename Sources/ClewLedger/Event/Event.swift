public import Foundation

/// One immutable fact in the log, as read back: its sequence number, when it happened, who recorded it,
/// which stream (usually a run) it belongs to, its type, the version of its payload's schema, and the
/// payload itself (UTF-8 JSON).
///
/// ```swift
/// for event in try ledger.events(in: "run/daily_sales/42") { print(event.seq, event.type) }
/// ```
public struct Event: Sendable, Hashable {
    /// Position in the log, from 1, with no gaps.
    public let seq: UInt64
    /// Microseconds since the Unix epoch, UTC.
    public var timestampMicros: Int64
    /// Who recorded the event (a component, a user, a worker).
    public var actor: String
    /// The stream the event belongs to, e.g. `run/daily_sales/2026-11-21T00`.
    public var stream: String
    /// The event type, e.g. `task.succeeded`. Types unknown to this version of Clew are kept as they are.
    public var type: String
    /// Version of the payload's schema for this type.
    public var schemaVersion: UInt32
    /// The payload as UTF-8 JSON bytes (empty when it was erased).
    public var payload: Data
    /// Whether the payload was erased (retention or an erasure request): the event, its envelope and the
    /// payload's SHA-256 remain and every proof still holds, but the bytes are gone.
    public var payloadErased: Bool
    /// Envelope fields written by a newer Clew that this version does not know, as raw protobuf bytes.
    /// They are kept so that reading and re-writing an event loses nothing.
    public var unknownFields: [UInt8]

    public init(
        seq: UInt64,
        timestampMicros: Int64,
        actor: String,
        stream: String,
        type: String,
        schemaVersion: UInt32 = 1,
        payload: Data,
        unknownFields: [UInt8] = [],
        payloadErased: Bool = false
    ) {
        self.seq = seq
        self.timestampMicros = timestampMicros
        self.actor = actor
        self.stream = stream
        self.type = type
        self.schemaVersion = schemaVersion
        self.payload = payload
        self.unknownFields = unknownFields
        self.payloadErased = payloadErased
    }

    /// The event's time.
    public var time: Date { Date(timeIntervalSince1970: Double(timestampMicros) / 1_000_000) }

    /// The same event as a draft, to append it to another ledger (unknown fields included).
    public var draft: NewEvent {
        NewEvent(
            type: type, stream: stream, actor: actor, time: time, timestampMicros: timestampMicros,
            schemaVersion: schemaVersion, payload: payload, unknownFields: unknownFields
        )
    }
}

/// An event to append: everything but the sequence number, which the ledger assigns.
///
/// ```swift
/// try await ledger.append(NewEvent(type: "run.started", stream: "run/etl/7", actor: "scheduler",
///                                  payload: Data(#"{"dag":"etl"}"#.utf8)))
/// ```
public struct NewEvent: Sendable, Hashable {
    public var type: String
    public var stream: String
    public var actor: String
    /// Microseconds since the Unix epoch; nil means "when appended".
    public var timestampMicros: Int64?
    public var schemaVersion: UInt32
    /// UTF-8 JSON. The ledger stores it as given; callers taking outside input validate it first.
    public var payload: Data
    public var unknownFields: [UInt8]
    /// Set when the event is copied from a shared log that erased its payload: the SHA-256 the envelope
    /// names (the payload itself, empty, is stored as erased).
    var erasedPayloadRef: [UInt8]? = nil
    /// A `time` given to the initializer that microseconds cannot hold (outside years 1-9999), kept for
    /// ``validate()`` to refuse by name instead of trapping in the conversion.
    var unrepresentableTime: Date? = nil


    public init(
        type: String,
        stream: String,
        actor: String = "clew",
        time: Date? = nil,
        schemaVersion: UInt32 = 1,
        payload: Data = Data("{}".utf8)
    ) {
        self.init(
            type: type, stream: stream, actor: actor, time: time, timestampMicros: nil,
            schemaVersion: schemaVersion, payload: payload, unknownFields: []
        )
    }

    /// An event stamped with a time in microseconds since the epoch (what producers that batch use).
    public init(type: String, stream: String, actor: String, timestampMicros: Int64, payload: Data) {
        self.init(
            type: type, stream: stream, actor: actor, time: nil, timestampMicros: timestampMicros,
            schemaVersion: 1, payload: payload, unknownFields: []
        )
    }

    init(
        type: String, stream: String, actor: String, time: Date?, timestampMicros: Int64?,
        schemaVersion: UInt32, payload: Data, unknownFields: [UInt8]
    ) {
        self.type = type
        self.stream = stream
        self.actor = actor
        if let timestampMicros {
            self.timestampMicros = timestampMicros
        } else if let time {
            self.timestampMicros = Self.micros(time)
            if self.timestampMicros == nil { unrepresentableTime = time }
        } else {
            self.timestampMicros = nil
        }
        self.schemaVersion = schemaVersion
        self.payload = payload
        self.unknownFields = unknownFields
    }

    /// Limits on envelope fields. Streams are index keys, so they must fit an LMDB key.
    public static let maxStreamBytes = 255
    public static let maxTypeBytes = 128
    public static let maxActorBytes = 255

    /// ``validate()`` for event `index` of a batch of `count`, the error naming which one.
    func validate(index: Int, of count: Int) throws {
        do { try validate() } catch let error as LedgerError where count > 1 {
            throw LedgerError(error.code, "event \(index + 1) of \(count): \(error.message)", underlying: error.underlying)
        }
    }

    /// The earliest and latest times an event may carry: years 1 to 9999 (ISO 8601's four-digit years).
    public static let timeRange: ClosedRange<Date> =
        Date(timeIntervalSince1970: -62_135_596_800)...Date(timeIntervalSince1970: 253_402_300_799.999_999)

    /// Microseconds since the epoch of `time`, or nil when it is outside ``timeRange``.
    public static func micros(_ time: Date) -> Int64? {
        guard timeRange.contains(time) else { return nil }
        return Int64((time.timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// Throws ``LedgerError/Code/invalidInput`` naming the field that breaks a rule.
    public func validate() throws {
        if let time = unrepresentableTime {
            throw LedgerError(.invalidInput, "the event's time (\(time.timeIntervalSince1970) s since 1970) is outside the years 1 to 9999")
        }
        try Self.checkName(type, field: "type", max: Self.maxTypeBytes)
        try Self.checkName(stream, field: "stream", max: Self.maxStreamBytes)
        try Self.checkName(actor, field: "actor", max: Self.maxActorBytes)
    }

    /// C0 controls, DEL, and C1 controls (UTF-8 0xC2 0x80...0x9F), found on the bytes.
    static func hasControlCharacter(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if isPrintableASCII(bytes) { return false }
        var previous: UInt8 = 0
        for byte in bytes {
            if byte < 0x20 || byte == 0x7f || (previous == 0xc2 && byte >= 0x80 && byte <= 0x9f) { return true }
            previous = byte
        }
        return false
    }

    /// Whether every byte is printable ASCII (0x20...0x7E), as nearly every name is: eight bytes at a time
    /// (a byte loop was half of validating an event).
    static func isPrintableASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var found: UInt64 = 0
        var i = 0
        while i + 8 <= bytes.count {
            let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            found |= w & highs  // a byte of 0x80 or more
            found |= (w &- ones &* 0x20) & ~w & highs  // a byte below 0x20
            let del = w ^ (ones &* 0x7f)
            found |= (del &- ones) & ~del & highs  // a byte of 0x7F
            i += 8
        }
        while i < bytes.count {
            if bytes[i] &- 0x20 >= 0x5f { return false }
            i += 1
        }
        return found == 0
    }

    private static func checkName(_ value: String, field: String, max: Int) throws {
        var utf8 = value
        let (count, control) = utf8.withUTF8 { ($0.count, $0.count <= max && hasControlCharacter($0)) }
        if count == 0 { throw LedgerError(.invalidInput, "the event's \(field) is empty") }
        if count > max { throw LedgerError(.invalidInput, "the event's \(field) is \(count) bytes long; the limit is \(max)") }
        if control {
            throw LedgerError(.invalidInput, "the event's \(field) \(String(reflecting: value)) contains a control character")
        }
    }
}
