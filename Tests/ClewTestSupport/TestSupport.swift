public import ClewEngine
public import ClewLedger
public import Foundation

/// A fresh directory under the system's temporary directory, named `<prefix>-<uuid>`.
public func makeTemporaryDirectory(_ prefix: String = "clew-test") throws -> URL {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// A fresh ledger (`<dir>/test.ledger`) and an engine over it that knows `dags`, with task output under
/// `<dir>/data`; everything is removed afterwards whatever happens. The one helper every test target
/// uses to get an engine.
public func withEngine<T>(
    _ dags: [DAG] = [], concurrency: Int? = nil, prefix: String = "clew-engine",
    _ body: (Engine, Ledger, URL) async throws -> T
) async throws -> T {
    let dir = try makeTemporaryDirectory(prefix)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ledger = try Ledger.create(at: dir.appendingPathComponent("test.ledger"))
    defer { ledger.close() }
    var options = Engine.Options(dataDirectory: dir.appendingPathComponent("data"))
    options.concurrency = concurrency
    let engine = Engine(ledger: ledger, registry: DAGRegistry(dags), options: options)
    return try await body(engine, ledger, dir)
}
