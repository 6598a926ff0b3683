package import ClewLedger
package import ClewModel
package import Foundation

/// The envelope fields a projection needs (no payload).
public struct EventHeader: Sendable {
    public var seq: UInt64
    public var timeMicros: Int64
    public var stream: String
    public var type: String
}

/// An event's payload, decoded once into its type's payload (ClewModel's `EventSchema`) so every view
/// reads the same facts.
///
/// Decoding follows docs/event-schema.md. A payload that does not decode as its type says becomes
/// ``malformed`` (views skip it; `clew verify` still vouches for the bytes); unknown types are ``other``.
package enum Fact: Sendable {
    case dagRegistered(DAGRegistered)
    /// An event of stream `run/<dag>/<run>`.
    case run(RunKey, RunFact)
    case chunk(ChunkChange)
    case lease(ChunkLease, acquired: Bool)
    case described(DatasetDescription)
    case malformed(String)
    case other

    package enum RunFact: Sendable {
        case queued(RunQueued)
        case started(RunStarted)
        case resubmitted(RunResubmitted)
        case labelled(RunLabelled)
        case ended(state: String, RunEnded)
        case task(TaskEvent)
        case value(ValueEvent)
        case consumed(ValueConsumed)
        case expectation(ExpectationEvaluated)
        case triggered(DAGTriggered)
        case other
    }

    /// Decodes `event`'s payload by its type. `wanted` limits decoding to what the caller folds (the rest
    /// become ``other`` without touching the payload).
    package static func decode(_ event: Event, wanted: Interest = .all, decoder d: JSONDecoder = JSONDecoder()) -> Fact {
        let type = event.type
        // An erased payload (`clew erase`) says nothing any more: the event is skipped, as the fold of a
        // fresh rebuild skips it too.
        if event.payloadErased { return .other }
        do {
            if event.stream.hasPrefix("run/") {
                guard wanted.contains(.run) || (wanted.contains(.consumption) && type == EventType.valueConsumed) else {
                    return .other
                }
                guard let key = RunKey(stream: event.stream) else { return .other }
                let p = event.payload
                let fact: RunFact
                switch type {
                case EventType.runQueued: fact = .queued(try d.decode(RunQueued.self, from: p))
                case EventType.runStarted: fact = .started(try d.decode(RunStarted.self, from: p))
                case EventType.runResubmitted: fact = .resubmitted(try d.decode(RunResubmitted.self, from: p))
                case EventType.runLabelled: fact = .labelled(try d.decode(RunLabelled.self, from: p))
                case EventType.runSucceeded: fact = .ended(state: "succeeded", try d.decode(RunEnded.self, from: p))
                case EventType.runFailed: fact = .ended(state: "failed", try d.decode(RunEnded.self, from: p))
                case EventType.runCancelled: fact = .ended(state: "cancelled", try d.decode(RunEnded.self, from: p))
                case _ where type.hasPrefix("task."): fact = .task(try d.decode(TaskEvent.self, from: p))
                case EventType.variableRecorded, EventType.valueProduced: fact = .value(try d.decode(ValueEvent.self, from: p))
                case EventType.valueConsumed: fact = .consumed(try d.decode(ValueConsumed.self, from: p))
                case EventType.expectationEvaluated: fact = .expectation(try d.decode(ExpectationEvaluated.self, from: p))
                case EventType.dagTriggered: fact = .triggered(try d.decode(DAGTriggered.self, from: p))
                default: fact = .other
                }
                return .run(key, fact)
            }
            switch type {
            case EventType.chunkStatusChanged:
                guard wanted.contains(.chunks) else { return .other }
                return .chunk(try d.decode(ChunkChange.self, from: event.payload))
            case EventType.chunkLeaseAcquired, EventType.chunkLeaseReleased:
                guard wanted.contains(.chunks) else { return .other }
                return .lease(try d.decode(ChunkLease.self, from: event.payload), acquired: type == EventType.chunkLeaseAcquired)
            case EventType.datasetDescribed:
                guard wanted.contains(.chunks) else { return .other }
                return .described(try d.decode(DatasetDescription.self, from: event.payload))
            case EventType.dagRegistered:
                guard wanted.contains(.dags) else { return .other }
                return .dagRegistered(try d.decode(DAGRegistered.self, from: event.payload))
            default:
                return .other
            }
        } catch {
            return .malformed("\(type) at seq \(event.seq): \(error)")
        }
    }

    /// What a fold needs decoded.
    package struct Interest: OptionSet, Sendable {
        package let rawValue: Int
        package init(rawValue: Int) { self.rawValue = rawValue }
        package static let run = Interest(rawValue: 1)
        package static let chunks = Interest(rawValue: 2)
        package static let dags = Interest(rawValue: 4)
        /// `value.consumed` only (the chunk view's lineage for staleness).
        package static let consumption = Interest(rawValue: 8)
        package static let all: Interest = [.run, .chunks, .dags, .consumption]
    }
}

extension Fact.RunFact {
    /// The task and attempt a task-level fact is about (nil for run-level facts; attempt 1 when unrecorded).
    package var attempt: (task: String, attempt: Int)? {
        switch self {
        case .task(let t): (t.task, t.attempt ?? 1)
        case .value(let v): (v.task, v.attempt ?? 1)
        case .consumed(let c): (c.task, c.attempt ?? 1)
        case .expectation(let x): (x.task, x.attempt ?? 1)
        case .triggered(let d): (d.task, d.attempt ?? 1)
        default: nil
        }
    }
}

/// A run's identity: its DAG and its run id (run ids are unique within a DAG only).
public struct RunKey: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var dag: String
    public var run: String

    public init(dag: String, run: String) {
        self.dag = dag
        self.run = run
    }

    /// From a stream id `run/<dag>/<run>`.
    public init?(stream: String) {
        guard stream.hasPrefix("run/") else { return nil }
        let rest = stream.dropFirst(4)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        dag = String(rest[..<slash])
        run = String(rest[rest.index(after: slash)...])
    }

    public var stream: String { StreamID.run(dag: dag, run: run) }
    /// `<dag>/<run>`.
    public var description: String { "\(dag)/\(run)" }

    public static func < (a: RunKey, b: RunKey) -> Bool { (a.dag, a.run) < (b.dag, b.run) }
}


extension Views {
    /// Whether `event`'s payload decodes as its type says: the decode step of a rebuild alone, the
    /// baseline `clew bench views` (ClewBenchmarks) measures rebuilds against.
    package static func payloadDecodes(_ event: Event, decoder: JSONDecoder) -> Bool {
        if case .malformed = Fact.decode(event, wanted: .all, decoder: decoder) { return false }
        return true
    }
}
