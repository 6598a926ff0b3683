import ClewPostgres
import ClewTestSupport
import Foundation
import Testing

@testable import ClewLedger

@Suite("PostgreSQL shared log")
struct SharedLogTests {
    @Test("two hosts appending at once get gap-free seqs, and both replicas hold the same events and the server's root")
    func concurrentHosts() async throws {
        try await withTwoHosts { a, b in
            #expect(a.id == b.id)
            let ranges = try await withThrowingTaskGroup(of: [Range<UInt64>].self) { group in
                for writer in 0..<8 {
                    let host = writer % 2 == 0 ? a : b
                    group.addTask {
                        var out: [Range<UInt64>] = []
                        for batch in 0..<15 {
                            let events = (0..<(1 + (writer + batch) % 5)).map { event(writer * 1000 + batch * 10 + $0, stream: "run/etl/w\(writer)") }
                            out.append(try await host.append(contentsOf: events))
                        }
                        return out
                    }
                }
                var all: [Range<UInt64>] = []
                for try await r in group { all += r }
                return all
            }
            let total = ranges.reduce(0) { $0 + UInt64($1.count) }
            // Every acknowledged batch got its own consecutive seqs, and together they are 1...total.
            #expect(ranges.sorted { $0.lowerBound < $1.lowerBound }.reduce(UInt64(1)) { next, r in r.lowerBound == next ? r.upperBound : 0 } == total + 1)
            try await a.pull()
            try await b.pull()
            #expect(try a.lastSeq == total)
            #expect(try b.lastSeq == total)
            #expect(try a.events(1...total) == b.events(1...total))
            let head = try await a.sharedLog!.head()
            #expect(head.size == total)
            #expect(try a.root().hash == head.root)
            #expect(try b.root().hash == head.root)
            #expect(try a.verify().isValid)
            let shared = try await b.verifyShared()
            #expect(shared.isValid, "\(shared.problems)")
            #expect(shared.batchesChecked == ranges.count)
            // A stream's events are where the stream index says, on both hosts.
            #expect(try a.seqs(inStream: "run/etl/w3") == b.seqs(inStream: "run/etl/w3"))
        }
    }

    @Test("compare-and-append scoped to chunks: other chunks of the stream moving is no conflict, the chunk read or an unscoped event is (both stores)")
    func scopedCompareAndAppend() async throws {
        try await withTwoHosts { a, b in
            let problems = try await scopedExpectationProblems(writer: a, other: b)
            #expect(problems.isEmpty, "\(problems)")
        }
        try await withTemporaryDirectory { dir in
            let local = try Ledger.openOrCreate(at: dir.appendingPathComponent("l"))
            defer { local.close() }
            let problems = try await scopedExpectationProblems(writer: local, other: local)
            #expect(problems.isEmpty, "\(problems)")
        }
    }

    @Test("a batch sent again with the same id (its commit's outcome unknown) lands once")

    func retriedBatch() async throws {
        try await TestServer.withDatabase { url in
            let log = try await PostgresLog.connect(try PostgresLocation(url), create: true)
            defer { log.close() }
            let records = try Ledger.sharedRecords((0..<5).map { event($0) }, now: 1_800_000_000_000_000)
            let id = UUID()
            let first = try await log.append(records, batch: id, expecting: [])
            let again = try await log.append(records, batch: id, expecting: [])
            #expect(first == 1..<6)
            #expect(again == first)
            #expect(try await log.head().size == 5)
            #expect(try await log.append(records, batch: UUID(), expecting: []) == 6..<11)
        }
    }

