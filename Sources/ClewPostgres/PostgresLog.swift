public import ClewLedger
public import Foundation
public import Logging
import NIOCore
import NIOSSL
package import PostgresNIO
import Synchronization

/// A Clew log in PostgreSQL, shared by every host that names it: the ledger's format (envelopes,
/// payloads, Merkle roots) in six tables.
///
/// - `clew_meta` (key → value): format, version, the log's id, when it was created.
/// - `clew_head` (one row): the last seq, the Merkle tree's right edge (``SharedLogHead``) and root.
///   Every append locks it (`SELECT … FOR UPDATE`), so seqs are gap-free across all writers on all
///   hosts: a batch takes the seqs after the last one and moves the head in the same transaction, or
///   rolls back and takes none.
/// - `clew_events` (seq → stream, type, time, envelope, payload), indexed by (stream, seq) and by
///   (type, time). One `INSERT … SELECT FROM unnest(…)` per batch, never one statement per event.
/// - `clew_batches` (batch id → first and last seq, root): what makes a retried batch land once, and
///   the roots a replica checks its copy against.
/// - `clew_erasures` (seq → the seq of the `ledger.payloads_erased` event that removed its payload,
///   set to NULL in `clew_events` in the same transaction): what every replica erases in turn.
/// - `clew_checkpoints` (tree size → signed checkpoint, JSON), shared by every host.
///
/// Settings every host shares (the retention policy) are `setting.*` rows of `clew_meta`.
///
/// Each commit notifies channel `clew_log` with the new last seq; followers LISTEN on it.
public final class PostgresLog: SharedLog {
    public let id: String
    public let location: String
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger
    private let closed = Atomic<Bool>(false)
    private let watch = ConnectionWatch()
    /// How long an append keeps retrying through a lost connection or a restarting server.
    public static let retryWindow: Duration = .seconds(60)
    static let channel = "clew_log"
    static let schemaLock: Int64 = 0x636c_6577  // "clew": serialises concurrent schema creation

    /// Where the server is (for the leadership's connection of its own).
    private let address: PostgresLocation

    private init(id: String, address: PostgresLocation, client: PostgresClient, runner: Task<Void, Never>, logger: Logger) {
        self.id = id
        self.address = address
        self.location = address.description
        self.client = client
        self.runner = runner
        self.logger = logger
    }

    /// Connects to the log at `location`.
    /// - Parameter create: create the tables (and the log's identity) when the database has none.
    /// - Throws: ``LedgerError`` `.unavailable` when the server cannot be reached or refuses the login
    ///   (with the server's reason), `.notALedger` when the database holds no Clew log and `create` is
    ///   false, `.unsupportedFormat` for a log of another format.
    public static func connect(
        _ location: PostgresLocation, create: Bool,
        logger: Logger = Logger(label: "clew.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> PostgresLog {
        let tls = try clientTLS(location)
        // One connection first, so a wrong host, password or database is reported as the server says it.
        let id = try await withConnection(to: location, logger: logger) {
            try await prepareSchema($0, location: location, create: create, logger: logger)
        }
        var config = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: tls)
        config.options.maximumConnections = 8
        config.options.connectTimeout = .seconds(10)
        // A host cut off in the middle of an append would hold the head lock, and stall every writer
        // of every host, until the server noticed the connection was gone (TCP keepalive: hours). An
        // append's statements follow each other at once, so the server ends a session that has sat
        // in a transaction for 5 s, releasing the lock; the cut-off host's retry finds its batch
        // rolled back.
        config.options.additionalStartupParameters = [("idle_in_transaction_session_timeout", "\(Self.idleInTransactionMillis)")]
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        let runner = Task { await client.run() }
        return PostgresLog(id: id, address: location, client: client, runner: runner, logger: logger)
    }

    /// How long the server lets an append's session sit in its transaction before ending it.
    static let idleInTransactionMillis = 5_000

