import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Testing
@testable import ClewEngine

@Suite("Chunks and the five questions")
struct ChunkTests {
    static let hourly = DatasetSpec(name: "readings", partitioning: .time(seconds: 3600), requiresValidation: true)

    static func pipeline(writeFile: Bool = true, pass: Bool = true) -> DAG {
        DAG("hourly", datasets: [hourly, DatasetSpec(name: "averages")]) {
            Op("ingest") { ctx in
                let values = (0..<60).map { Double($0) }
                if writeFile {
                    try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
                    try JSONEncoder().encode(values).write(to: ctx.outputDirectory.appendingPathComponent("readings"))
                }
                ctx.expect("60 readings", values.count == 60)
                ctx.expect("no negatives", pass)
                return values.count
            }.produces("readings")
            Op("average", after: "ingest") { ctx in
                let url = try #require(ctx.chunk("readings")?.url)
                let values = try JSONDecoder().decode([Double].self, from: Data(contentsOf: url))
                return values.reduce(0, +) / Double(values.count)
            }.consumes("readings").produces("averages")
        }
    }

    static func partition(_ key: String) -> Partition {
        let s = PartitionKey.parse(key)!
        return Partition(start: s, end: s + 3_600_000_000)
    }

    @Test("a produced chunk moves producing → ready → consuming → consumed, with all five answers yes")
    func lifecycle() async throws {
        let dag = Self.pipeline()
        try await withEngine([dag]) { engine, ledger, _ in
            let outcome = try await engine.run(dag, partition: Self.partition("2026-11-21T10:00:00Z"))
            let asked = try runEvents(ledger, outcome).filter { $0.type == EventType.questionAnswered }.map(\.payload)
            #expect(outcome.status == .succeeded, "\(outcome.errors) \(asked)")
            let statuses = try ledger.events(inStream: StreamID.dataset("readings")).filter { $0.type == EventType.chunkStatusChanged }
                .map { try JSONDecoder().decode(ChunkChange.self, from: $0.payload).to.rawValue }
            #expect(statuses == ["producing", "ready", "consuming", "consumed"])
            let answers = try #require(events(try runEvents(ledger, outcome), EventType.questionAnswered).first)
            #expect(answers["all_yes"] as? Bool == true)
            for q in ["ready", "right", "location", "validated", "safe"] {
                #expect((answers[q] as? [String: Any])?["answer"] as? Bool == true, "\(q): \(answers[q] ?? "")")
            }
            let leases = try ledger.events(inStream: StreamID.dataset("readings")).map(\.type).filter { $0.hasPrefix("chunk.lease") }
            #expect(leases == [EventType.chunkLeaseAcquired, EventType.chunkLeaseReleased])
            // The averages chunk is held as the task's output value.
            let avg = try engine.chunks.state(of: "averages").chunks["2026-11-21T10:00:00Z"]
            #expect(avg?.status == .ready)
            #expect(avg?.produced?.location?.hasPrefix("value:") == true)
        }
    }

    @Test("a 'no' blocks the task with the reason, never a crash: missing, tampered, unvalidated, gap")
    func blocking() async throws {
        let consumer = DAG("consumer", datasets: [Self.hourly]) {
            Op("read") { _ in 1 }.consumes("readings")
        }
        let producer = Self.pipeline()
        let failing = DAG("hourly_bad", datasets: [Self.hourly]) {
            Op("ingest") { ctx in
                try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
                try Data("[-1]".utf8).write(to: ctx.outputDirectory.appendingPathComponent("readings"))
                ctx.expect("no negatives", false, "1 negative reading")
                return 1
            }.produces("readings")
        }
        try await withEngine([consumer, producer, failing]) { engine, ledger, _ in
            func reason(_ o: RunOutcome) throws -> String {
                (events(try runEvents(ledger, o), EventType.taskBlocked).first?["reason"] as? String) ?? "none"
            }
            // Not there at all.
            let missing = try await engine.run(consumer, partition: Self.partition("2026-11-21T09:00:00Z"))
            #expect(missing.tasks["read"] == .blocked)
            #expect(try reason(missing).contains("not ready: no chunk '2026-11-21T09:00:00Z'"))

            // Produced, then tampered with on disk.
            let made = try await engine.run(producer, partition: Self.partition("2026-11-21T10:00:00Z"))
            #expect(made.status == .succeeded)
            let state = try engine.chunks.state(of: "readings")
            let path = try #require(state.chunks["2026-11-21T10:00:00Z"]?.produced?.location)
            try Data("[999]".utf8).write(to: URL(fileURLWithPath: path))
            let tampered = try await engine.run(consumer, partition: Self.partition("2026-11-21T10:00:00Z"))
            #expect(try reason(tampered).contains("not location"))
            #expect(try reason(tampered).contains("changed"))

            // A gap: 12:00 exists but 11:00 does not.
            _ = try await engine.run(producer, partition: Self.partition("2026-11-21T12:00:00Z"))
            let gap = try await engine.run(consumer, partition: Self.partition("2026-11-21T12:00:00Z"))
            #expect(try reason(gap).contains("not right: gap: the previous window 2026-11-21T11:00:00Z"))

            // Invalid: a failed expectation marks the chunk invalid and fails the producer.
            let bad = try await engine.run(failing, partition: Self.partition("2026-11-21T13:00:00Z"))
            #expect(bad.tasks["ingest"] == .failed)
            #expect(try engine.chunks.state(of: "readings").chunks["2026-11-21T13:00:00Z"]?.status == .invalid)
            let unvalidated = try await engine.run(consumer, partition: Self.partition("2026-11-21T13:00:00Z"))
            #expect(try reason(unvalidated).contains("not ready: status is invalid"))
            #expect(unvalidated.status == .failed)
        }
    }