    @Test("connections cut in the middle of appends: every acknowledged event is there once, and the log verifies")
    func cutConnections() async throws {
        try await TestServer.withDatabase { url in
            try await withTemporaryDirectory { dir in
                let host = try await openHost(url, dir, create: true)
                defer { host.close() }
                let database = try PostgresLocation(url).database
                let writer = Task {
                    var acknowledged: UInt64 = 0
                    for i in 0..<120 {
                        acknowledged += UInt64(try await host.append(contentsOf: (0..<4).map { event(i * 4 + $0) }).count)
                    }
                    return acknowledged
                }
                // Terminate the ledger's connections to this test's database several times while it appends.
                for _ in 0..<6 {
                    try await Task.sleep(for: .milliseconds(40))
                    try await TestServer.query(
                        TestServer.admin,
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(database)' AND pid <> pg_backend_pid()")
                }
                let acknowledged = try await writer.value
                #expect(acknowledged == 480)
                #expect(try await host.sharedLog!.head().size == 480)
                #expect(try host.lastSeq == 480)
                #expect(try host.verify().isValid)
                #expect(try await host.verifyShared().isValid)
            }
        }
    }

    @Test("compare-and-append: of six writers on two hosts that read the same stream state, exactly one appends")
    func compareAndAppend() async throws {
        try await withTwoHosts { a, b in
            try await a.append(event(0, stream: "other"))
            let lease = "lease/sales/2026-11-21"
            let seen = try a.seqs(inStream: lease).last ?? 0
            #expect(seen == 0)
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                // Three contenders per host, so most wait for the head lock while another holds it.
                for (name, host) in [("a1", a), ("b1", b), ("a2", a), ("b2", b), ("a3", a), ("b3", b)] {
                    group.addTask {
                        do {
                            try await host.append(contentsOf: [event(1, stream: lease, payload: #"{"holder":"\#(name)"}"#)], ifStream: lease, lastSeqIs: seen)
                            return "won"
                        } catch LedgerError.Code.conflict {
                            return "conflict"
                        }
                    }
                }
                var out: [String] = []
                for try await o in group { out.append(o) }
                return out.sorted()
            }
            #expect(outcomes == ["conflict", "conflict", "conflict", "conflict", "conflict", "won"])
            try await a.pull()
            #expect(try a.seqs(inStream: lease).count == 1)
            // The loser, told why, retries from what it now reads and succeeds.
            let now = try a.seqs(inStream: lease).last!
            try await a.append(contentsOf: [event(2, stream: lease)], ifStream: lease, lastSeqIs: now)
            await #expect(throws: LedgerError.self) { try await b.append(contentsOf: [event(3, stream: lease)], ifStream: lease, lastSeqIs: now) }
        }
    }

    @Test("a follower on one host sees another host's append at once (LISTEN/NOTIFY)")
    func followAcrossHosts() async throws {
        try await withTwoHosts { a, b in
            try await a.append(event(0))
            // A long poll interval: only the notification can wake the follower in time.
            let stream = b.follow(after: 1, pollInterval: .seconds(3600))
            let received = Task {
                var it = stream.makeAsyncIterator()
                return try await it.next()
            }
            try await Task.sleep(for: .milliseconds(200))
            let seq = try await a.append(event(1, stream: "run/etl/2"))
            let got = try await withThrowingTaskGroup(of: Event?.self) { group in
                group.addTask { try await received.value }
                group.addTask {
                    try await Task.sleep(for: .seconds(20))
                    received.cancel()
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
            #expect(got?.seq == seq)
            #expect(got?.stream == "run/etl/2")
        }
    }

    @Test("a replicating host (as clew serve and the scheduler run) copies another host's appends as they are announced")
    func replicate() async throws {
        try await withTwoHosts { a, b in
            let replication = Task { await b.replicate(every: .seconds(3600)) }
            defer { replication.cancel() }
            for round in 1...3 {
                let seqs = try await a.append(contentsOf: (0..<5).map { event(round * 10 + $0) })
                let deadline = ContinuousClock.now + .seconds(20)
                while try b.lastSeq < seqs.upperBound - 1, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(try b.lastSeq == seqs.upperBound - 1, "round \(round)")
            }
            #expect(try b.root().hash == a.root().hash)
        }
    }

    @Test("rows changed on the server after they were appended are caught, by seq or by batch")
    func tamperedRows() async throws {
        try await TestServer.withDatabase { url in
            try await withTemporaryDirectory { dir in
                let a = try await openHost(url, dir.appendingPathComponent("a"), create: true)
                defer { a.close() }
                try await a.append(contentsOf: (0..<10).map { event($0) })
                try await a.append(contentsOf: (10..<20).map { event($0) })
                // A payload no longer matching its digest.
                try await TestServer.query(url, "UPDATE clew_events SET payload = convert_to('{\"i\":99}', 'UTF8') WHERE seq = 4")
                var report = try await a.verifyShared()
                #expect(report.problems.contains { $0.contains("event 4") && $0.contains("SHA-256") })
                await #expect(throws: LedgerError.self) { _ = try await openHost(url, dir.appendingPathComponent("b")) }
                try await TestServer.query(url, "UPDATE clew_events SET payload = convert_to('{\"i\":3,\"rows\":21}', 'UTF8') WHERE seq = 4")
                #expect(try await a.verifyShared().isValid)
                // An envelope changed (its actor's first letter): the batch's recorded root no longer holds.
                try await TestServer.query(
                    url, "UPDATE clew_events SET envelope = overlay(envelope placing 'X'::bytea from position('host-'::bytea in envelope) for 1) WHERE seq = 15")
                report = try await a.verifyShared()
                #expect(report.problems.contains { $0.contains("the batch ending at seq 20") })
                #expect(!report.replicaAgrees)
                do {
                    _ = try await openHost(url, dir.appendingPathComponent("c"))
                    Issue.record("a new replica copied a changed envelope")
                } catch let error as LedgerError {
                    #expect(error.code == .verificationFailed)
                    #expect(error.message.contains("at 20 events"))
                }
                // The replica that copied the rows before they changed still verifies on its own.
                #expect(try a.verify().isValid)
            }
        }
    }

    @Test("bad URLs, unreachable servers, wrong passwords and empty databases get errors that say what is wrong")
    func badLocations() async throws {
        for (url, fragment) in [
            ("postgres://127.0.0.1/db", "names no user"), ("postgres://u@127.0.0.1/", "names no database"),
            ("postgres://u@127.0.0.1:99999/db", "outside 1-65535"), ("postgres://u:secret@127.0.0.1/db?sslmode=maybe", "sslmode=maybe"),
            ("postgres://u@127.0.0.1/db?user=x", "unknown parameter user"), ("mysql://u@h/db", "not a PostgreSQL URL"),
        ] {
            do {
                _ = try PostgresLocation(url)
                Issue.record("\(url) was accepted")
            } catch let error as LedgerError {
                #expect(error.code == .invalidInput)
                #expect(error.message.contains(fragment), "\(error.message)")
                #expect(!error.message.contains("secret"))
            }
        }
        await #expect { _ = try await PostgresLog.connect(try PostgresLocation("postgres://clew:clew@127.0.0.1:1/clew?sslmode=disable"), create: false) } throws: {
            ($0 as? LedgerError)?.code == .unavailable && "\($0)".contains("cannot connect to PostgreSQL at postgres://clew@127.0.0.1:1/clew")
        }
        let admin = try PostgresLocation(TestServer.admin)
        let wrong = "postgres://\(admin.user):not-the-password@\(admin.host):\(admin.port)/\(admin.database)?sslmode=disable"
        await #expect { _ = try await PostgresLog.connect(try PostgresLocation(wrong), create: false) } throws: {
            ($0 as? LedgerError)?.code == .unavailable && "\($0)".contains("password authentication failed")
        }
        try await TestServer.withDatabase { url in
            await #expect { _ = try await PostgresLog.connect(try PostgresLocation(url), create: false) } throws: {
                ($0 as? LedgerError)?.code == .notALedger && "\($0)".contains("clew init")
            }
        }
    }

    @Test("a URL's parts are read as libpq reads them, and a location written out for another process reads back the same")
    func locations() throws {
        let l = try PostgresLocation("postgresql://ops%40team:p%3Aw%2Fd%40x@db.internal:5433/clew_prod?sslmode=verify-full")
        #expect(l.user == "ops@team")
        #expect(l.password == "p:w/d@x")
        #expect(l.host == "db.internal")
        #expect(l.port == 5433)
        #expect(l.database == "clew_prod")
        #expect(l.tls == .verifyFull)
        #expect(try PostgresLocation(l.connectionURL) == l)
        #expect("\(l)" == "postgres://ops@team@db.internal:5433/clew_prod?sslmode=verify-full")
        #expect(!"\(l)".contains("p:w"))
        let fromEnvironment = try PostgresLocation("postgres://clew@127.0.0.1/clew", environment: ["PGPASSWORD": "from-env"])
        #expect(fromEnvironment.password == "from-env")
        #expect(fromEnvironment.port == 5432)
        #expect(fromEnvironment.tls == .prefer)
    }

    @Test("hosts connecting (and creating) while others append never deadlock; a log of the older schema is upgraded once, under appends")
    func connectWhileAppending() async throws {
        // CI once saw `clew` on one host refused with 40P01: its connect ran DDL on a prepared log and
        // deadlocked with another host's append. A prepared log now runs no DDL; an upgrade locks first.
        for older in [false, true] {
            try await TestServer.withDatabase { url in
                try await withTemporaryDirectory { dir in
                    if older {
                        for statement in Self.olderSchema.split(separator: ";\n") { try await TestServer.query(url, String(statement)) }
                    }
                    let a = try await openHost(url, dir.appendingPathComponent("a"), create: !older)
                    defer { a.close() }
                    let b = try await openHost(url, dir.appendingPathComponent("b"))
                    defer { b.close() }
                    try await appendWhileConnecting(a, b, url: url)
                    try await a.pull()
                    #expect(try a.verify().isValid)
                    let shared = try await b.verifyShared()
                    #expect(shared.isValid, "\(shared.problems)")
                }
            }
        }
    }

    /// Two hosts append 10 batches each while 12 connections open (half with `create`); all succeed.
    private func appendWhileConnecting(_ a: Ledger, _ b: Ledger, url: String) async throws {
        let before = try await a.sharedLog!.head().size
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, host) in [a, b].enumerated() {
                group.addTask {
                    for batch in 0..<10 { _ = try await host.append(contentsOf: (0..<3).map { event(n * 100 + batch * 3 + $0) }) }
                }
            }
            for n in 0..<12 {
                group.addTask {
                    let log = try await PostgresLog.connect(try PostgresLocation(url), create: n % 2 == 0)
                    log.close()
                }
            }
            try await group.waitForAll()
        }
        #expect(try await a.sharedLog!.head().size == before + 60)
    }

