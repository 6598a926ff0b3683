import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
public import Foundation

/// `clew bench forensics`: a generated lineage graph of `nodes` nodes (runs of a chain DAG over daily
/// partitions; every task reads the previous task's output, writes a chunk and records variables; the first
/// task reads the partition's raw chunk and a shared weekly dimension chunk) is appended to a fresh ledger
/// and folded into the views. Then full-depth ancestry of random chunks (`trace_ms`, goal < 10 ms p50) and
/// value searches over the ≥ 1,000,000 recorded values (`search_ms`: equality, numeric range, string
/// prefix). Raw LMDB reads of the same edges in the same run give the physical floor (`trace_floor_ms`).
public enum ForensicsBenchmark {
    public struct Result: Codable, Sendable {
        public var nodes: Int
        public var edges: Int
        public var events: Int
        public var values: Int
        public var buildSeconds: Double
        public var traces: Int
        public var traceMillisP50: Double
        public var traceMillisP99: Double
        public var traceNodesP50: Double
        public var traceFloorMillisP50: Double
        public var traceRatio: Double
        public var searches: Int
        public var searchMillisP50: Double
        public var searchMillisP99: Double
        public var searchHitsP50: Double

        enum CodingKeys: String, CodingKey {
            case nodes, edges, events, values, traces, searches
            case buildSeconds = "build_s"
            case traceMillisP50 = "trace_ms_p50"
            case traceMillisP99 = "trace_ms_p99"
            case traceNodesP50 = "trace_nodes_p50"
            case traceFloorMillisP50 = "trace_floor_ms_p50"
            case traceRatio = "trace_ratio_to_floor"
            case searchMillisP50 = "search_ms_p50"
            case searchMillisP99 = "search_ms_p99"
            case searchHitsP50 = "search_hits_p50"
        }
    }

    static let tasks = 10
    /// Nodes one partition adds: its run, and per task an attempt, an output value and a chunk, plus the raw chunk.
    static let nodesPerPartition = 1 + tasks * 3 + 1

