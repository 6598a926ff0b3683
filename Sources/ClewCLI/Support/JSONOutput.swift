import ClewLedger
import ClewModel
import Foundation

enum JSONOutput {
    /// Pretty, key-sorted JSON of an Encodable value.
    static func text(_ value: some Encodable, pretty: Bool = true) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// One event as a JSON line: the shape `clew append` reads, plus `seq` and `schema_version`.
    static func line(_ event: Event) -> String {
        let payload = event.payload.isEmpty ? "null" : String(decoding: event.payload, as: UTF8.self)
        let erased = event.payloadErased ? #","payload_erased":true"# : ""
        return #"{"seq":\#(event.seq),"time":"\#(ISO8601.string(micros: event.timestampMicros))","actor":\#(JSON.quote(event.actor)),"stream":\#(JSON.quote(event.stream)),"type":\#(JSON.quote(event.type)),"schema_version":\#(event.schemaVersion),"payload":\#(payload)\#(erased)}"#
    }

    /// One event for people: seq, time, stream, type, actor and the payload (shortened).
    static func humanLine(_ event: Event) -> String {
        var payload = event.payloadErased ? "(payload erased)" : String(decoding: event.payload, as: UTF8.self)
        if payload.count > 120 { payload = String(payload.prefix(117)) + "..." }
        let seq = String(event.seq).padding(toLength: max(6, String(event.seq).count), withPad: " ", startingAt: 0)
        return "\(seq) \(ISO8601.string(micros: event.timestampMicros))  \(event.stream)  \(event.type)  \(event.actor)  \(payload)"
    }
}