    /// The tables as shared logs were first created: no erasures or checkpoints, and
    /// payloads that could not be NULL.
    static let olderSchema = """
        CREATE TABLE clew_meta (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE clew_head (one boolean PRIMARY KEY CHECK (one), last_seq bigint NOT NULL, frontier bytea NOT NULL, root bytea NOT NULL);
        CREATE TABLE clew_events (seq bigint PRIMARY KEY, stream text NOT NULL, type text NOT NULL, time_us bigint NOT NULL,
            envelope bytea NOT NULL, payload bytea NOT NULL);
        CREATE INDEX clew_events_stream ON clew_events (stream, seq);
        CREATE INDEX clew_events_type_time ON clew_events (type, time_us);
        CREATE TABLE clew_batches (id uuid PRIMARY KEY, first_seq bigint NOT NULL, last_seq bigint NOT NULL UNIQUE,
            root bytea NOT NULL, committed timestamptz NOT NULL DEFAULT now());
        INSERT INTO clew_meta VALUES ('format', 'clew-ledger'), ('version', '2'), ('id', 'c0ffee00-0000-4000-8000-000000000001'),
            ('created', '2026-01-01T00:00:00Z');
        INSERT INTO clew_head VALUES (true, 0, ''::bytea, '\\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'::bytea);
        """

