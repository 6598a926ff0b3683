public import ClewLedger
public import ClewModel
import Foundation

/// A DAG as the ledger knows it: its last registered definition (from the engine, a pipeline file, or
/// OpenLineage producers), whether or not this executable can run it.
public struct RegisteredDAG: Sendable, Codable {
    public var name: String
    public var version: String
    /// The definition as registered (nil if its payload did not decode).
    public var definition: DAGSpec?
    /// Seq and time of the last registration.
    public var registeredSeq: UInt64
    public var registeredMicros: Int64
}

extension Views {
    /// Every DAG registered in the ledger, by name (see ``RegisteredDAG/all(in:)``).
    public func registeredDAGs() throws -> [RegisteredDAG] { try RegisteredDAG.all(in: ledger) }
}

extension RegisteredDAG {
    /// Every DAG registered in `ledger` (`dag.registered` in stream `dag/<name>`), by name: the last
    /// registration of each. Reads one event per DAG; needs no views.
    public static func all(in ledger: Ledger) throws -> [RegisteredDAG] {
        let decoder = JSONDecoder()
        return try ledger.streams(prefix: "dag/").compactMap { stream in
            guard let seq = try ledger.seqs(inStream: stream.stream).last, let event = try ledger.event(at: seq),
                  event.type == EventType.dagRegistered, let p = try? decoder.decode(DAGRegistered.self, from: event.payload)
            else { return nil }
            return RegisteredDAG(name: p.dag, version: p.version, definition: p.definition, registeredSeq: seq, registeredMicros: event.timestampMicros)
        }.sorted { $0.name < $1.name }
    }
}