    /// Runs `body` on a connection of its own to `location` (not from a pool), closed afterwards.
    /// - Throws: ``LedgerError`` `.unavailable` with the server's reason when it cannot connect.
    package static func withConnection<T>(
        to location: PostgresLocation, logger: Logger, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let c: PostgresConnection
        do {
            var config = PostgresConnection.Configuration(
                host: location.host, port: location.port, username: location.user, password: location.password,
                database: location.database, tls: try connectionTLS(location))
            config.options.connectTimeout = .seconds(10)
            c = try await PostgresConnection.connect(configuration: config, id: 0, logger: logger)
        } catch {
            throw LedgerError(.unavailable, "cannot connect to PostgreSQL at \(location): \(describe(error))")
        }
        do {
            let value = try await body(c)
            try? await c.close()
            return value
        } catch {
            try? await c.close()
            throw error
        }
    }

    public func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        runner.cancel()
    }

    // MARK: Schema

    /// Creates or upgrades the tables when they need it, then reads the ledger's id.
    ///
    /// A ledger already prepared runs no DDL at all: many hosts connect to one log while others append,
    /// and a statement such as `CREATE INDEX IF NOT EXISTS` or `ALTER TABLE` takes a table lock even when
    /// it has nothing to do, which deadlocked with an appender's row locks (seen in CI: two hosts racing
    /// for a lease, one refused with `40P01`). Creation and upgrade happen under one advisory lock, look
    /// again once they hold it, and an upgrade takes its exclusive table lock before anything else.
    private static func prepareSchema(_ c: PostgresConnection, location: PostgresLocation, create: Bool, logger: Logger) async throws -> String {
        func exists(_ table: String, on c: PostgresConnection) async throws -> Bool {
            try await c.query("SELECT to_regclass(\(table)) IS NOT NULL", logger: logger).collect().first?.decode(Bool.self) ?? false
        }
        do {
            let prepared = try await exists("clew_erasures", on: c)
            if !prepared, try await create ? true : exists("clew_meta", on: c) {
                try await c.withTransaction(logger: logger) { c in
                    try await c.query("SELECT pg_advisory_xact_lock(\(schemaLock))", logger: logger)
                    if try await exists("clew_erasures", on: c) { return }  // another process prepared it meanwhile
                    if try await exists("clew_events", on: c) {
                        try await c.query("LOCK TABLE clew_events IN ACCESS EXCLUSIVE MODE", logger: logger)
                        for statement in additions { try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                        return
                    }
                    guard create else { return }
                    for statement in schema { try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                    let created = ISO8601DateFormatter().string(from: Date())
                    let newID = UUID().uuidString.lowercased()
                    let version = String(SharedLogFormat.version)
                    try await c.query(
                        """
                        INSERT INTO clew_meta (key, value) VALUES ('format', \(SharedLogFormat.name)), ('version', \(version)),
                        ('id', \(newID)), ('created', \(created)) ON CONFLICT (key) DO NOTHING
                        """, logger: logger)
                    let empty = ByteBuffer(bytes: SharedLogHead().root.bytes)
                    try await c.query(
                        "INSERT INTO clew_head (one, last_seq, frontier, root) VALUES (true, 0, ''::bytea, \(empty)) ON CONFLICT (one) DO NOTHING",
                        logger: logger)
                }
            }
            guard try await exists("clew_meta", on: c) else {
                throw LedgerError(.notALedger, "the database \(location) holds no Clew ledger; create one with `clew init --ledger \(location)`")
            }
            var meta: [String: String] = [:]
            for try await (key, value) in try await c.query("SELECT key, value FROM clew_meta", logger: logger).decode((String, String).self) {
                meta[key] = value
            }
            guard meta["format"] == SharedLogFormat.name, let id = meta["id"], let version = meta["version"].flatMap(UInt32.init) else {
                throw LedgerError(.notALedger, "the database \(location) has a clew_meta table that does not describe a Clew ledger")
            }
            guard version == SharedLogFormat.version else {
                throw LedgerError(
                    .unsupportedFormat, "the ledger in \(location) is of format \(version); this build reads format \(SharedLogFormat.version)")
            }
            return id
        } catch let error as LedgerError {
            throw error
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError as? LedgerError { throw inner }
            throw LedgerError(.unavailable, "cannot prepare the Clew tables in \(location): \(describe(error))")
        } catch {
            throw LedgerError(.unavailable, "cannot read the Clew tables in \(location): \(describe(error))")
        }
    }

    /// The tables of a new log (the payload column admits NULL: an erased payload).
    static let schema = [
        "CREATE TABLE IF NOT EXISTS clew_meta (key text PRIMARY KEY, value text NOT NULL)",
        """
        CREATE TABLE IF NOT EXISTS clew_head (one boolean PRIMARY KEY CHECK (one), last_seq bigint NOT NULL,
        frontier bytea NOT NULL, root bytea NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS clew_events (seq bigint PRIMARY KEY, stream text NOT NULL, type text NOT NULL,
        time_us bigint NOT NULL, envelope bytea NOT NULL, payload bytea)
        """,
        "CREATE INDEX IF NOT EXISTS clew_events_stream ON clew_events (stream, seq)",
        "CREATE INDEX IF NOT EXISTS clew_events_type_time ON clew_events (type, time_us)",
        """
        CREATE TABLE IF NOT EXISTS clew_batches (id uuid PRIMARY KEY, first_seq bigint NOT NULL, last_seq bigint NOT NULL UNIQUE,
        root bytea NOT NULL, committed timestamptz NOT NULL DEFAULT now())
        """,
    ] + additions.dropFirst()

    /// What logs created before shared erasure and checkpoints lack: run, under an exclusive lock on
    /// `clew_events`, on connecting when `clew_erasures` is missing.
    static let additions = [
        "ALTER TABLE clew_events ALTER COLUMN payload DROP NOT NULL",
        "CREATE TABLE IF NOT EXISTS clew_erasures (seq bigint PRIMARY KEY, record_seq bigint NOT NULL)",
        "CREATE INDEX IF NOT EXISTS clew_erasures_record ON clew_erasures (record_seq)",
        "CREATE TABLE IF NOT EXISTS clew_checkpoints (tree_size bigint PRIMARY KEY, checkpoint text NOT NULL)",
    ]

    // MARK: Append

    public func append(
        _ records: [SharedRecord], batch: UUID, expecting expectations: [StreamExpectation], erasing: [UInt64]
    ) async throws -> Range<UInt64> {
        if records.isEmpty { return 0..<0 }
        if !erasing.isEmpty, records.count != 1 {
            throw LedgerError(.invalidInput, "an erasure is appended as one event (its record), not \(records.count)")
        }
        // Inserting runs at ~10 µs a row here; the deadline leaves room for a loaded server.
        return try await retrying("appending to", limit: Self.attemptDeadline + .milliseconds(records.count)) { attempt in
            try await self.client.withConnection { c in
                attempt.use(c, self.watch)
                return try await self.transaction(c) {
                    try await self.appendLocked(records, batch: batch, expectations: expectations, erasing: erasing, $0)
                }
            }
        }
    }

    /// Runs `body` between BEGIN and COMMIT. A ``LedgerError`` from `body` (a refused condition) rolls
    /// back; any other failure closes the connection instead, which ends the transaction on the server
    /// as surely, without sending anything more down a connection that may be dead (a ROLLBACK written
    /// to a connection the server had just terminated never completed: the append hung).
    private func transaction<T>(_ c: PostgresConnection, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await c.query("BEGIN", logger: logger)
        do {
            let value = try await body(c)
            try await c.query("COMMIT", logger: logger)
            return value
        } catch let error as LedgerError {
            if !c.isClosed { _ = try? await c.query("ROLLBACK", logger: logger) }
            throw error
        } catch {
            if !c.isClosed { try? await c.close() }
            throw error
        }
    }

    /// Runs one attempt of `body` after another until it succeeds, fails for a reason trying again
    /// cannot fix (a ``LedgerError``, an SQL error), or ``retryWindow`` has passed. An attempt ends as
    /// a lost connection as soon as the connection it uses closes, whatever it was waiting for: a query
    /// written to a connection the server had just terminated was seen to wait forever. An attempt past
    /// `limit` is ended the same way, its connection closed.
    private func retrying<T: Sendable>(
        _ what: String, limit: Duration = PostgresLog.attemptDeadline, _ body: @escaping @Sendable (Attempt) async throws -> T
    ) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + Self.retryWindow
        var pause: Duration = .milliseconds(50)
        while true {
            try checkOpen()
            do { return try await Attempt.run(limit: limit, body) } catch let error as LedgerError {
                throw error
            } catch {
                guard Self.isTransient(error), clock.now + pause < deadline else {
                    throw LedgerError(.unavailable, "\(what) \(location) failed: \(Self.describe(error))")
                }
                logger.warning("\(what) \(location) failed, retrying", metadata: ["error": "\(Self.describe(error))"])
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    /// How long one attempt may take before it is given up (appends add a millisecond per event). Long:
    /// waiting behind other hosts' appends for the head row is queueing, not a fault.
    static let attemptDeadline: Duration = .seconds(60)

    /// The transaction's three statements between BEGIN and COMMIT (five round trips in all; one
    /// statement each for the lock, the retry check, the stream check, the rows, the head, the batch
    /// and the notification made a single-event append 5x a one-row INSERT).
    private func appendLocked(
        _ records: [SharedRecord], batch: UUID, expectations: [StreamExpectation], erasing: [UInt64], _ c: PostgresConnection
    ) async throws -> Range<UInt64> {
        // 1. The head, locked.
        guard let row = try await c.query("SELECT last_seq, frontier FROM clew_head WHERE one FOR UPDATE", logger: logger).collect().first else {
            throw LedgerError(.corrupted, "\(location) has no clew_head row")
        }
        let (lastSeq, frontier) = try row.decode((Int64, ByteBuffer).self)
        // 2. This batch's row (a first attempt that committed) and the expected stream's last seq, in a
        //    statement of their own: under READ COMMITTED a statement sees what was committed when it
        //    began, so checks made in the locking statement itself saw the log as it was before the wait
        //    for the lock (two compare-and-appends both won in the tests).
        let expected = expectations.map(\.stream)
        guard
            let checks = try await c.query(
                """
                SELECT (SELECT first_seq FROM clew_batches WHERE id = \(batch)), (SELECT last_seq FROM clew_batches WHERE id = \(batch)),
                (SELECT array_agg((SELECT coalesce(max(seq), 0) FROM clew_events WHERE stream = u.s) ORDER BY u.o)
                 FROM unnest(\(expected)::text[]) WITH ORDINALITY AS u(s, o))
                """, logger: logger
            ).collect().first
        else {
            throw LedgerError(.corrupted, "\(location) answered no row to the append's checks")
        }
        let (doneFirst, doneLast, streamLasts) = try checks.decode((Int64?, Int64?, [Int64]?).self)
        if let doneFirst, let doneLast { return UInt64(doneFirst)..<UInt64(doneLast) + 1 }
        for (e, last) in zip(expectations, streamLasts ?? []) where UInt64(last) != e.lastSeq {
            guard let scope = e.scope, UInt64(last) > e.lastSeq else {
                throw LedgerError(
                    .conflict,
                    "stream \(e.stream)'s last event is \(last == 0 ? "none" : "seq \(last)"), not \(e.lastSeq == 0 ? "none" : "seq \(e.lastSeq)")", stream: e.stream)
            }
            // The head is locked: no event can land in the stream while its newer ones are read.
            let rows = try await c.query(
                "SELECT seq, payload FROM clew_events WHERE stream = \(e.stream) AND seq > \(Int64(clamping: e.lastSeq)) ORDER BY seq", logger: logger)
            var newer: [(Int64, ByteBuffer?)] = []
            for try await row in rows.decode((Int64, ByteBuffer?).self) { newer.append(row) }
            for (seq, payload) in newer where scope.contains(payload: Data(payload.map { Array(buffer: $0) } ?? []), erased: payload == nil) {
                throw LedgerError(
                    .conflict,
                    "stream \(e.stream)'s event \(seq), after seq \(e.lastSeq), concerns \(scope.field) \(scope.values.sorted().joined(separator: ", "))",
                    stream: e.stream)
            }
        }

        if let beyond = erasing.first(where: { $0 < 1 || $0 > UInt64(lastSeq) }) {
            throw LedgerError(.outOfRange, "there is no event \(beyond) (the log has \(lastSeq) events); nothing was erased")
        }
        var head = try SharedLogHead(size: UInt64(lastSeq), bytes: Array(buffer: frontier))
        var seqs: [Int64] = [], streams: [String] = [], types: [String] = [], times: [Int64] = []
        var envelopes: [ByteBuffer] = [], payloads: [ByteBuffer] = []
        for r in records {
            seqs.append(Int64(head.append(r)))
            streams.append(r.stream)
            types.append(r.type)
            times.append(r.timestampMicros)
            envelopes.append(ByteBuffer(bytes: r.envelope))
            payloads.append(ByteBuffer(bytes: r.payload))
        }
        // 3. The rows, the head, the batch and the notification in one statement.
        let root = ByteBuffer(bytes: head.root.bytes)
        let size = Int64(head.size)
        if !erasing.isEmpty {
            // The record and the erasure commit together: a replica that copies the record finds what it erased.
            let erased = erasing.map { Int64($0) }
            try await c.query(
                """
                WITH gone AS (UPDATE clew_events SET payload = NULL WHERE seq = ANY(\(erased)::bigint[]))
                INSERT INTO clew_erasures (seq, record_seq) SELECT unnest(\(erased)::bigint[]), \(lastSeq + 1)
                ON CONFLICT (seq) DO NOTHING
                """, logger: logger)
        }
        try await c.query(
            """
            WITH events AS (
              INSERT INTO clew_events (seq, stream, type, time_us, envelope, payload)
              SELECT * FROM unnest(\(seqs)::bigint[], \(streams)::text[], \(types)::text[], \(times)::bigint[], \(envelopes)::bytea[], \(payloads)::bytea[])),
            head AS (UPDATE clew_head SET last_seq = \(size), frontier = \(ByteBuffer(bytes: head.bytes)), root = \(root) WHERE one),
            batch AS (INSERT INTO clew_batches (id, first_seq, last_seq, root) VALUES (\(batch), \(lastSeq + 1), \(size), \(root)))
            SELECT pg_notify(\(Self.channel), \(String(size)))
            """, logger: logger)
        return UInt64(lastSeq) + 1..<head.size + 1
    }

    // MARK: Read

    public func records(after seq: UInt64, limit: Int) async throws -> [SharedRecord] {
        try await reading("reading events") { c in
            var out: [SharedRecord] = []
            let rows = try await c.query(
                """
                SELECT seq, stream, type, time_us, envelope, payload FROM clew_events
                WHERE seq > \(Int64(clamping: seq)) ORDER BY seq LIMIT \(Int64(limit))
                """, logger: self.logger)
            for try await (s, stream, type, time, envelope, payload) in rows.decode((Int64, String, String, Int64, ByteBuffer, ByteBuffer?).self) {
                out.append(
                    SharedRecord(
                        seq: UInt64(s), envelope: Array(buffer: envelope), payload: payload.map { Array(buffer: $0) } ?? [],
                        payloadErased: payload == nil, stream: stream, type: type, timestampMicros: time))
            }
            return out
        }
    }

    public func batchRoots(_ sizes: ClosedRange<UInt64>) async throws -> [(size: UInt64, root: MerkleHash)] {
        try await reading("reading batch roots") { c in
            var out: [(UInt64, MerkleHash)] = []
            let rows = try await c.query(
                """
                SELECT last_seq, root FROM clew_batches WHERE last_seq >= \(Int64(clamping: sizes.lowerBound))
                AND last_seq <= \(Int64(clamping: sizes.upperBound)) ORDER BY last_seq
                """, logger: self.logger)
            for try await (size, root) in rows.decode((Int64, ByteBuffer).self) {
                out.append((UInt64(size), try Self.hash(root, "the root of the batch ending at \(size)")))
            }
            return out
        }
    }

    public func head() async throws -> (size: UInt64, root: MerkleHash) {
        try await reading("reading the head") { c in
            guard let row = try await c.query("SELECT last_seq, root FROM clew_head WHERE one", logger: self.logger).collect().first else {
                throw LedgerError(.corrupted, "\(self.location) has no clew_head row")
            }
            let (size, root) = try row.decode((Int64, ByteBuffer).self)
            return (UInt64(size), try Self.hash(root, "the head's root"))
        }
    }

    public func erasures(recordedIn records: ClosedRange<UInt64>) async throws -> [UInt64: [UInt64]] {
        try await reading("reading erasures") { c in
            var out: [UInt64: [UInt64]] = [:]
            let rows = try await c.query(
                """
                SELECT record_seq, seq FROM clew_erasures WHERE record_seq >= \(Int64(clamping: records.lowerBound))
                AND record_seq <= \(Int64(clamping: records.upperBound)) ORDER BY record_seq, seq
                """, logger: self.logger)
            for try await (record, seq) in rows.decode((Int64, Int64).self) { out[UInt64(record), default: []].append(UInt64(seq)) }
            return out
        }
    }

    // MARK: Checkpoints and settings

    public func storeCheckpoint(_ checkpoint: SignedCheckpoint) async throws {
        let json = String(decoding: try JSONEncoder().encode(checkpoint), as: UTF8.self)
        let size = Int64(clamping: checkpoint.treeSize)
        let stored = try await retrying("storing a checkpoint in") { attempt in
            try await self.client.withConnection { c in
                attempt.use(c, self.watch)
                return try await c.query(
                    """
                    INSERT INTO clew_checkpoints (tree_size, checkpoint) SELECT \(size), \(json)
                    WHERE \(size) <= (SELECT last_seq FROM clew_head WHERE one)
                    ON CONFLICT (tree_size) DO UPDATE SET checkpoint = EXCLUDED.checkpoint RETURNING tree_size
                    """, logger: self.logger
                ).collect().count
            }
        }
        if stored == 0 {
            throw LedgerError(.outOfRange, "\(location) has fewer than \(checkpoint.treeSize) events; the checkpoint was not stored")
        }
    }

    public func checkpoints() async throws -> [SignedCheckpoint] {
        let rows = try await reading("reading checkpoints") { c in
            var out: [(Int64, String)] = []
            let rows = try await c.query("SELECT tree_size, checkpoint FROM clew_checkpoints ORDER BY tree_size", logger: self.logger)
            for try await row in rows.decode((Int64, String).self) { out.append(row) }
            return out
        }
        return try rows.map { size, json in
            do { return try JSONDecoder().decode(SignedCheckpoint.self, from: Data(json.utf8)) } catch {
                throw LedgerError(.corrupted, "\(location)'s checkpoint at tree size \(size) does not decode: \(error)")
            }
        }
    }

    public func setting(_ key: String) async throws -> String? {
        try await reading("reading a setting") { c in
            try await c.query("SELECT value FROM clew_meta WHERE key = \("setting." + key)", logger: self.logger).collect().first?.decode(String.self)
        }
    }

    public func setSetting(_ key: String, to value: String) async throws {
        try await retrying("storing a setting in") { attempt in
            try await self.client.withConnection { c in
                attempt.use(c, self.watch)
                try await c.query(
                    """
                    INSERT INTO clew_meta (key, value) VALUES (\("setting." + key), \(value))
                    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
                    """, logger: self.logger)
            }
        }
    }

    private static func hash(_ buffer: ByteBuffer, _ what: String) throws -> MerkleHash {

        do { return try MerkleHash(bytes: Array(buffer: buffer)) } catch {
            throw LedgerError(.corrupted, "\(what) is \(buffer.readableBytes) bytes, not a 32-byte hash")
        }
    }

    /// Runs a read, retrying through lost connections within ``retryWindow``.
    private func reading<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await retrying("\(what) from") { attempt in
            try await self.client.withConnection { c in
                attempt.use(c, self.watch)
                return try await body(c)
            }
        }
    }

    // MARK: Follow

    public func appends() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let task = Task { [client, logger, location] in
            var pause: Duration = .milliseconds(100)
            while !Task.isCancelled, !closed.load(ordering: .acquiring) {
                do {
                    try await client.withConnection { c in
                        try await c.listen(on: Self.channel) { notifications in
                            continuation.yield()  // whatever was appended before LISTEN took effect
                            pause = .milliseconds(100)
                            for try await _ in notifications { continuation.yield() }
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("listening on \(location) failed, reconnecting", metadata: ["error": "\(Self.describe(error))"])
                }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: Leadership

    /// A session-level advisory lock, held on a connection of its own for as long as this process
    /// leads. The session asks the server to probe it (TCP keepalives every 2 s after 5 s idle, 3
    /// misses), so a leader cut off or killed loses the lock within ~11 s; the leader probes the server
    /// every 2 s and steps down (cancels `body`) when an answer does not come within 3 s, before
    /// the server would let another process lead.
    public func lead(_ name: String, poll: Duration, _ body: @escaping @Sendable () async -> Void) async throws -> Bool {
        var key: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the name: the lock's key
        for byte in "clew-leader:\(name)".utf8 { key = (key ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let lockKey = Int64(bitPattern: key)
        while true {
            try checkOpen()
            try Task.checkCancellation()
            do {
                return try await Self.withConnection(to: address, logger: logger) { c in
                    for setting in ["tcp_keepalives_idle = 5", "tcp_keepalives_interval = 2", "tcp_keepalives_count = 3"] {
                        try await c.query(PostgresQuery(unsafeSQL: "SET \(setting)"), logger: logger)
                    }
                    while try await c.query("SELECT pg_try_advisory_lock(\(lockKey))", logger: logger).collect().first?.decode(Bool.self) != true {
                        try await Task.sleep(for: poll)
                    }
                    return await withTaskGroup(of: Bool.self) { group in
                        group.addTask {
                            await body()
                            return false
                        }
                        group.addTask { [watch, logger] in
                            while !Task.isCancelled {
                                try? await Task.sleep(for: .seconds(2))
                                if Task.isCancelled { break }
                                do {
                                    try await Attempt.run(limit: .seconds(3)) { attempt in
                                        attempt.use(c, watch)
                                        try await c.query("SELECT 1", logger: logger)
                                    }
                                } catch {
                                    logger.warning("lost the leadership \(name): \(Self.describe(error))")
                                    return true
                                }
                            }
                            return false
                        }
                        let lost = await group.next() ?? false
                        group.cancelAll()
                        return lost
                    }
                }
            } catch let error as LedgerError where error.code == .unavailable {
                logger.warning("cannot reach \(location) to lead \(name); trying again", metadata: ["error": "\(error)"])
            } catch where Self.isTransient(error) {
                logger.warning("the leadership connection to \(location) failed; trying again", metadata: ["error": "\(Self.describe(error))"])
            }
            try await Task.sleep(for: poll)
        }
    }

    // MARK: Errors

    private func checkOpen() throws {
        if closed.load(ordering: .acquiring) { throw LedgerError(.closed, "the connection to \(location) was closed") }
    }

    /// Whether trying again may succeed: the connection, not the statement, failed.
    static func isTransient(_ error: any Error) -> Bool {
        if error is Attempt.Lost { return true }
        guard let e = error as? PSQLError else { return false }
        switch e.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection: return true
        case .server:
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 40001/40P01 retry.
            let state = e.serverInfo?[.sqlState] ?? ""
            return ["57P01", "57P02", "57P03", "40001", "40P01"].contains(state) || state.hasPrefix("08")
        default: return false
        }
    }

    /// What went wrong, as the server or the connection said it (PSQLError's description hides it).
    static func describe(_ error: any Error) -> String {
        guard let e = error as? PSQLError else { return "\(error)" }
        if let info = e.serverInfo, let message = info[.message] {
            return "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        if let underlying = e.underlying { return "\(e.code): \(underlying)" }
        return "\(e.code)"
    }

    // MARK: TLS

    private static func clientTLS(_ location: PostgresLocation) throws -> PostgresClient.Configuration.TLS {
        switch location.tls {
        case .disable: return .disable
        case .prefer: return .prefer(unverified())
        case .require: return .require(unverified())
        case .verifyFull: return .require(.makeClientConfiguration())
        }
    }

    private static func connectionTLS(_ location: PostgresLocation) throws -> PostgresConnection.Configuration.TLS {
        do {
            switch location.tls {
            case .disable: return .disable
            case .prefer: return .prefer(try NIOSSLContext(configuration: unverified()))
            case .require: return .require(try NIOSSLContext(configuration: unverified()))
            case .verifyFull: return .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        } catch {
            throw LedgerError(.invalidInput, "cannot set up TLS for \(location): \(error)")
        }
    }

    /// libpq's `prefer` and `require`: encrypted, the certificate not checked.
    private static func unverified() -> TLSConfiguration {
        var c = TLSConfiguration.makeClientConfiguration()
        c.certificateVerification = .none
        return c
    }
}

/// One attempt at a query or transaction, which ends with the body's result, or as ``Lost`` as soon
/// as the connection it uses closes or its time is up (then the connection is closed and the body's
/// task, which postgres-nio may never answer, is cancelled and left behind).
final class Attempt: Sendable {
    struct Lost: Error, CustomStringConvertible {
        var description: String
    }

    private struct State {
        var done = false
        var connection: (PostgresConnection, ConnectionWatch)?
        var timer: Task<Void, Never>?
        var work: Task<Void, Never>?
    }

    private let state = Mutex(State())
    private let fail: @Sendable (Lost) -> Void

    private init(fail: @escaping @Sendable (Lost) -> Void) { self.fail = fail }

    static func run<T: Sendable>(limit: Duration, _ body: @escaping @Sendable (Attempt) async throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let attempt = Attempt { continuation.resume(throwing: $0) }
            let work = Task {
                let result: Result<T, any Error>
                do { result = .success(try await body(attempt)) } catch { result = .failure(error) }
                if attempt.finish() { continuation.resume(with: result) }
            }
            let timer = Task {
                try? await Task.sleep(for: limit)
                if !Task.isCancelled { attempt.lose("no answer within \(limit)") }
            }
            let finished = attempt.state.withLock { s in
                s.work = work
                s.timer = timer
                return s.done
            }
            if finished { timer.cancel() }
        }
    }

    /// The connection the attempt uses (leased from the pool): its closing ends the attempt.
    func use(_ c: PostgresConnection, _ watch: ConnectionWatch) {
        let finished = state.withLock { s in
            s.connection = (c, watch)
            return s.done
        }
        if finished {
            Task { try? await c.close() }
            return
        }
        watch.add(self, on: c)
    }

    /// True for the first of the body and a loss to end the attempt.
    private func finish() -> Bool {
        let (first, timer, connection) = state.withLock { s -> (Bool, Task<Void, Never>?, (PostgresConnection, ConnectionWatch)?) in
            if s.done { return (false, nil, nil) }
            s.done = true
            return (true, s.timer, s.connection)
        }
        timer?.cancel()
        if let (c, watch) = connection { watch.remove(self, from: c) }
        return first
    }

    func lose(_ why: String) {
        let connection = state.withLock { $0.connection }
        guard finish() else { return }
        state.withLock { $0.work }?.cancel()
        if let (c, _) = connection { Task { try? await c.close() } }
        fail(Lost(description: why))
    }
}

/// The attempts running on each pooled connection, ended when it closes. One close callback per
/// connection, registered when it is first used (a callback per attempt would pile up on a connection
/// the pool keeps for hours).
final class ConnectionWatch: Sendable {
    private let attempts = Mutex<[ObjectIdentifier: [ObjectIdentifier: Attempt]]>([:])

    func add(_ attempt: Attempt, on c: PostgresConnection) {
        let key = ObjectIdentifier(c)
        let first = attempts.withLock { all in
            let first = all[key] == nil
            all[key, default: [:]][ObjectIdentifier(attempt)] = attempt
            return first
        }
        guard first else { return }
        c.closeFuture.whenComplete { _ in
            let running = self.attempts.withLock { $0.removeValue(forKey: key) } ?? [:]
            for attempt in running.values { attempt.lose("the connection closed") }
        }
    }

    func remove(_ attempt: Attempt, from c: PostgresConnection) {
        _ = attempts.withLock { $0[ObjectIdentifier(c)]?.removeValue(forKey: ObjectIdentifier(attempt)) }
    }
}

/// The shared log's format, stored in `clew_meta`.
enum SharedLogFormat {
    static let name = "clew-ledger"
    static let version: UInt32 = 2
}
