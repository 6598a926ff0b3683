import ClewLedger
import ClewModel
import Foundation
import Synchronization
@testable import ClewEngine

/// A fresh ledger and engine in a temporary directory, removed afterwards whatever happens.
func withEngine<T>(
    _ dags: [DAG] = [], concurrency: Int? = nil, _ body: (Engine, Ledger, URL) async throws -> T
) async throws -> T {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-engine-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ledger = try Ledger.create(at: dir.appendingPathComponent("test.ledger"))
    defer { ledger.close() }
    var options = Engine.Options(dataDirectory: dir.appendingPathComponent("data"))
    options.concurrency = concurrency
    let engine = Engine(ledger: ledger, registry: DAGRegistry(dags), options: options)
    return try await body(engine, ledger, dir)
}

/// Events of a run as (type, payload object) pairs.
func runEvents(_ ledger: Ledger, _ outcome: RunOutcome) throws -> [(type: String, payload: [String: Any])] {
    try ledger.events(inStream: outcome.stream).map { e in
        (e.type, (try JSONSerialization.jsonObject(with: e.payload) as? [String: Any]) ?? [:])
    }
}

func events(_ list: [(type: String, payload: [String: Any])], _ type: String, task: String? = nil) -> [[String: Any]] {
    list.filter { $0.type == type && (task == nil || $0.payload["task"] as? String == task) }.map(\.payload)
}

/// A pipeline file written into `dir`, with optional scripts beside it.
func writePipeline(_ yaml: String, in dir: URL, name: String = "pipeline.yaml", scripts: [String: String] = [:]) throws -> URL {
    for (file, text) in scripts {
        let url = dir.appendingPathComponent(file)
        try text.write(to: url, atomically: true, encoding: .utf8)
        chmod(url.path, 0o755)
    }
    let url = dir.appendingPathComponent(name)
    try yaml.write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// Counts calls across attempts (tasks are @Sendable closures).
final class Counter: Sendable {
    let value = Box(0)
    func next() -> Int { value.value.withLock { $0 += 1; return $0 } }
}

/// Whether a process exists and is not a zombie (a container's init may not reap orphans).
func isRunning(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}
