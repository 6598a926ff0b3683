import AsyncHTTPClient
import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewServer
public import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// `clew bench serve`: OpenLineage events ingested per second over loopback through a real server, one
/// event per request and in batches, against the ledger's batched append of the same native events
/// (the physical limit under ingest) measured in the same run.
public enum ServeBenchmark {
    public struct Phase: Codable, Sendable {
        /// OpenLineage events per second (median of the repetitions).
        public var events_per_s: Double
        /// Native events appended per second for them.
        public var native_events_per_s: Double
        public var events: Int
        public var native_events: Int
        public var requests: Int
        public var seconds_p50: Double
    }

    public struct Result: Codable, Sendable {
        public var single: Phase
        public var batch: Phase
        /// Appending the same native events straight to a ledger, in the batches the ingest appended.
        public var append_native_events_per_s: Double
        /// Batch ingest's native events/s over the direct append's (goal ≥ 0.3).
        public var ingest_ratio: Double
        public var single_ratio: Double
        /// One event per request, one request at a time: milliseconds from send to the durable answer
        /// (goal p99 ≤ 5 ms on loopback).
        public var single_latency_ms_p50: Double
        public var single_latency_ms_p99: Double
        public var batch_size: Int
        public var concurrency: Int
        public var repetitions: Int
    }

