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
                payload: JSON.Value.object([
                    ("dag", .string(dag)), ("version", .string(definitionHash)),
                    ("tasks", .array(Self.tasks.map { .string($0.name) })),
                ]).data))
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
        func emit(_ type: String, actor: String, _ fields: [(String, JSON.Value)]) {
            clock += Int64(rng.next(below: 40_000)) + 500
            out.append(DomainEvent(type: type, stream: stream, actor: actor, timestampMicros: clock, payload: JSON.Value.object(fields).data))
        }
        let params: JSON.Value = .object([("date", .string(String(day))), ("region", .string("eu-west")), ("full_refresh", .bool(false))])
        emit(EventType.runQueued, actor: "scheduler", [("dag", .string(dag)), ("dag_version", .string(definitionHash)), ("params", params)])
        emit(EventType.runStarted, actor: "scheduler", [("dag", .string(dag)), ("run", .string(runID))])

        // One run in nine has a flaky extract (retried); about one in eight a validation that fails for good.
        let flaky = rng.next(below: 9) == 0
        let broken = rng.next(below: 13) == 0 || index % 17 == 11  // day 12 of every 17 has bad input
        var failed: Set<String> = []
        for task in Self.tasks {
            let worker = "worker-\(rng.next(below: 4) + 1)"
            if task.upstream.contains(where: failed.contains) {
                failed.insert(task.name)
                emit(EventType.taskUpstreamFailed, actor: "scheduler", [("task", .string(task.name)), ("upstream", .array(task.upstream.filter(failed.contains).map { .string($0) }))])
                continue
            }
            emit(EventType.taskScheduled, actor: "scheduler", [("task", .string(task.name)), ("attempt", .int(1)), ("slot", .int(Int64(rng.next(below: 8))))])
            var attempt: Int64 = 1
            if flaky && task.name == "extract_orders" {
                emit(EventType.taskStarted, actor: worker, [("task", .string(task.name)), ("attempt", .int(1)), ("pid", .int(Int64(rng.next(below: 30_000) + 1000)))])
                emit(EventType.taskFailed, actor: worker, [("task", .string(task.name)), ("attempt", .int(1)), ("error", .string("ConnectionResetError: source database closed the connection")), ("exit_code", .int(1))])
                emit(EventType.taskRetrying, actor: "scheduler", [("task", .string(task.name)), ("attempt", .int(2)), ("backoff_ms", .int(30_000))])
                attempt = 2
            }
            emit(EventType.taskStarted, actor: worker, [("task", .string(task.name)), ("attempt", .int(attempt)), ("pid", .int(Int64(rng.next(below: 30_000) + 1000)))])
            var rows: Int64 = 0
            for hour in 0..<24 {
                let partition = "\(day)T\(String(format: "%02d", hour))"
                if let input = task.consumes {
                    let chunk = "\(input)/\(partition)"
                    emit(EventType.questionAnswered, actor: worker, [
                        ("task", .string(task.name)), ("chunk", .string(chunk)),
                        ("ready", .bool(true)), ("right", .bool(true)), ("location", .bool(true)), ("validated", .bool(true)), ("safe", .bool(true)),
                    ])
                    emit(EventType.chunkStatusChanged, actor: worker, [("dataset", .string(input)), ("chunk", .string(chunk)), ("from", .string("ready")), ("to", .string("consuming"))])
                }
                let chunkRows = Int64(rng.next(below: 9_000) + 1_000)
                rows += chunkRows
                if let output = task.produces {
                    let chunk = "\(output)/\(partition)"
                    emit(EventType.valueProduced, actor: worker, [
                        ("task", .string(task.name)), ("chunk", .string(chunk)), ("rows", .int(chunkRows)),
                        ("digest", .string(String(format: "sha256:%016llx%016llx", rng.nextValue(), rng.nextValue()))),
                    ])
                    emit(EventType.chunkStatusChanged, actor: worker, [("dataset", .string(output)), ("chunk", .string(chunk)), ("from", .string("producing")), ("to", .string("ready"))])
                }
            }
            emit(EventType.variableRecorded, actor: worker, [("task", .string(task.name)), ("step", .int(1)), ("name", .string("rows")), ("value", .int(rows))])
            emit(EventType.variableRecorded, actor: worker, [("task", .string(task.name)), ("step", .int(2)), ("name", .string("null_ratio")), ("value", .double(Double(rng.next(below: 1000)) / 100_000))])
            if broken && task.name == "validate_orders" {
                failed.insert(task.name)
                emit(EventType.taskFailed, actor: worker, [("task", .string(task.name)), ("attempt", .int(attempt)), ("error", .string("expectation failed: amount >= 0 (17 rows negative)")), ("exit_code", .int(2))])
                continue
            }
            emit(EventType.taskSucceeded, actor: worker, [("task", .string(task.name)), ("attempt", .int(attempt)), ("duration_ms", .int(Int64(rng.next(below: 600_000) + 2_000))), ("rows_out", .int(rows))])
        }
        if failed.isEmpty {
            emit(EventType.runSucceeded, actor: "scheduler", [("run", .string(runID)), ("tasks", .int(Int64(Self.tasks.count)))])
        } else {
            emit(EventType.runFailed, actor: "scheduler", [("run", .string(runID)), ("failed_tasks", .array(failed.sorted().map { .string($0) }))])
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