    public static func run(nodes: Int, queries: Int, in directory: URL, progress: @escaping @Sendable (String) -> Void) async throws -> Result {
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = Ledger.Options()
        options.mapSize = 1 << 30
        let ledger = try Ledger.create(at: directory, options: options)
        defer { ledger.close() }
        let partitions = max(1, nodes / nodesPerPartition)
        let started = Date()
        var events = 0
        var values = 0
        var batch: [NewEvent] = []
        var rng = SplitMix64(seed: 42)
        let base: Int64 = 1_790_000_000_000_000
        func add<P: EventPayload>(_ type: String, _ stream: String, _ t: Int64, _ payload: P) {
            batch.append(NewEvent(type: type, stream: stream, actor: "bench", timestampMicros: t, payload: payload.payloadData))
        }
        for p in 0..<partitions {
            let run = "p\(p)", dag = "bench_flow", stream = StreamID.run(dag: dag, run: run)
            let t = base + Int64(p) * 86_400_000_000
            add(EventType.runQueued, stream, t, RunQueued(dag: dag, run: run, params: [:], trigger: "backfill"))
            add(EventType.chunkStatusChanged, StreamID.dataset("raw"), t, ChunkChange(dataset: "raw", chunk: run, from: nil, to: .ready))
            var previous: String? = nil
            for k in 0..<tasks {
                let task = "t\(k)"
                let tk = t + Int64(k) * 1000
                func change(_ dataset: String, _ chunk: String, from: ChunkStatus?, to: ChunkStatus) -> ChunkChange {
                    var c = ChunkChange(dataset: dataset, chunk: chunk, from: from, to: to)
                    (c.dag, c.run, c.task, c.attempt) = (dag, run, task, 1)
                    return c
                }
                func variable(_ step: Int, _ name: String, _ digest: String, _ value: JSONTree) -> ValueEvent {
                    ValueEvent(task: task, attempt: 1, step: step, name: name, kind: "variable", digest: digest, value: JSONFragment(value))
                }
                add(EventType.taskStarted, stream, tk, TaskEvent(task: task, attempt: 1))
                if let previous {
                    add(EventType.valueConsumed, stream, tk, ValueConsumed(task: task, attempt: 1, fromTask: "t\(k - 1)", digest: previous))
                } else {
                    for (ds, key) in [("raw", run), ("dim", "w\(p / 7)")] {
                        add(EventType.chunkStatusChanged, StreamID.dataset(ds), tk, change(ds, key, from: .ready, to: .consuming))
                    }
                }
                let rows = Int(rng.next(below: 100_000))
                add(EventType.variableRecorded, stream, tk, variable(1, "rows", "r\(p)-\(k)", .number(Double(rows))))
                add(EventType.variableRecorded, stream, tk, variable(2, "mean", "m\(p)-\(k)", .number(Double(rng.next(below: 1_000_000)) / 1000)))
                add(EventType.variableRecorded, stream, tk, variable(3, "source", "s\(p)-\(k)", .string("s3://bucket/\(task)/\(p % 997)/part-\(p)")))
                let digest = String(format: "%016llx%016llx", rng.nextValue(), rng.nextValue())
                add(EventType.valueProduced, stream, tk, ValueEvent(task: task, attempt: 1, digest: digest, value: JSONFragment(.number(Double(rows)))))
                let ds = "d\(k)"
                add(EventType.chunkStatusChanged, StreamID.dataset(ds), tk, change(ds, run, from: nil, to: .producing))
                var ready = change(ds, run, from: .producing, to: .ready)
                ready.location = "value:\(digest)"
                ready.digest = digest
                add(EventType.chunkStatusChanged, StreamID.dataset(ds), tk, ready)
                values += 4
                previous = digest
            }
            if batch.count >= 20_000 {
                events += batch.count
                _ = try await ledger.append(contentsOf: batch)
                batch.removeAll(keepingCapacity: true)
                progress("appended \(events) events (\(p + 1)/\(partitions) partitions)")
            }
        }
        events += batch.count
        if !batch.isEmpty { _ = try await ledger.append(contentsOf: batch) }
        progress("folding \(events) events into the views")
        var viewOptions = Views.Options()
        viewOptions.progress = { p in progress(String(format: "folding: %llu/%llu events", p.done, p.total)) }
        let views = try Views.open(ledger: ledger, options: viewOptions)
        defer { views.close() }
        let buildSeconds = Date().timeIntervalSince(started)
        let f = Forensics(ledger: ledger, views: views)

        // Full-depth ancestry of the last chunk of random partitions, and the same edges read raw.
        var traceMs: [Double] = [], floorMs: [Double] = [], reached: [Double] = []
        var edgeCount = 0
        for _ in 0..<queries {
            let p = Int(rng.next(below: UInt64(partitions)))
            let node = LineageNode.chunk(dataset: "d\(tasks - 1)", key: "p\(p)")
            let t0 = DispatchTime.now().uptimeNanoseconds
            let graph = try f.trace(node, direction: .up)
            let t1 = DispatchTime.now().uptimeNanoseconds
            traceMs.append(Double(t1 - t0) / 1e6)
            reached.append(Double(graph.nodes.count))
            edgeCount = max(edgeCount, graph.edges.count)
            let f0 = DispatchTime.now().uptimeNanoseconds
            _ = try views.lineageReadFloor(Array(Set(graph.edges.map(\.to))))
            floorMs.append(Double(DispatchTime.now().uptimeNanoseconds - f0) / 1e6)
        }
        // Value searches: equality, numeric range, string prefix.
        var searchMs: [Double] = [], hits: [Double] = []
        for i in 0..<queries {
            let match: ValueMatch
            let name: String
            switch i % 3 {
            case 0:
                name = "rows"
                match = .equals(.number(Double(rng.next(below: 100_000))))
            case 1:
                name = "mean"
                let lo = Double(rng.next(below: 999_000)) / 1000
                match = .range(min: lo, max: lo + 0.5)
            default:
                name = "source"
                match = .prefix("s3://bucket/t\(rng.next(below: UInt64(tasks)))/\(rng.next(below: 997))/")
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let found = try views.values(name: name, match: match, limit: 1000)
            searchMs.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            hits.append(Double(found.count))
        }
        let m = LedgerBenchmark.median
        return Result(
            nodes: try views.lineageNodeCount(), edges: edgeCount, events: events, values: values,
            buildSeconds: buildSeconds, traces: queries, traceMillisP50: m(traceMs), traceMillisP99: LedgerBenchmark.percentile(traceMs, 0.99),
            traceNodesP50: m(reached), traceFloorMillisP50: m(floorMs), traceRatio: m(floorMs) / max(m(traceMs), 1e-9),
            searches: queries, searchMillisP50: m(searchMs), searchMillisP99: LedgerBenchmark.percentile(searchMs, 0.99), searchHitsP50: m(hits))
    }
}
