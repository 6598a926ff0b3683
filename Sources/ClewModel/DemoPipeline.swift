import Foundation

/// A deterministic simulation of a daily sales pipeline, producing the event stream Clew's engine
/// records for it: DAG registration, runs with params, tasks with attempts and retries, hourly chunks
/// moving through their life cycle, the five questions before each consumption, recorded variables
/// and content-addressed values, and the occasional failure that propagates downstream.
///
/// ```swift
/// let events = DemoPipeline(seed: 7).events(runs: 30)
/// ```
/// Same seed, same events, byte for byte: tests and benchmarks use it as a fixture generator.
public struct DemoPipeline: Sendable {
    public let dag = "daily_sales"
    public var seed: UInt64
    /// Time of the first run, microseconds since the epoch (2026-11-01T02:00:00Z by default).
    public var start: Int64

    public struct TaskSpec: Sendable {
        public let name: String
        public let upstream: [String]
        public let consumes: String?
        public let produces: String?
    }

    /// The DAG: two extracts in parallel, validation, a join, an aggregate and a load.
    public static let tasks: [TaskSpec] = [
        TaskSpec(name: "extract_orders", upstream: [], consumes: nil, produces: "raw.orders"),
        TaskSpec(name: "extract_customers", upstream: [], consumes: nil, produces: "raw.customers"),
        TaskSpec(name: "validate_orders", upstream: ["extract_orders"], consumes: "raw.orders", produces: "clean.orders"),
        TaskSpec(name: "join_customers", upstream: ["validate_orders", "extract_customers"], consumes: "clean.orders", produces: "enriched.orders"),
        TaskSpec(name: "aggregate_daily", upstream: ["join_customers"], consumes: "enriched.orders", produces: "mart.daily_sales"),
        TaskSpec(name: "load_warehouse", upstream: ["aggregate_daily"], consumes: "mart.daily_sales", produces: nil),
    ]

    public init(seed: UInt64 = 42, start: Int64 = 1_793_498_400_000_000) {
        self.seed = seed
        self.start = start
    }

    /// Events for `runs` consecutive daily runs.
    public func events(runs: Int) -> [DomainEvent] {
        var out: [DomainEvent] = []
        out.reserveCapacity(runs * 160 + 1)
        var rng = SplitMix64(seed: seed)
        var clock = start
        let definition = Self.tasks.map { "\($0.name)<-\($0.upstream.joined(separator: ","))" }.joined(separator: ";")
        let definitionHash = String(format: "%016llx", fnv1a(definition))
        out.append(
            DomainEvent(
                type: EventType.dagRegistered, stream: StreamID.dag(dag), actor: "clew-cli", timestampMicros: clock,
                payload: DAGRegistered(dag: dag, version: definitionHash, tasks: Self.tasks.map(\.name)).payloadData))
        for runIndex in 0..<runs {
            clock = start + Int64(runIndex) * 86_400_000_000 + Int64(rng.next(below: 90_000_000))
            simulateRun(index: runIndex, definitionHash: definitionHash, clock: &clock, rng: &rng, into: &out)
        }
        return out
    }