    /// - Parameters:
    ///   - events: OpenLineage events per phase and repetition (task runs × 2: START and COMPLETE).
    ///   - specDirectory: the OpenLineage spec the server validates against (nil: the built-in copy).
    public static func run(
        events: Int, batchSize: Int, concurrency: Int, repetitions: Int, specDirectory: URL?, in dir: URL,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var singles: [Phase] = []
        var batches: [Phase] = []
        var appends: [Double] = []
        var latencies: [Double] = []
        for rep in 0..<repetitions {
            let ledgerDir = dir.appendingPathComponent("ledger-\(rep)")
            let ledger = try Ledger.create(at: ledgerDir)
            let views = try Views.open(ledger: ledger)
            var config = ServerConfiguration(openLineageSpec: specDirectory)
            config.port = 0
            config.logger.logLevel = .critical
            let engine = Engine(ledger: ledger, registry: DAGRegistry(), options: Engine.Options(dataDirectory: ledgerDir.appendingPathComponent("data")))
            let server = try ClewServer(ledger: ledger, views: views, engine: engine, configuration: config)
            let token = try await server.tokens.mint(name: "bench", role: .operator, by: "bench").token
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let serving = Task { try await server.run { continuation.yield($0) } }
            var port = 0
            for await p in ports {
                port = p
                break
            }
            let base = "http://127.0.0.1:\(port)/api/v1/lineage"

            progress("serve bench \(rep + 1)/\(repetitions): \(events) events, one per request")
            let singleBodies = Self.events(count: events, tag: "s\(rep)").map { "\($0)" }
            let s0 = try ledger.lastSeq
            let singleSeconds = try await Self.post(singleBodies, to: base, token: token, concurrency: concurrency)
            let s1 = try ledger.lastSeq
            singles.append(Phase(events_per_s: Double(events) / singleSeconds, native_events_per_s: Double(s1 - s0) / singleSeconds, events: events, native_events: Int(s1 - s0), requests: events, seconds_p50: singleSeconds))

            progress("serve bench \(rep + 1)/\(repetitions): \(min(events, 1000)) events, one request at a time (latency)")
            let timed = Self.events(count: min(events, 1000), tag: "l\(rep)")
            let recorder = LatencyRecorder()
            _ = try await Self.post(timed, to: base, token: token, concurrency: 1, latencies: recorder)
            latencies += recorder.values

            progress("serve bench \(rep + 1)/\(repetitions): \(events) events in batches of \(batchSize)")
            let all = Self.events(count: events, tag: "b\(rep)")
            let batchBodies = stride(from: 0, to: all.count, by: batchSize).map { "[" + all[$0..<min(all.count, $0 + batchSize)].joined(separator: ",") + "]" }
            let b0 = try ledger.lastSeq
            let batchSeconds = try await Self.post(batchBodies, to: base + "/batch", token: token, concurrency: concurrency)
            let b1 = try ledger.lastSeq
            batches.append(Phase(events_per_s: Double(events) / batchSeconds, native_events_per_s: Double(b1 - b0) / batchSeconds, events: events, native_events: Int(b1 - b0), requests: batchBodies.count, seconds_p50: batchSeconds))

            // The limit: the same native events appended straight to a fresh ledger, in the same batches.
            let drafts = try ledger.events((b0 + 1)...b1).map(\.draft)
            serving.cancel()
            _ = try? await serving.value
            views.close()
            ledger.close()
            let perRequest = max(1, drafts.count / batchBodies.count)
            let raw = try Ledger.create(at: dir.appendingPathComponent("raw-\(rep)"))
            progress("serve bench \(rep + 1)/\(repetitions): \(drafts.count) native events appended directly")
            let a0 = ContinuousClock.now
            let slices = stride(from: 0, to: drafts.count, by: perRequest).map { Array(drafts[$0..<min(drafts.count, $0 + perRequest)]) }
            try await inFlight(slices, concurrency: concurrency) { slice in _ = try await raw.append(contentsOf: slice) }
            let appendSeconds = (ContinuousClock.now - a0).seconds
            raw.close()
            appends.append(Double(drafts.count) / appendSeconds)
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        func medianPhase(_ ps: [Phase]) -> Phase { ps.sorted { $0.events_per_s < $1.events_per_s }[ps.count / 2] }
        let single = medianPhase(singles)
        let batch = medianPhase(batches)
        let append = median(appends)
        return Result(
            single: single, batch: batch, append_native_events_per_s: append,
            ingest_ratio: median(zip(batches, appends).map { $0.native_events_per_s / $1 }),
            single_ratio: median(zip(singles, appends).map { $0.native_events_per_s / $1 }),
            single_latency_ms_p50: percentile(latencies, 0.50), single_latency_ms_p99: percentile(latencies, 0.99),
            batch_size: batchSize, concurrency: concurrency, repetitions: repetitions)
    }

    /// The `q` quantile (nearest rank) of `xs`, 0 when empty.
    static func percentile(_ xs: [Double], _ q: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let sorted = xs.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)]
    }

    /// Request latencies in milliseconds, from concurrent requests.
    final class LatencyRecorder: Sendable {
        private let list = Mutex<[Double]>([])
        func add(_ ms: Double) { list.withLock { $0.append(ms) } }
        var values: [Double] { list.withLock { $0 } }
    }

    /// Posts every body (concurrency at a time); returns the seconds it took, and records each request's
    /// latency when asked.
    static func post(
        _ bodies: [String], to url: String, token: String, concurrency: Int, latencies: LatencyRecorder? = nil
    ) async throws -> Double {
        let start = ContinuousClock.now
        try await inFlight(bodies, concurrency: concurrency) { body in
            let sent = ContinuousClock.now
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            let text = try await response.body.collect(upTo: 1 << 20)
            guard (200..<300).contains(response.status.code) else {
                throw BenchmarkError(description: "ingest answered \(response.status.code): \(String(buffer: text))")
            }
            latencies?.add((ContinuousClock.now - sent).seconds * 1000)
        }
        return (ContinuousClock.now - start).seconds
    }

    /// Runs `work` on every item, at most `concurrency` at a time.
    static func inFlight<T: Sendable>(_ items: [T], concurrency: Int, _ work: @escaping @Sendable (T) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            var running = 0
            while next < items.count || running > 0 {
                while running < concurrency, next < items.count {
                    let item = items[next]
                    next += 1
                    running += 1
                    group.addTask { try await work(item) }
                }
                try await group.next()
                running -= 1
            }
        }
    }

    /// Realistic task-run events, as Airflow's provider sends them: START and COMPLETE of `count / 2`
    /// task runs, each with a parent run facet, a partitioned input and output (subset facets) and a
    /// schema facet; 10 tasks per DAG run.
    static func events(count: Int, tag: String) -> [String] {
        var out: [String] = []
        out.reserveCapacity(count)
        let producer = "https://github.com/apache/airflow/tree/providers-openlineage/2.0.0"
        var runs = 0
        while out.count < count {
            let dagRun = UUID().uuidString.lowercased()
            for t in 0..<10 where out.count < count {
                let taskRun = UUID().uuidString.lowercased()
                let day = String(format: "2026-%02d-%02d", 1 + runs / 28 % 12, 1 + runs % 28)
                let parent = #"{"_producer":"\#(producer)","_schemaURL":"https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet","run":{"runId":"\#(dagRun)"},"job":{"namespace":"bench","name":"dag_\#(tag)_\#(runs)"}}"#
                let subset = { (kind: String) in
                    #"{"subset":{"_producer":"\#(producer)","_schemaURL":"https://openlineage.io/spec/facets/1-0-0/BaseSubsetDatasetFacet.json","\#(kind)Condition":{"type":"partition","partitions":[{"identifier":"\#(day)","dimensions":{"day":"\#(day)"}}]}}}"#
                }
                let schema = #"{"schema":{"_producer":"\#(producer)","_schemaURL":"https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet","fields":[{"name":"id","type":"BIGINT"},{"name":"amount","type":"DECIMAL(12,2)"},{"name":"ts","type":"TIMESTAMP"}]}}"#
                for type in ["START", "COMPLETE"] where out.count < count {
                    out.append(#"{"eventType":"\#(type)","eventTime":"2026-11-21T10:00:0\#(type == "START" ? 0 : 5).000Z","producer":"\#(producer)","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","run":{"runId":"\#(taskRun)","facets":{"parent":\#(parent)}},"job":{"namespace":"bench","name":"dag_\#(tag)_\#(runs).task_\#(t)"},"inputs":[{"namespace":"postgres://db:5432","name":"shop.t\#(t)","facets":\#(schema),"inputFacets":\#(subset("input"))}],"outputs":[{"namespace":"s3://lake","name":"t\#(t + 1)","facets":\#(schema),"outputFacets":\#(subset("output"))}]}"#)
                }
            }
            runs += 1
        }
        return out
    }
}

struct BenchmarkError: ClewError {
    var description: String
    var category: ErrorCategory { .internal }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
