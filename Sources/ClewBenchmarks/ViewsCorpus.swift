public import ClewLedger
import ClewModel
import ClewProjections
import Foundation

/// A synthetic history in the engine's event schema (docs/event-schema.md), for `clew bench views` and
/// the views tests: daily runs of one DAG, each with five tasks that record variables and outputs, one
/// task producing ten hourly chunks of `bench.hourly` (about one in a thousand fails, one in two thousand
/// hours is never produced) and one consuming the previous run's chunks.
public enum ViewsCorpus {
    public static let dag = "bench_etl"
    public static let dataset = "bench.hourly"
    public static let chunksPerRun = 10
    static let tasks = ["extract", "load", "validate", "aggregate", "publish"]

    /// Appends about `events` events to `ledger` (whole runs), in batches of one group commit each.
    /// Returns the number of chunks produced into ``dataset``.
    @discardableResult
    public static func generate(into ledger: Ledger, events: Int, seed: UInt64 = 7, progress: ((Int) -> Void)? = nil) async throws -> Int {
        var rng = SplitMix64(seed: seed)
        var batch: [NewEvent] = []
        batch.reserveCapacity(12_000)
        var written = 0
        var clock: Int64 = 1_767_225_600_000_000  // 2026-01-01T00:00:00Z
        var nextHour: Int64 = 0
        var chunks = 0
        var previous: [String] = []

        func add<P: EventPayload>(_ type: String, _ stream: String, _ payload: P) {
            clock += 50
            batch.append(NewEvent(type: type, stream: stream, actor: "clew-engine", timestampMicros: clock, payload: payload.payloadData))
        }
        func digest() -> String { Self.digest(&rng) }
        let spec = try JSONDecoder().decode(DAGSpec.self, from: Data(#"{"catchup":false,"datasets":[{"name":"\#(dataset)","partitioning":{"time":{"seconds":3600}},"requiresValidation":false}],"description":"synthetic","maxActiveTasks":8,"name":"\#(dag)","origin":"ViewsCorpus","params":{},"tasks":[{"consumes":[],"id":"extract","kind":"swift","produces":[],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":[]},{"consumes":[],"id":"load","kind":"swift","produces":[{"dataset":"\#(dataset)","key":"{{partition}}"}],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":["extract"]},{"consumes":[{"dataset":"\#(dataset)","key":"{{partition}}"}],"id":"aggregate","kind":"swift","produces":[],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":["load"]}]}"#.utf8))
        let version = "b3nch0000000v001"
        add(
            EventType.dagRegistered, StreamID.dag(dag),
            DAGRegistered(dag: dag, version: version, origin: "ViewsCorpus", tasks: tasks, definition: spec))
        var runIndex = 0
        while written + batch.count < events {
            runIndex += 1
            let run = "scheduled__r\(runIndex)"
            let stream = StreamID.run(dag: dag, run: run)
            add(
                EventType.runQueued, stream,
                RunQueued(dag: dag, run: run, dagVersion: version, params: ["region": "eu-\(runIndex % 7)"], trigger: "scheduled"))
            add(EventType.runStarted, stream, RunStarted(dag: dag, run: run, pid: 4242, host: "bench", maxActiveTasks: 8))
            var produced: [String] = []
            for (order, task) in tasks.enumerated() {
                add(EventType.taskScheduled, stream, TaskEvent(task: task, attempt: 1, order: order + 1, slot: 1))
                add(EventType.taskStarted, stream, TaskEvent(task: task, attempt: 1, seed: String(rng.nextValue(), radix: 16)))
                if task == "load" {
                    for _ in 0..<chunksPerRun {
                        let chunk = produceChunk(hour: &nextHour, run: run, digests: true, &rng)
                        for change in chunk.changes { add(EventType.chunkStatusChanged, StreamID.dataset(dataset), change) }
                        if chunk.ready { produced.append(chunk.key) }
                        chunks += 1
                    }
                }
                if task == "aggregate" {
                    for key in previous {
                        func change(from: ChunkStatus, to: ChunkStatus) -> ChunkChange {
                            var c = ChunkChange(dataset: dataset, chunk: key, from: from, to: to)
                            (c.dag, c.run, c.task, c.attempt) = (dag, run, "aggregate", 1)
                            return c
                        }
                        add(EventType.chunkStatusChanged, StreamID.dataset(dataset), change(from: .ready, to: .consuming))
                        add(EventType.valueConsumed, stream, ValueConsumed(task: "aggregate", attempt: 1, dataset: dataset, chunk: key, digest: digest()))
                        add(EventType.chunkStatusChanged, StreamID.dataset(dataset), change(from: .consuming, to: .consumed))
                    }
                }
                let rows = 1000 + Int(rng.next(below: 9000))
                let d = digest()
                add(
                    EventType.variableRecorded, stream,
                    ValueEvent(
                        task: task, attempt: 1, step: 1, name: "rows", kind: "variable", digest: digest(), valueType: "Int",
                        value: JSONFragment(.number(Double(rows)))))
                add(
                    EventType.variableRecorded, stream,
                    ValueEvent(
                        task: task, attempt: 1, step: 2, name: "source", kind: "variable", digest: digest(), valueType: "String",
                        value: JSONFragment(.string("s3://bucket/\(task)/\(runIndex % 100)"))))
                add(
                    EventType.valueProduced, stream,
                    ValueEvent(
                        task: task, attempt: 1, digest: d, valueType: "Record",
                        value: JSONFragment(.object(["rows": .number(Double(rows)), "mean": .number(Double(rng.next(below: 100_000)) / 100)]))))
                add(EventType.taskSucceeded, stream, TaskEvent(task: task, attempt: 1, durationMillis: Int(rng.next(below: 500)), outputDigest: d))
            }
            previous = produced
            add(runIndex % 50 == 0 ? EventType.runFailed : EventType.runSucceeded, stream, RunEnded(run: run, tasks: ["succeeded": 5]))
            if batch.count >= 10_000 {
                _ = try await ledger.append(contentsOf: batch)
                written += batch.count
                batch.removeAll(keepingCapacity: true)
                progress?(written)
            }
        }
        if !batch.isEmpty {
            _ = try await ledger.append(contentsOf: batch)
            written += batch.count
        }
        return chunks
    }
}

extension ViewsCorpus {
    /// A dataset of `chunks` hourly chunks and nothing else, for `clew bench chunks`: the DAG registered,
    /// then each chunk produced (`producing`, then `ready`; about one in a thousand `failed`, one hour in
    /// two thousand never produced) by runs of 10,000 chunks, two events per chunk. Returns the events
    /// appended.
    @discardableResult
    public static func generateChunks(into ledger: Ledger, chunks: Int, seed: UInt64 = 11, progress: ((Int) -> Void)? = nil) async throws -> Int {
        var rng = SplitMix64(seed: seed)
        var batch: [NewEvent] = []
        batch.reserveCapacity(20_100)
        var clock: Int64 = 1_767_225_600_000_000
        var written = 0
        func add<P: EventPayload>(_ type: String, _ stream: String, _ payload: P) {
            clock += 50
            batch.append(NewEvent(type: type, stream: stream, actor: "clew-engine", timestampMicros: clock, payload: payload.payloadData))
        }
        func flush() async throws {
            guard !batch.isEmpty else { return }
            _ = try await ledger.append(contentsOf: batch)
            written += batch.count
            batch.removeAll(keepingCapacity: true)
            progress?(written)
        }
        let spec = try JSONDecoder().decode(DAGSpec.self, from: Data(#"{"catchup":false,"datasets":[{"name":"\#(dataset)","partitioning":{"time":{"seconds":3600}},"requiresValidation":false}],"description":"synthetic","maxActiveTasks":8,"name":"\#(dag)","origin":"ViewsCorpus","params":{},"tasks":[{"consumes":[],"id":"load","kind":"swift","produces":[{"dataset":"\#(dataset)","key":"{{partition}}"}],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":[]}]}"#.utf8))
        add(EventType.dagRegistered, StreamID.dag(dag), DAGRegistered(dag: dag, version: "chunks00000000v1", origin: "ViewsCorpus", tasks: ["load"], definition: spec))
        var hour: Int64 = 0
        for n in 0..<chunks {
            let chunk = produceChunk(hour: &hour, run: "backfill__r\(n / 10_000 + 1)", digests: false, &rng)
            for change in chunk.changes { add(EventType.chunkStatusChanged, StreamID.dataset(dataset), change) }
            if batch.count >= 20_000 { try await flush() }
        }
        try await flush()
        return written
    }
}

extension ViewsCorpus {
    /// The next hour's chunk of ``dataset``, produced by `run`'s `load` task: `producing`, then `ready`
    /// (with its size, location and, when `digests`, content digest) or, one in a thousand, `failed`.
    /// One hour in 2,000 is skipped: never produced, so missing.
    static func produceChunk(
        hour: inout Int64, run: String, digests: Bool, _ rng: inout SplitMix64
    ) -> (key: String, changes: [ChunkChange], ready: Bool) {
        hour += 1
        if hour % 2000 == 0 { hour += 1 }
        let key = PartitionKey.string(micros: 1_767_225_600_000_000 + hour * 3_600_000_000)
        func change(from: ChunkStatus?, to: ChunkStatus) -> ChunkChange {
            var c = ChunkChange(dataset: dataset, chunk: key, from: from, to: to)
            (c.dag, c.run, c.task, c.attempt, c.partition) = (dag, run, "load", 1, key)
            return c
        }
        let producing = change(from: nil, to: .producing)
        if rng.next(below: 1000) == 0 {
            var failed = change(from: .producing, to: .failed)
            failed.reason = "source timed out"
            return (key, [producing, failed], false)
        }
        var ready = change(from: .producing, to: .ready)
        ready.bytes = Int64(4096 + rng.next(below: 4096))
        if digests { ready.digest = digest(&rng) }
        ready.location = "/data/\(dataset)/\(key)"
        return (key, [producing, ready], true)
    }

    /// A random 64-character hex digest.
    static func digest(_ rng: inout SplitMix64) -> String {
        (0..<4).map { _ in String(rng.nextValue(), radix: 16).leftPadded(16) }.joined()
    }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
