import ClewLedger
package import ClewPostgres
package import Foundation
import Logging
import NIOCore
import PostgresNIO

/// `clew bench cluster`: appends through the PostgreSQL shared log against raw batched INSERTs of the
/// same rows into a table with the same columns and indexes, in the same run, on the same server:
/// with 1, 2 and 4 client processes, the durable single append against a one-row INSERT, and a new
/// host's replica copying the log against a raw SELECT of the same rows.
package enum ClusterBenchmark {
    package struct Configuration: Sendable {
        package var events = 100_000
        package var batch = 1_000
        package var clients = [1, 2, 4]
        package var singles = 300
        package var repetitions = 3
        package init() {}
    }

    /// What one client process did: its events and when its appends began and ended (wall clock, µs).
    package struct ClientTiming: Codable, Sendable {
        package var events: Int
        package var startMicros: Int64
        package var endMicros: Int64
        package init(events: Int, startMicros: Int64, endMicros: Int64) {
            self.events = events
            self.startMicros = startMicros
            self.endMicros = endMicros
        }
    }

    package struct Result: Codable, Sendable {
        package var events: Int
        package var batch: Int
        package var repetitions: Int
        /// Events/s through the shared log (validate, encode, hash, one transaction per batch with the
        /// head lock, the Merkle frontier, the batch row, NOTIFY) by number of client processes.
        package var pg_append_eps: [String: Double]
        /// Events/s of plain batched INSERTs of the same rows (same columns and indexes, seqs chosen by
        /// the client, one transaction per batch, no lock), same clients.
        package var raw_insert_eps: [String: Double]
        package var pg_append_ratio: [String: Double]
        package var durable_single_p50_us: Double
        package var raw_single_p50_us: Double
        package var durable_single_ratio: Double
        /// A new host's replica copying the whole log (read, check, write to LMDB, check roots), against
        /// reading the same rows with SELECT alone.
        package var replica_copy_eps: Double
        package var raw_select_eps: Double
        package var replica_copy_ratio: Double
        /// Workers (`clew worker` processes; set by the CLI, which starts them): the median time from an
        /// attempt queued to claimed; tasks/s of the shard demo through 1 and 3 workers against the same
        /// run in one process, and the ratio; the time from a worker killed (kill -9) in the middle of
        /// a task to the attempt's next try claimed by another worker (lease 1 s), and from the lease's
        /// expiry to that claim.
        package var claim_p50_ms: Double?
        package var tasks_per_s: [String: Double]?
        package var local_tasks_per_s: Double?
        package var tasks_ratio: [String: Double]?
        package var recovery_ms_p50: Double?
        package var expiry_to_claim_ms_p50: Double?
    }

    /// Runs the benchmark in fresh databases on the server of `admin` (created and dropped here).
    /// - Parameter spawn: starts `clients` client processes against a database URL, each appending
    ///   `events` events in batches (`raw`: plain INSERTs into `raw_events`), and returns their timings.
    package static func run(
        admin: PostgresLocation, configuration c: Configuration, workDir: URL,
        spawn: @Sendable (_ url: String, _ clients: Int, _ eventsEach: Int, _ raw: Bool) async throws -> [ClientTiming],
        progress: @Sendable (String) -> Void
    ) async throws -> Result {
        var pg: [Int: [Double]] = [:], raw: [Int: [Double]] = [:]
        var singles: [Double] = [], rawSingles: [Double] = [], copies: [Double] = [], selects: [Double] = []
        for rep in 1...c.repetitions {
            for k in c.clients {
                let each = c.events / k
                for isRaw in [false, true] {
                    progress("rep \(rep)/\(c.repetitions): \(k) client(s), \(isRaw ? "raw INSERTs" : "shared log")")
                    let eps = try await withDatabase(admin) { url in
                        if isRaw { try await createRawTable(url) } else { try await PostgresLog.connect(try PostgresLocation(url), create: true).close() }
                        let timings = try await spawn(url, k, each, isRaw)
                        let start = timings.map(\.startMicros).min() ?? 0, end = timings.map(\.endMicros).max() ?? 0
                        return Double(timings.reduce(0) { $0 + $1.events }) / (Double(max(end - start, 1)) / 1e6)
                    }
                    if isRaw { raw[k, default: []].append(eps) } else { pg[k, default: []].append(eps) }
                }
            }
            progress("rep \(rep)/\(c.repetitions): single appends and a replica's copy")
            try await withDatabase(admin) { url in
                let log = try await PostgresLog.connect(try PostgresLocation(url), create: true)
                defer { log.close() }
                let drafts = corpus(c.events, seed: 0)
                for i in 0..<c.singles {
                    let t = ContinuousClock.now
                    _ = try await log.append(try Ledger.sharedRecords([drafts[i]], now: now()), batch: UUID(), expecting: [])
                    singles.append((ContinuousClock.now - t).seconds * 1e6)
                }
                try await createRawTable(url)
                let records = try Ledger.sharedRecords(Array(drafts.prefix(c.singles)), now: now())
                try await withConnection(try PostgresLocation(url)) { conn in
                    for (i, r) in records.enumerated() {
                        let t = ContinuousClock.now
                        try await conn.query(
                            """
                            INSERT INTO raw_events (seq, stream, type, time_us, envelope, payload) VALUES
                            (\(Int64(i + 1)), \(r.stream), \(r.type), \(r.timestampMicros), \(ByteBuffer(bytes: r.envelope)), \(ByteBuffer(bytes: r.payload)))
                            """, logger: logger)
                        rawSingles.append((ContinuousClock.now - t).seconds * 1e6)
                    }
                }
                // Fill the log to `events` and copy it into a new host's replica.
                try await inBatches(drafts[c.singles...], of: c.batch) { records, _ in
                    _ = try await log.append(records, batch: UUID(), expecting: [])
                }
                let dir = workDir.appendingPathComponent("replica-\(rep)")
                defer { try? FileManager.default.removeItem(at: dir) }
                let t = ContinuousClock.now
                let copy = try await Ledger.replica(of: try await PostgresLog.connect(try PostgresLocation(url), create: false), at: dir)
                copies.append(Double(c.events) / (ContinuousClock.now - t).seconds)
                copy.close()
                let s = ContinuousClock.now
                var read = 0
                try await withConnection(try PostgresLocation(url)) { conn in
                    var after: Int64 = 0
                    while true {
                        var n = 0
                        let rows = try await conn.query(
                            "SELECT seq, envelope, payload FROM clew_events WHERE seq > \(after) ORDER BY seq LIMIT 4096", logger: logger)
                        for try await (seq, _, _) in rows.decode((Int64, ByteBuffer, ByteBuffer).self) {
                            after = seq
                            n += 1
                        }
                        read += n
                        if n < 4096 { break }
                    }
                }
                selects.append(Double(read) / (ContinuousClock.now - s).seconds)
            }
        }
        let median = { (xs: [Double]) in LedgerBenchmark.median(xs) }
        var pgEps: [String: Double] = [:], rawEps: [String: Double] = [:], ratios: [String: Double] = [:]
        for k in c.clients {
            pgEps["\(k)"] = median(pg[k] ?? [])
            rawEps["\(k)"] = median(raw[k] ?? [])
            ratios["\(k)"] = median(pg[k] ?? []) / max(median(raw[k] ?? []), 1)
        }
        let single = median(singles), rawSingle = median(rawSingles)
        let copy = median(copies), select = median(selects)
        return Result(
            events: c.events, batch: c.batch, repetitions: c.repetitions, pg_append_eps: pgEps, raw_insert_eps: rawEps, pg_append_ratio: ratios,
            durable_single_p50_us: single, raw_single_p50_us: rawSingle, durable_single_ratio: single / max(rawSingle, 1),
            replica_copy_eps: copy, raw_select_eps: select, replica_copy_ratio: copy / max(select, 1))
    }

    /// One client process's part: `count` events in batches, through the shared log or as raw INSERTs
    /// (seqs from `offset + 1`, no lock), timed from its first append to its last acknowledgement.
    package static func client(url: String, count: Int, batch: Int, raw: Bool, seed: Int) async throws -> ClientTiming {
        let drafts = corpus(count, seed: seed)
        if raw {
            var start: Int64 = 0
            try await withConnection(try PostgresLocation(url)) { conn in
                start = now()
                try await inBatches(drafts[...], of: batch) { records, at in
                    let offset = Int64(seed) * 1_000_000_000 + Int64(at)
                    try await conn.query("BEGIN", logger: logger)
                    try await conn.query(
                        """
                        INSERT INTO raw_events (seq, stream, type, time_us, envelope, payload)
                        SELECT * FROM unnest(\(records.indices.map { offset + Int64($0) + 1 })::bigint[], \(records.map(\.stream))::text[],
                        \(records.map(\.type))::text[], \(records.map(\.timestampMicros))::bigint[],
                        \(records.map { ByteBuffer(bytes: $0.envelope) })::bytea[], \(records.map { ByteBuffer(bytes: $0.payload) })::bytea[])
                        """, logger: logger)
                    try await conn.query("COMMIT", logger: logger)
                }
            }
            return ClientTiming(events: count, startMicros: start, endMicros: now())
        }
        let log = try await PostgresLog.connect(try PostgresLocation(url), create: false)
        defer { log.close() }
        let start = now()
        try await inBatches(drafts[...], of: batch) { records, _ in
            _ = try await log.append(records, batch: UUID(), expecting: [])
        }
        return ClientTiming(events: count, startMicros: start, endMicros: now())
    }

    // MARK: Helpers

    static let logger = Logger(label: "clew.bench.cluster", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Realistic pipeline events (the ledger benchmark's kind), varied by `seed`.
    static func corpus(_ count: Int, seed: Int) -> [NewEvent] {
        (0..<count).map { i in
            let run = "manual__2026-11-\(10 + (i / 500 + seed) % 20)T00_\(seed)"
            return NewEvent(
                type: ["task.started", "variable.recorded", "chunk.status_changed", "task.succeeded"][i % 4], stream: "run/etl/\(run)",
                actor: "worker-\(seed)",
                payload: Data(#"{"attempt":1,"dag":"etl","run":"\#(run)","task":"transform_\#(i % 17)","name":"rows","step":\#(i % 50),"value":\#(i * 7)}"#.utf8))
        }
    }

    package static func withDatabase<T: Sendable>(_ admin: PostgresLocation, _ body: (String) async throws -> T) async throws -> T {
        let name = "clew_bench_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16))"
        try await withConnection(admin) { c in _ = try await c.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger) }
        var location = admin
        location.database = name
        let url = location.connectionURL
        let drop = { try? await withConnection(admin) { c in _ = try await c.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"), logger: logger) } }
        do {
            let result = try await body(url)
            await drop()
            return result
        } catch {
            await drop()
            throw error
        }
    }

    static func createRawTable(_ url: String) async throws {
        try await withConnection(try PostgresLocation(url)) { c in
            for sql in [
                """
                CREATE TABLE raw_events (seq bigint PRIMARY KEY, stream text NOT NULL, type text NOT NULL, time_us bigint NOT NULL,
                envelope bytea NOT NULL, payload bytea NOT NULL)
                """,
                "CREATE INDEX ON raw_events (stream, seq)", "CREATE INDEX ON raw_events (type, time_us)",
            ] {
                _ = try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            }
        }
    }

    static func withConnection(_ location: PostgresLocation, _ body: (PostgresConnection) async throws -> Void) async throws {
        try await PostgresLog.withConnection(to: location, logger: logger, body)
    }

    /// The shared log's records for `drafts`, `size` at a time, with each batch's offset in `drafts`.
    static func inBatches(
        _ drafts: ArraySlice<NewEvent>, of size: Int, _ body: ([SharedRecord], Int) async throws -> Void
    ) async throws {
        var at = drafts.startIndex
        while at < drafts.endIndex {
            let end = min(at + size, drafts.endIndex)
            try await body(try Ledger.sharedRecords(Array(drafts[at..<end]), now: now()), at - drafts.startIndex)
            at = end
        }
    }

    /// Wall-clock microseconds (client processes' windows are compared across processes).
    static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1_000_000).rounded()) }
}
