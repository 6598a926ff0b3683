public import Foundation
import ClewCore

/// A domain event ready to be appended: the envelope fields the ledger needs and a JSON payload.
public struct DomainEvent: Sendable, Hashable {
    public var type: String
    public var stream: String
    public var actor: String
    /// Microseconds since the Unix epoch.
    public var timestampMicros: Int64
    /// UTF-8 JSON object.
    public var payload: Data

    public init(type: String, stream: String, actor: String, timestampMicros: Int64, payload: Data) {
        self.type = type
        self.stream = stream
        self.actor = actor
        self.timestampMicros = timestampMicros
        self.payload = payload
    }

    /// The event as one JSON line in the shape `clew append` reads
    /// (`{"type","stream","actor","time","payload"}`).
    public var jsonLine: String {
        let time = ISO8601.string(micros: timestampMicros)
        let payloadText = String(decoding: payload, as: UTF8.self)
        return #"{"type":\#(JSON.quote(type)),"stream":\#(JSON.quote(stream)),"actor":\#(JSON.quote(actor)),"time":"\#(time)","payload":\#(payloadText)}"#
    }
}

/// A JSON value that writes itself as compact UTF-8 (``JSON/Value`` and ``JSONTree``).
protocol JSONWritable {
    func write(to out: inout [UInt8])
}

/// Small JSON helpers for building payloads deterministically (sorted keys, no whitespace).
public enum JSON {
    /// A JSON string literal for `s`.
    public static func quote(_ s: String) -> String {
        // Most strings need no escape: check the bytes and copy them whole (the scalar loop took a tenth
        // of OpenLineage ingest in a profile). Same output either way.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) { return "\"" + s + "\"" }
        var out: [UInt8] = []
        appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the JSON string literal for `s` to UTF-8 bytes: `"` and `\` escaped, `\n` `\r` `\t` by
    /// name, other control characters as `\u00XX`, everything else copied.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        // Most strings need no escape: copied whole from their contiguous UTF-8.
        let copied = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied == true {
            out.append(0x22)
            return
        }
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            case 0x09: out.append(contentsOf: [0x5C, 0x74])
            case ..<0x20: out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, Hex.digit(b >> 4), Hex.digit(b & 15)])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    /// `[item,item,…]`, each item written by itself.
    static func writeArray<S: Sequence>(_ items: S, to out: inout [UInt8]) where S.Element: JSONWritable {
        out.append(UInt8(ascii: "["))
        var first = true
        for item in items {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            item.write(to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// `{"key":value,…}` in the order given.
    static func writeObject<S: Sequence, V: JSONWritable>(_ members: S, to out: inout [UInt8]) where S.Element == (String, V) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for (key, value) in members {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            value.write(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Canonical JSON of an `Encodable`: sorted keys, no whitespace, slashes unescaped.
    public static func canonical<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// A JSON value built in code.
    public indirect enum Value: Sendable, Hashable, JSONWritable {
        case string(String)
        case int(Int64)
        case double(Double)
        case bool(Bool)
        case null
        case array([Value])
        case object([(String, Value)])
        /// JSON text that is already encoded (a recorded value), inserted as is.
        case raw(String)

        public static func == (a: Value, b: Value) -> Bool { a.text == b.text }
        public func hash(into hasher: inout Hasher) { hasher.combine(text) }

        /// Compact JSON text, object keys in the order given.
        public var text: String { String(decoding: bytes, as: UTF8.self) }

        /// Compact JSON as UTF-8 bytes, object keys in the order given.
        public var bytes: [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(128)
            write(to: &out)
            return out
        }

        /// Appends the compact JSON to `out` (written in place rather than joined from a string per member).
        public func write(to out: inout [UInt8]) {
            switch self {
            case .string(let s): JSON.appendQuoted(s, to: &out)
            case .int(let i): out.append(contentsOf: String(i).utf8)
            case .double(let d): out.append(contentsOf: (d.isFinite ? String(d) : "null").utf8)
            case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
            case .null: out.append(contentsOf: "null".utf8)
            case .array(let a): JSON.writeArray(a, to: &out)
            case .object(let o): JSON.writeObject(o, to: &out)
            case .raw(let text): out.append(contentsOf: text.utf8)
            }
        }

        public var data: Data { Data(bytes) }

        /// An object of string members with sorted keys (params, environments).
        public static func strings(_ dictionary: [String: String]) -> Value {
            .object(dictionary.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
        }
    }
}

/// ISO 8601 UTC timestamps with microseconds, without Foundation's formatter cost.
public enum ISO8601 {
    public static func string(micros: Int64) -> String {
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let fraction = micros - seconds * 1_000_000
        var days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secOfDay = seconds - days * 86_400
        // Civil from days (Howard Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        var out: [UInt8] = []
        out.reserveCapacity(27)
        func digits(_ value: Int64, _ width: Int) {
            // A year before 1 (a time from outside input): a sign, not a trap in UInt8(v % 10).
            if value < 0 {
                out.append(0x2d)
                digits(-value, width)
                return
            }
            var v = value
            var buffer = [UInt8](repeating: 0x30, count: width)
            for i in stride(from: width - 1, through: 0, by: -1) {
                buffer[i] = 0x30 + UInt8(v % 10)
                v /= 10
            }
            if v > 0 { out.append(contentsOf: String(value).utf8) } else { out.append(contentsOf: buffer) }
        }
        if y < 0 {
            out.append(UInt8(ascii: "-"))
            digits(-y, 4)
        } else {
            digits(y, 4)
        }
        out.append(UInt8(ascii: "-"))
        digits(m, 2)
        out.append(UInt8(ascii: "-"))
        digits(d, 2)
        out.append(UInt8(ascii: "T"))
        digits(secOfDay / 3600, 2)
        out.append(UInt8(ascii: ":"))
        digits(secOfDay / 60 % 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(secOfDay % 60, 2)
        out.append(UInt8(ascii: "."))
        digits(fraction, 6)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }
}
