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

    /// The payload of a `value.produced`/`variable.recorded` event for `value` (digest, type, rows, and
    /// the value itself when small), storing the value first when it is large and not yet in the ledger.
    func payload(_ value: RecordedValue, task: String, attempt: Int) -> ValueEvent {
        var out = ValueEvent(task: task, attempt: attempt, digest: value.digest, valueType: value.type, rows: value.rows)
        if value.json.count <= Self.inlineLimit {
            out.value = try? JSONFragment(text: value.text)
        } else {
            storeIfNeeded(value)
            out.bytes = value.json.count
        }
        return out
    }

    func storeIfNeeded(_ value: RecordedValue) {
        let fresh = known.withLock { $0.insert(value.digest).inserted }
        guard fresh else { return }
        if let seqs = try? ledger.seqs(inStream: StreamID.value(value.digest), limit: 1), !seqs.isEmpty { return }
        recorder.emit(
            EventType.valueStored, stream: StreamID.value(value.digest),
            ValueStored(digest: value.digest, valueType: value.type, value: try? JSONFragment(text: value.text)))
    }

    /// A value by digest, from its `value.stored` event.
    func load(digest: String) throws -> RecordedValue? {
        guard let event = try ledger.events(inStream: StreamID.value(digest), limit: 1).first else { return nil }
        let stored = try JSONDecoder().decode(ValueStored.self, from: event.payload)
        guard let value = stored.value else { return nil }
        return RecordedValue(json: Data(value.text.utf8), digest: digest, type: stored.valueType ?? "json")
    }

    /// The value a `value.produced`/`variable.recorded` payload describes (inline or by digest).
    func value(in payload: ValueEvent) throws -> RecordedValue? {
        if let inline = payload.value {
            return RecordedValue(json: Data(inline.text.utf8), digest: payload.digest, type: payload.valueType ?? "json")
        }
        return try load(digest: payload.digest)
    }
}
