import ClewLedger
import ClewPostgres
import ClewTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A host's view of the shared log at `url`: its own replica in `dir`.
func openHost(_ url: String, _ dir: URL, create: Bool = false) async throws -> Ledger {
    var logger = Logger(label: "clew.postgres", factory: { StreamLogHandler.standardError(label: $0) })
    logger.logLevel = ProcessInfo.processInfo.environment["CLEW_PG_DEBUG"] != nil ? .trace : .critical
    let log = try await PostgresLog.connect(try PostgresLocation(url), create: create, logger: logger)
    return try await Ledger.replica(of: log, at: dir)
}

/// Two hosts (each its own replica and connections) on a new shared log, closed afterwards.
func withTwoHosts(_ body: (Ledger, Ledger) async throws -> Void) async throws {
    try await TestServer.withDatabase { url in
        try await withTemporaryDirectory { dir in
            let a = try await openHost(url, dir.appendingPathComponent("a"), create: true)
            defer { a.close() }
            let b = try await openHost(url, dir.appendingPathComponent("b"))
            defer { b.close() }
            try await body(a, b)
        }
    }
}

func event(_ i: Int, stream: String = "run/etl/1", payload: String? = nil) -> NewEvent {
    NewEvent(
        type: ["task.started", "task.succeeded", "chunk.status_changed"][i % 3], stream: stream, actor: "host-\(i % 2)",
        payload: Data((payload ?? #"{"i":\#(i),"rows":\#(i * 7)}"#).utf8))
}
