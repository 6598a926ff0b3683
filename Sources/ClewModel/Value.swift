public import Foundation

/// A recorded data item: canonical JSON (sorted keys) with secrets redacted, and its SHA-256.
///
/// Values are canonicalized with Foundation's `JSONSerialization`, not ``JSONTree``: a value's digest is
/// its identity across runs and replays, and `JSONSerialization` keeps every integer exact where
/// ``JSONTree`` (numbers as `Double`) would round those past 2^53.
///
/// Values are content-addressed: equal content has equal ``digest`` and is stored once
/// (`value.stored` in stream `value/<digest>`).
public struct RecordedValue: Sendable, Hashable {
    /// Canonical UTF-8 JSON.
    public let json: Data
    /// SHA-256 of ``json``, 64 hex digits.
    public let digest: String
    /// The Swift type or origin of the value (`[Double]`, `String`, `stdout`).
    public let type: String
    /// Rows, for arrays (the number of elements), else nil.
    public let rows: Int?

    /// Wraps JSON that is already canonical and redacted.
    public init(canonicalJSON json: Data, type: String) {
        self.json = json
        self.digest = ContentDigest.sha256(json)
        self.type = type
        self.rows = Self.rows(json)
    }

    /// Element count of a top-level JSON array, else nil.
    static func rows(_ json: Data) -> Int? {
        json.first == UInt8(ascii: "[") ? (try? JSONSerialization.jsonObject(with: json, options: .fragmentsAllowed) as? [Any])?.count : nil
    }

    /// A value read back from the ledger, keeping the digest it was recorded under (JSON re-encoding may
    /// spell numbers differently; the recorded digest stays the value's identity).
    public init(json: Data, digest: String, type: String) {
        self.json = json
        self.digest = digest
        self.type = type
        self.rows = Self.rows(json)
    }

    /// Encodes `value` as canonical JSON, redacting secrets: if `name` looks like a credential the whole value
    /// is replaced by `"[REDACTED]"`, and so is every object member whose key does.
    /// - Throws: `EncodingError` when the value cannot be encoded as JSON (e.g. a non-finite Double).
    public init<T: Encodable>(_ value: T, name: String? = nil) throws {
        let type = String(describing: T.self)
        if let name, Redaction.isSecret(name) {
            self.init(canonicalJSON: Data(#""[REDACTED]""#.utf8), type: type)
            return
        }
        var data = try JSON.canonical(value)
        if Redaction.mayContainSecretKey(data) {
            let object = try JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed)
            data = try JSONSerialization.data(
                withJSONObject: Redaction.redact(object), options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        }
        self.init(canonicalJSON: data, type: type)
    }

    /// Parses JSON text from outside (a command's output) into a canonical, redacted value; text that is not
    /// JSON is kept as a JSON string.
    public init(text: String, name: String? = nil, type: String = "text") {
        if let name, Redaction.isSecret(name) {
            self.init(canonicalJSON: Data(#""[REDACTED]""#.utf8), type: type)
            return
        }
        if let object = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed),
            let data = try? JSONSerialization.data(
                withJSONObject: Redaction.redact(object), options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        {
            self.init(canonicalJSON: data, type: type)
        } else {
            self.init(canonicalJSON: Data(JSON.quote(text).utf8), type: type)
        }
    }

    /// An object of named outputs (a command's `::set-output` lines): each value JSON when it parses as
    /// JSON, else a string, a later line of a name winning; secrets redacted. Nil when the object cannot
    /// be encoded.
    public init?(outputs: [(name: String, value: String)], type: String) {
        var object: [String: Any] = [:]
        for (name, value) in outputs {
            object[name] = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)) ?? value
        }
        guard let data = try? JSONSerialization.data(withJSONObject: Redaction.redact(object), options: [.sortedKeys, .withoutEscapingSlashes])
        else { return nil }
        self.init(canonicalJSON: data, type: type)
    }

    /// The value decoded as `T`.
    public func decode<T: Decodable>(_: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: json)
    }

    /// The JSON as text.
    public var text: String { String(decoding: json, as: UTF8.self) }
}

/// Recognises names that look like credentials so their values never reach the ledger.
public enum Redaction {
    static let markers = [
        "password", "passwd", "secret", "token", "apikey", "api_key", "api-key", "authorization", "credential",
        "private_key", "privatekey", "access_key", "accesskey", "session_key", "cookie", "bearer",
    ]

    /// Whether a variable, param, output or object key name looks like a credential
    /// (password, secret, token, api_key, authorization, credential, private_key, access_key, cookie …).
    public static func isSecret(_ name: String) -> Bool {
        let n = name.lowercased()
        return markers.contains { n.contains($0) }
    }

    /// Cheap pre-check on encoded JSON: false means no key can be a secret.
    static func mayContainSecretKey(_ json: Data) -> Bool {
        let text = String(decoding: json, as: UTF8.self).lowercased()
        return markers.contains { text.contains($0) }
    }

    /// A JSON object tree with the values of secret-looking keys replaced by `"[REDACTED]"`.
    public static func redact(_ object: Any) -> Any {
        if let dict = object as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, v) in dict { out[k] = isSecret(k) ? "[REDACTED]" : redact(v) }
            return out
        }
        if let array = object as? [Any] { return array.map(redact) }
        return object
    }

    /// Params with secret-looking names replaced, for recording.
    public static func redact(params: [String: String]) -> [String: String] {
        params.reduce(into: [:]) { $0[$1.key] = isSecret($1.key) ? "[REDACTED]" : $1.value }
    }
}
