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
        let hourMicros: Int64 = 3_600_000_000
        var nextHour: Int64 = 0
        var chunks = 0
        var previous: [String] = []

        func add(_ type: String, _ stream: String, _ payload: String) {
            clock += 50
            batch.append(NewEvent(type: type, stream: stream, actor: "clew-engine", timestampMicros: clock, payload: Data(payload.utf8)))
        }
        func digest() -> String {
            (0..<4).map { _ in String(rng.nextValue(), radix: 16).leftPadded(16) }.joined()
        }
        let spec = #"{"catchup":false,"datasets":[{"name":"\#(dataset)","partitioning":{"time":{"seconds":3600}},"requiresValidation":false}],"description":"synthetic","maxActiveTasks":8,"name":"\#(dag)","origin":"ViewsCorpus","params":{},"tasks":[{"consumes":[],"id":"extract","kind":"swift","produces":[],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":[]},{"consumes":[],"id":"load","kind":"swift","produces":[{"dataset":"\#(dataset)","key":"{{partition}}"}],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":["extract"]},{"consumes":[{"dataset":"\#(dataset)","key":"{{partition}}"}],"id":"aggregate","kind":"swift","produces":[],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":["load"]}]}"#
        add(EventType.dagRegistered, StreamID.dag(dag), #"{"dag":"\#(dag)","version":"b3nch0000000v001","origin":"ViewsCorpus","source_sha256":null,"tasks":["extract","load","validate","aggregate","publish"],"definition":\#(spec)}"#)
        var runIndex = 0
        while written + batch.count < events {
            runIndex += 1
            let run = "scheduled__r\(runIndex)"
            let stream = StreamID.run(dag: dag, run: run)
            add(EventType.runQueued, stream, #"{"dag":"\#(dag)","run":"\#(run)","dag_version":"b3nch0000000v001","params":{"region":"eu-\#(runIndex % 7)"},"trigger":"scheduled"}"#)
            add(EventType.runStarted, stream, #"{"dag":"\#(dag)","run":"\#(run)","pid":4242,"host":"bench","max_active_tasks":8}"#)
            var produced: [String] = []
            for (order, task) in tasks.enumerated() {
                add(EventType.taskScheduled, stream, #"{"task":"\#(task)","attempt":1,"order":\#(order + 1),"slot":1}"#)
                add(EventType.taskStarted, stream, #"{"task":"\#(task)","attempt":1,"seed":"\#(String(rng.nextValue(), radix: 16))"}"#)
                if task == "load" {
                    for _ in 0..<chunksPerRun {
                        nextHour += 1
                        if nextHour % 2000 == 0 { nextHour += 1 }  // a gap: a missing hour
                        let key = PartitionKey.string(micros: 1_767_225_600_000_000 + nextHour * hourMicros)
                        let base = #""attempt":1,"chunk":"\#(key)","dag":"\#(dag)","dataset":"\#(dataset)","partition":"\#(key)","run":"\#(run)","task":"load""#
                        add(EventType.chunkStatusChanged, StreamID.dataset(dataset), "{\(base),\"to\":\"producing\"}")
                        if rng.next(below: 1000) == 0 {
                            add(EventType.chunkStatusChanged, StreamID.dataset(dataset), "{\(base),\"from\":\"producing\",\"reason\":\"source timed out\",\"to\":\"failed\"}")
                        } else {
                            add(EventType.chunkStatusChanged, StreamID.dataset(dataset), "{\(base),\"bytes\":\(4096 + rng.next(below: 4096)),\"digest\":\"\(digest())\",\"from\":\"producing\",\"location\":\"/data/\(dataset)/\(key)\",\"to\":\"ready\"}")
                            produced.append(key)
                        }
                        chunks += 1
                    }
                }
                if task == "aggregate" {
                    for key in previous {
                        let base = #""attempt":1,"chunk":"\#(key)","dag":"\#(dag)","dataset":"\#(dataset)","run":"\#(run)","task":"aggregate""#
                        add(EventType.chunkStatusChanged, StreamID.dataset(dataset), "{\(base),\"from\":\"ready\",\"to\":\"consuming\"}")
                        add(EventType.valueConsumed, stream, #"{"task":"aggregate","attempt":1,"dataset":"\#(dataset)","chunk":"\#(key)","digest":"\#(digest())"}"#)
                        add(EventType.chunkStatusChanged, StreamID.dataset(dataset), "{\(base),\"from\":\"consuming\",\"to\":\"consumed\"}")
                    }
                }
                let rows = 1000 + Int(rng.next(below: 9000))
                let d = digest()
                add(EventType.variableRecorded, stream, #"{"task":"\#(task)","attempt":1,"step":1,"name":"rows","kind":"variable","digest":"\#(digest())","value_type":"Int","value":\#(rows)}"#)
                add(EventType.variableRecorded, stream, #"{"task":"\#(task)","attempt":1,"step":2,"name":"source","kind":"variable","digest":"\#(digest())","value_type":"String","value":"s3://bucket/\#(task)/\#(runIndex % 100)"}"#)
                add(EventType.valueProduced, stream, #"{"task":"\#(task)","attempt":1,"digest":"\#(d)","value_type":"Record","value":{"rows":\#(rows),"mean":\#(Double(rng.next(below: 100_000)) / 100)}}"#)
                add(EventType.taskSucceeded, stream, #"{"task":"\#(task)","attempt":1,"duration_ms":\#(rng.next(below: 500)),"output_digest":"\#(d)"}"#)
            }
            previous = produced
            add(runIndex % 50 == 0 ? EventType.runFailed : EventType.runSucceeded, stream, #"{"run":"\#(run)","tasks":{"succeeded":5}}"#)
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

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