    @Test("a replica directory belongs to one shared log, and takes no appends of its own")
    func replicaDirectories() async throws {
        try await TestServer.withDatabase { first in
            try await TestServer.withDatabase { second in
                try await withTemporaryDirectory { dir in
                    let replica = dir.appendingPathComponent("replica")
                    let a = try await openHost(first, replica, create: true)
                    try await a.append(event(0))
                    a.close()
                    await #expect { _ = try await openHost(second, replica, create: true) } throws: {
                        ($0 as? LedgerError)?.code == .invalidInput && "\($0)".contains("not of")
                    }
                    let own = try Ledger.create(at: dir.appendingPathComponent("own"))
                    own.close()
                    await #expect { _ = try await openHost(first, dir.appendingPathComponent("own")) } throws: {
                        ($0 as? LedgerError)?.code == .invalidInput && "\($0)".contains("ledger of its own")
                    }
                    // Opened as a plain directory, the replica reads but refuses appends that would fork it.
                    let plain = try Ledger.open(at: replica)
                    defer { plain.close() }
                    #expect(try plain.lastSeq == 1)
                    await #expect { try await plain.append(event(1)) } throws: {
                        ($0 as? LedgerError)?.code == .readOnly && "\($0)".contains("replica of postgres://")
                    }
                    #expect(try plain.lastSeq == 1)
                }
            }
        }
    }
}
