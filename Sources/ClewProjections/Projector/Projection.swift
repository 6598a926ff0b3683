import ClewLedger

/// A view: a fold of the log into tables of its own LMDB environment.
///
/// The projector calls ``apply(_:_:_:)`` for each event of a batch in log order, then ``flush(_:)``, then
/// writes the checkpoint, all in one write transaction. A projection may cache records between calls
/// of one batch and across batches; ``reset()`` drops the caches (the view was changed by someone else).
/// The fold must be deterministic: the same events give the same bytes, however they are batched.
protocol Projection: AnyObject {
    static var name: String { get }
    static var tables: [String] { get }
    /// The facts the fold reads (the rest are not decoded for it).
    static var interest: Fact.Interest { get }
    /// Grouped tables that a fold into an empty view loads in bulk at its end (``BulkLoad``): the
    /// projection only adds to them (``ViewTxn/add(_:_:grouped:)``) and never reads them while it folds.
    static var bulkTables: [String] { get }
    /// Grouped tables with 8-byte keys (values of at most 8 bytes) that the fold reads while it folds, whose
    /// insertions a fold into an empty view keeps in memory and writes many at once (``DeferredInserts``);
    /// the projection inserts with ``ViewTxn/add(_:_:grouped:)`` and reads with ``ViewTxn/get(_:grouped:)``.
    static var deferredTables: [String] { get }
    func apply(_ fact: Fact, _ h: EventHeader, _ txn: ViewTxn) throws
    func flush(_ txn: ViewTxn) throws
    func reset()
}

extension Projection {
    static var bulkTables: [String] { [] }
    static var deferredTables: [String] { [] }
}

/// The views Clew keeps, by name.
public enum ViewName: String, CaseIterable, Sendable, Codable {
    case runs, chunks, lineage, values

    var projectionType: any Projection.Type {
        switch self {
        case .runs: return RunsProjection.self
        case .chunks: return ChunksProjection.self
        case .lineage: return LineageProjection.self
        case .values: return ValuesProjection.self
        }
    }

    func makeProjection(_ options: Views.Options) -> any Projection {
        switch self {
        case .runs: return RunsProjection(epochBits: options.runEpochBits)
        case .chunks: return ChunksProjection(snapshotOps: options.chunkSnapshotOps)
        case .lineage: return LineageProjection()
        case .values: return ValuesProjection()
        }
    }

    var tables: [String] { projectionType.tables }

    /// The view's share of a fold's writes (percent of a fold's CPU time at 1M events, perf, 2026-12-03),
    /// so concurrent writes start with the biggest.
    var weight: Int {
        switch self {
        case .lineage: 15
        case .chunks: 11
        case .values: 6
        case .runs: 3
        }
    }
}