    @Test("sequence datasets need every earlier chunk; a live reader lease makes a chunk unsafe to overwrite")
    func sequenceAndSafety() async throws {
        let seq = DatasetSpec(name: "batches", partitioning: .sequence)
        let writer = DAG("writer", params: ["n": ""], datasets: [seq]) { Op("write") { ctx in ctx.param("n") ?? "" }.produces("batches", key: "{param.n}") }
        let reader = DAG("reader", params: ["n": ""], datasets: [seq]) { Op("read") { _ in 1 }.consumes("batches", key: "{param.n}") }
        try await withEngine([writer, reader]) { engine, ledger, _ in
            _ = try await engine.run(writer, params: ["n": "1"])
            _ = try await engine.run(writer, params: ["n": "3"])
            let gap = try await engine.run(reader, params: ["n": "3"])
            let q = try #require(events(try runEvents(ledger, gap), EventType.questionAnswered).first)
            #expect(((q["right"] as? [String: Any])?["evidence"] as? String)?.contains("chunk(s) 2") == true)
            #expect(try await engine.run(reader, params: ["n": "1"]).status == .succeeded)

            // A reader lease held by another live process blocks a writer.
            let lease = ChunkLease(dataset: "batches", chunk: "1", lease: "other", run: "r", task: "t", pid: 1, host: ChunkBook.host)
            try await ledger.append(NewEvent(type: EventType.chunkLeaseAcquired, stream: StreamID.dataset("batches"), payload: try JSONEncoder().encode(lease)))
            let blocked = try await engine.run(writer, params: ["n": "1"])
            #expect(blocked.tasks["write"] == .blocked)
            #expect((events(try runEvents(ledger, blocked), EventType.taskBlocked).first?["reason"] as? String)?.contains("reader lease other") == true)
        }
    }

    @Test("the chunk fold flags transitions the life cycle does not allow")
    func anomalies() {
        var state = DatasetState(name: "d")
        func apply(_ seq: UInt64, _ from: ChunkStatus?, _ to: ChunkStatus) {
            let c = ChunkChange(dataset: "d", chunk: "k", from: from, to: to)
            state.apply(seq: seq, type: EventType.chunkStatusChanged, payload: try! JSONEncoder().encode(c))
        }
        apply(1, nil, .producing)
        apply(2, .producing, .ready)
        apply(3, .ready, .consumed)
        #expect(state.chunks["k"]?.anomalies == ["seq 3: ready -> consumed"])
        #expect(state.lastSeq == 3)
    }

    @Test("a process killed and not yet reaped (a zombie) is not alive: its leases and its unfinished run are not taken for live ones")
    func zombieIsNotAlive() async throws {
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { for a in argv { free(a) } }
        #expect(posix_spawn(&pid, "/bin/true", nil, nil, &argv, environ) == 0)
        // It exits at once; until waitpid it is a zombie, which kill(pid, 0) still finds.
        var zombie = false
        for _ in 0..<500 where !zombie {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            zombie = stat.contains(") Z")
            if !zombie { try await Task.sleep(for: .milliseconds(2)) }
        }
        #expect(zombie)
        #expect(kill(pid, 0) == 0)
        #expect(!ChunkBook.isAlive(pid))
        #expect(ChunkBook.isAlive(getpid()))
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(!ChunkBook.isAlive(pid))
    }
}
