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

func event(_ i: Int, stream: String = "run/etl/1", payload: String? = nil) -> NewEvent {
    NewEvent(
        type: ["task.started", "task.succeeded", "chunk.status_changed"][i % 3], stream: stream, actor: "host-\(i % 2)",
        payload: Data((payload ?? #"{"i":\#(i),"rows":\#(i * 7)}"#).utf8))
}
