import ClewLedger
import ClewModel
import Foundation
import Synchronization
@testable import ClewEngine
@testable import ClewProjections

/// A ledger made by running the demo pipelines once per test process (sensor_rollup backfilled two days,
/// csv_orders, shard_etl with its transient failures resubmitted, numeric_flow three times); each test
/// works on its own copy.
enum DemoLedger {
    static let template: Task<URL, any Error> = Task {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-views-template-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Removed when the test process exits (each run left ~30 MB behind before).
        atexit {
            try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "/clew-views-template-\(getpid())")
        }
        let url = dir.appendingPathComponent("demo.ledger")
        let ledger = try Ledger.create(at: url)
        defer { ledger.close() }
        let engine = Engine(
            ledger: ledger, registry: DAGRegistry(DemoDAGs.all), options: Engine.Options(dataDirectory: dir.appendingPathComponent("data")))
        let start = PartitionKey.parse("2026-11-01")!
        _ = try await Scheduler(engine: engine).backfill(DemoDAGs.sensorRollup, from: start, to: start + 2 * 86_400_000_000)
        _ = try await engine.run(DemoDAGs.csvOrders, params: ["rows": "120", "currency": "EUR"])
        let shards = try await engine.run(DemoDAGs.shardETL)
        if shards.status == .failed { _ = try await engine.resubmit(dag: "shard_etl", run: shards.runID) }
        for batch in 1...3 { _ = try await engine.run(DemoDAGs.numericFlow, params: ["batch": String(batch)]) }
        return url
    }

    /// A copy of the demo ledger in a fresh directory, removed afterwards.
    static func withCopy<T>(_ body: (Ledger, URL) async throws -> T) async throws -> T {
        let source = try await template.value
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-views-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("demo.ledger")
        try FileManager.default.copyItem(at: source, to: url)
        try? FileManager.default.removeItem(at: url.appendingPathComponent("views"))
        let ledger = try Ledger.open(at: url)
        defer { ledger.close() }
        return try await body(ledger, dir)
    }
}

/// A fresh ledger in `dir` holding events 1...n of `source` (the log as it stood at seq n).
func prefixLedger(of source: Ledger, through n: UInt64, in dir: URL, name: String = "prefix.ledger") async throws -> Ledger {
    let ledger = try Ledger.create(at: dir.appendingPathComponent(name))
    var batch: [NewEvent] = []
    try source.scan(1...max(n, 1)) { e in
        if n > 0 { batch.append(e.draft) }
        return true
    }
    if !batch.isEmpty { _ = try await ledger.append(contentsOf: batch) }
    return ledger
}

/// Notices the views printed (rebuilds after a problem).
final class Notices: Sendable {
    let list = Mutex<[String]>([])
    var all: [String] { list.withLock { $0 } }
    func options(scanLimit: Int? = nil, batch: Int? = nil) -> Views.Options {
        var o = Views.Options()
        o.notice = { [self] text in list.withLock { $0.append(text) } }
        if let scanLimit { o.integrityScanLimit = scanLimit }
        if let batch { o.batchEvents = batch }
        // Rebuilds and scratch folds sort the value index into runs of ~16 KiB and merge them, so the
        // tests that compare them with catch-ups take that path (the default keeps 48 MiB in memory).
        o.bulkBudget = 16 << 10
        // And they write lineage's deferred `ids` every ~100 new nodes (the default: ~1.6M).
        o.deferredBudget = 4 << 10
        return o
    }
}

extension Views {
    /// Every view's digest, keyed by view name.
    func digests() throws -> [String: String] {
        var out: [String: String] = [:]
        for name in ViewName.allCases {
            out[name.rawValue] = try read(name) { store, txn in try store.digest(txn).digest }
        }
        return out
    }
}
