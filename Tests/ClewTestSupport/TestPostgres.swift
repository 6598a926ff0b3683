public import ClewPostgres
import ClewLedger
public import Foundation
import Logging
public import PostgresNIO
import Testing

/// The server the tests use: `CLEW_TEST_POSTGRES`, else what tools/postgres.sh (run by tools/setup.sh)
/// starts. Each test gets a database of its own, dropped afterwards.
public enum TestServer {
    public static let admin = ProcessInfo.processInfo.environment["CLEW_TEST_POSTGRES"] ?? "postgres://clew:clew@127.0.0.1:5432/clew?sslmode=disable"
    /// The fault tests' own cluster (tools/postgres.sh --faults): they restart it and reach it from
    /// network namespaces, so no other test sees their faults.
    public static let faults = ProcessInfo.processInfo.environment["CLEW_TEST_POSTGRES_FAULTS"] ?? "postgres://clew:clew@127.0.0.1:5433/clew?sslmode=disable"
    public static let logger = Logger(label: "clew.test.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` with the URL of a new, empty database; drops it afterwards whatever happens.
    @discardableResult
    public static func withDatabase<T>(on server: String = admin, _ body: (String) async throws -> T) async throws -> T {
        let location = try PostgresLocation(server)
        let name = "clew_test_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16))"
        try await adminQuery(location, "CREATE DATABASE \(name)")
        var url = location
        url.database = name
        let text = url.connectionURL
        do {
            let result = try await body(text)
            try? await adminQuery(location, "DROP DATABASE \(name) WITH (FORCE)")
            return result
        } catch {
            try? await adminQuery(location, "DROP DATABASE \(name) WITH (FORCE)")
            throw error
        }
    }

    /// Runs one statement on the test server's own database.
    public static func adminQuery(_ location: PostgresLocation, _ sql: String) async throws {
        try await withConnection(location) { c in _ = try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
    }

    /// Runs statements on database `url` (to change rows behind the ledger's back).
    public static func query(_ url: String, _ sql: String) async throws {
        try await withConnection(try PostgresLocation(url)) { c in _ = try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
    }

    public static func withConnection(_ location: PostgresLocation, _ body: (PostgresConnection) async throws -> Void) async throws {
        do { try await PostgresLog.withConnection(to: location, logger: logger, body) } catch let error as LedgerError where error.code == .unavailable {
            Issue.record("\(error.message): run tools/postgres.sh and tools/postgres.sh --faults (tools/setup.sh does), or set CLEW_TEST_POSTGRES and CLEW_TEST_POSTGRES_FAULTS")
            throw error
        }
    }
}

/// A temporary directory removed afterwards.
public func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-pg-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    return try await body(dir)
}
