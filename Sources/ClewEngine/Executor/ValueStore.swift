import ClewLedger
import ClewModel
import Foundation
import Synchronization

/// Content-addressed values: a value larger than ``inlineLimit`` is stored once, as `value.stored` in
/// stream `value/<digest>`, and events refer to it by digest; smaller values travel inline.
final class ValueStore: Sendable {
    static let inlineLimit = 512
    let ledger: Ledger
    let recorder: Recorder
    let known = Mutex(Set<String>())

    init(ledger: Ledger, recorder: Recorder) {
        self.ledger = ledger
        self.recorder = recorder
    }

    /// Payload fields describing `value` (`digest`, `type`, `rows`, and `value` when small), storing it
    /// first when it is large and not yet in the ledger.
    func fields(for value: RecordedValue) -> [(String, JSON.Value)] {
        var out: [(String, JSON.Value)] = [("digest", .string(value.digest)), ("value_type", .string(value.type))]
        if let rows = value.rows { out.append(("rows", .int(Int64(rows)))) }
        if value.json.count <= Self.inlineLimit {
            out.append(("value", .raw(value.text)))
        } else {
            storeIfNeeded(value)
            out.append(("bytes", .int(Int64(value.json.count))))
        }
        return out
    }

    func storeIfNeeded(_ value: RecordedValue) {
        let fresh = known.withLock { $0.insert(value.digest).inserted }
        guard fresh else { return }
        if let seqs = try? ledger.seqs(inStream: StreamID.value(value.digest), limit: 1), !seqs.isEmpty { return }
        recorder.emit(
            EventType.valueStored, stream: StreamID.value(value.digest),
            .object([("digest", .string(value.digest)), ("value_type", .string(value.type)), ("value", .raw(value.text))]))
    }

    /// A value by digest, from its `value.stored` event.
    func load(digest: String) throws -> RecordedValue? {
        guard let event = try ledger.events(inStream: StreamID.value(digest), limit: 1).first,
            let object = try JSONSerialization.jsonObject(with: event.payload) as? [String: Any],
            let value = object["value"]
        else { return nil }
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        return RecordedValue(json: data, digest: digest, type: object["value_type"] as? String ?? "json")
    }

    /// The value a `value.produced`/`variable.recorded` payload describes (inline or by digest).
    func value(inPayload object: [String: Any]) throws -> RecordedValue? {
        let type = object["value_type"] as? String ?? "json"
        guard let digest = object["digest"] as? String else { return nil }
        if let inline = object["value"] {
            let data = try JSONSerialization.data(withJSONObject: inline, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
            return RecordedValue(json: data, digest: digest, type: type)
        }
        return try load(digest: digest)
    }
}