    private func simulateRun(
        index: Int, definitionHash: String, clock: inout Int64, rng: inout SplitMix64, into out: inout [DomainEvent]
    ) {
        let day = ISO8601.string(micros: start + Int64(index) * 86_400_000_000).prefix(10)
        let runID = "\(day)T02-\(String(format: "%04x", rng.next(below: 65_536)))"
        let stream = StreamID.run(dag: dag, run: runID)
        func emit<P: EventPayload>(_ type: String, actor: String, _ payload: P, to target: String? = nil) {
            clock += Int64(rng.next(below: 40_000)) + 500
            out.append(DomainEvent(type: type, stream: target ?? stream, actor: actor, timestampMicros: clock, payload: payload.payloadData))
        }
        func recorded<T: Encodable>(_ value: T) -> RecordedValue {
            // Numbers and strings always encode.
            (try? RecordedValue(value)) ?? RecordedValue(canonicalJSON: Data("null".utf8), type: "null")
        }
        let params = ["date": String(day), "region": "eu-west", "full_refresh": "false"]
        emit(EventType.runQueued, actor: "scheduler", RunQueued(dag: dag, run: runID, dagVersion: definitionHash, params: params, trigger: "scheduled"))
        emit(
            EventType.runStarted, actor: "scheduler",
            RunStarted(dag: dag, run: runID, pid: Int(rng.next(below: 30_000) + 1000), host: "scheduler-1", maxActiveTasks: 8))

        // One run in nine has a flaky extract (retried); about one in eight a validation that fails for good.
        let flaky = rng.next(below: 9) == 0
        let broken = rng.next(below: 13) == 0 || index % 17 == 11  // day 12 of every 17 has bad input
        var failed: Set<String> = []
        for task in Self.tasks {
            let worker = "worker-\(rng.next(below: 4) + 1)"
            if task.upstream.contains(where: failed.contains) {
                failed.insert(task.name)
                emit(EventType.taskUpstreamFailed, actor: "scheduler", TaskEvent(task: task.name, upstream: task.upstream.filter(failed.contains)))
                continue
            }
            emit(EventType.taskScheduled, actor: "scheduler", TaskEvent(task: task.name, attempt: 1, slot: Int(rng.next(below: 8))))
            var attempt = 1
            if flaky && task.name == "extract_orders" {
                emit(EventType.taskStarted, actor: worker, TaskEvent(task: task.name, attempt: 1, seed: String(rng.nextValue(), radix: 16)))
                emit(
                    EventType.taskFailed, actor: worker,
                    TaskEvent(task: task.name, attempt: 1, error: "ConnectionResetError: source database closed the connection", exitCode: 1))
                emit(
                    EventType.taskRetrying, actor: "scheduler",
                    TaskEvent(task: task.name, attempt: 1, reason: "exit code 1", nextAttempt: 2, backoffMillis: 30_000))
                attempt = 2
            }
            emit(EventType.taskStarted, actor: worker, TaskEvent(task: task.name, attempt: attempt, seed: String(rng.nextValue(), radix: 16)))
            var rows = 0
            for hour in 0..<24 {
                let partition = "\(day)T\(String(format: "%02d", hour))"
                if let input = task.consumes {
                    let chunk = "\(input)/\(partition)"
                    let yes = QuestionAnswer(answer: true, evidence: nil)
                    emit(
                        EventType.questionAnswered, actor: worker,
                        QuestionAnswered(
                            task: task.name, attempt: attempt, dataset: input, chunk: chunk, ready: yes, right: yes, location: yes, validated: yes,
                            safe: yes, allYes: true))
                    var consuming = ChunkChange(dataset: input, chunk: chunk, from: .ready, to: .consuming)
                    consuming.run = runID
                    consuming.task = task.name
                    emit(EventType.chunkStatusChanged, actor: worker, consuming, to: StreamID.dataset(input))
                }
                let chunkRows = Int(rng.next(below: 9_000) + 1_000)
                rows += chunkRows
                if let output = task.produces {
                    let chunk = "\(output)/\(partition)"
                    let digest = String(format: "%016llx%016llx%016llx%016llx", rng.nextValue(), rng.nextValue(), rng.nextValue(), rng.nextValue())
                    emit(
                        EventType.valueProduced, actor: worker,
                        ValueEvent(task: task.name, attempt: attempt, digest: digest, valueType: "chunk", rows: chunkRows, bytes: chunkRows * 48))
                    var ready = ChunkChange(dataset: output, chunk: chunk, from: .producing, to: .ready)
                    ready.run = runID
                    ready.task = task.name
                    ready.attempt = attempt
                    ready.digest = digest
                    ready.bytes = Int64(chunkRows * 48)
                    emit(EventType.chunkStatusChanged, actor: worker, ready, to: StreamID.dataset(output))
                }
            }
            let rowCount = recorded(rows)
            emit(
                EventType.variableRecorded, actor: worker,
                ValueEvent(
                    task: task.name, attempt: attempt, step: 1, name: "rows", kind: "variable", digest: rowCount.digest, valueType: "Int",
                    value: try? JSONFragment(text: rowCount.text)))
            let nullRatio = recorded(Double(rng.next(below: 1000)) / 100_000)
            emit(
                EventType.variableRecorded, actor: worker,
                ValueEvent(
                    task: task.name, attempt: attempt, step: 2, name: "null_ratio", kind: "variable", digest: nullRatio.digest,
                    valueType: "Double", value: try? JSONFragment(text: nullRatio.text)))
            if broken && task.name == "validate_orders" {
                failed.insert(task.name)
                emit(
                    EventType.taskFailed, actor: worker,
                    TaskEvent(task: task.name, attempt: attempt, error: "expectation failed: amount >= 0 (17 rows negative)", exitCode: 2))
                continue
            }
            emit(
                EventType.taskSucceeded, actor: worker,
                TaskEvent(task: task.name, attempt: attempt, durationMillis: Int(rng.next(below: 600_000) + 2_000)))
        }
        if failed.isEmpty {
            emit(EventType.runSucceeded, actor: "scheduler", RunEnded(run: runID, tasks: ["succeeded": Self.tasks.count]))
        } else {
            emit(EventType.runFailed, actor: "scheduler", RunEnded(run: runID, failedTasks: failed.sorted()))
        }
    }

    private func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }
}

/// A small, fast, seedable generator (SplitMix64), so fixtures are reproducible across platforms.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 { nextValue() }
    public mutating func nextValue() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func next(below bound: UInt64) -> UInt64 { nextValue() % bound }
}
