import ClewCore
import ClewLedger
import ClewModel
import Foundation
import Synchronization

/// What Variables and Connections share: a stream of keyed sets and deletes (who in the actor, why in
/// the payload), folded in order into what stands now and every key's history, and the steps of a run
/// that read one (their source naming the set they saw).
final class SettingsLog<Item: Sendable, Change: Sendable>: Sendable {
    /// One event's meaning: its key, what now stands (nil: deleted) and its history entry.
    typealias Apply = @Sendable (_ event: Event, _ time: String) -> (key: String, item: Item?, change: Change)?

    private struct State {
        var current: [String: Item] = [:]
        var history: [String: [Change]] = [:]
        var foldedThrough: UInt64 = 0
    }

    private let ledger: Ledger
    private let stream: String
    private let apply: Apply
    private let state = Mutex(State())

    init(ledger: Ledger, stream: String, apply: @escaping Apply) {
        self.ledger = ledger
        self.stream = stream
        self.apply = apply
    }

    /// Folds the events appended since the last look (by any process or host), under the lock, so two
    /// callers never fold the same events twice.
    func refresh() throws {
        try state.withLock { state in
            for event in try ledger.events(inStream: stream, after: state.foldedThrough) {
                state.foldedThrough = event.seq
                guard let (key, item, change) = apply(event, ISO8601.string(micros: event.timestampMicros)) else { continue }
                state.current[key] = item
                state.history[key, default: []].append(change)
            }
        }
    }

    func all() throws -> [String: Item] {
        try refresh()
        return state.withLock { $0.current }
    }

    func get(_ key: String) throws -> Item? {
        try refresh()
        return state.withLock { $0.current[key] }
    }

    func history(_ key: String) throws -> [Change] {
        try refresh()
        return state.withLock { $0.history[key] ?? [] }
    }

    /// Appends a set or delete of `type` (durable before it returns) and folds it.
    func append(type: String, actor: String, _ payload: some Encodable) async throws {
        _ = try await ledger.append(
            NewEvent(type: type, stream: stream, actor: actor, timestampMicros: Recorder.nowMicros(), payload: try JSON.canonical(payload)))
        try refresh()
    }

    /// A read step of a run: the step, and the set its source names (seq, reference, that set's history entry).
    struct Read {
        var step: ValueEvent
        var setSeq: UInt64?
        var reference: String?
        var change: Change?
    }

    /// The steps of kind `kind` in run `run` of `dag` whose source names a `setType` event.
    func reads(dag: String, run: String, kind: String, setType: String, seq: (Change) -> UInt64) throws -> [Read] {
        try refresh()
        var out: [Read] = []
        for event in try ledger.events(inStream: StreamID.run(dag: dag, run: run)) where event.type == EventType.variableRecorded {
            guard let p = try? JSONDecoder().decode(ValueEvent.self, from: event.payload), p.kind == kind, let name = p.name else { continue }
            var read = Read(step: p)
            if let (setSeq, reference) = VariableStore.parse(origin: p.source, type: setType) {
                read.setSeq = setSeq
                read.reference = reference
                read.change = state.withLock { $0.history[name]?.first { seq($0) == setSeq } }
            }
            out.append(read)
        }
        return out
    }
}
