public import ClewCore
package import ClewModel
public import Foundation
import Synchronization

/// Everything a task may know and do, each recorded so a replay can feed it back: inputs (its parents'
/// outputs), params, variables (`record`), time (`now`), randomness (seeded per attempt) and outside I/O
/// (`sideEffect`). Each `record`, `now` and `sideEffect` call is a numbered step of the attempt.
///
/// ```swift
/// Op("average", after: "readings") { ctx in
///     let readings = try ctx.input("readings", as: [Double].self)
///     let mean = readings.reduce(0, +) / Double(readings.count)
///     try ctx.record("mean", mean)
///     ctx.expect("mean is finite", mean.isFinite)
///     return mean
/// }
/// ```
public final class TaskContext: Sendable {
    public let dag: String
    public let runID: String
    public let taskID: String
    /// 1 for the first try, then 2, 3 … across retries and resubmits.
    public let attempt: Int
    /// The run's params ("conf"), defaults merged with what the run was started with. Secret-looking
    /// params are passed in full but recorded redacted.
    public let params: [String: String]
    /// The run's partition key (`2026-11-21T10:00:00Z`), if it runs for one.
    public let partition: String?
    /// Start and end of the partition's interval, microseconds since the epoch.
    public let interval: Range<Int64>?
    /// A directory for this attempt's files; it is new for every attempt, so nothing needs cleaning up.
    public var outputDirectory: URL { URL(fileURLWithPath: outputPath, isDirectory: true) }
    package let outputPath: String
    /// The seed of ``random()``, recorded in `task.started`.
    public let seed: UInt64
    /// Parents' outputs by task id.
    package let inputs: [String: RecordedValue]
    /// Chunks the five questions admitted, by dataset.
    public let consumedChunks: [ConsumedChunk]
    package let sink: any StepSink

    struct State {
        var step = 0
        var closed = false
        var rng: SplitMix64
        var expectations: [Expectation] = []
    }
    let state: Mutex<State>

    package init(
        dag: String, runID: String, taskID: String, attempt: Int, params: [String: String], partition: String?,
        interval: Range<Int64>?, outputPath: String, seed: UInt64, inputs: [String: RecordedValue],
        consumedChunks: [ConsumedChunk], sink: any StepSink
    ) {
        self.dag = dag
        self.runID = runID
        self.taskID = taskID
        self.attempt = attempt
        self.params = params
        self.partition = partition
        self.interval = interval
        self.outputPath = outputPath
        self.seed = seed
        self.inputs = inputs
        self.consumedChunks = consumedChunks
        self.sink = sink
        self.state = Mutex(State(rng: SplitMix64(seed: seed)))
    }

    /// A param of the run, or nil.
    public func param(_ name: String) -> String? { params[name] }

    /// The output of parent task `task`, decoded.
    /// - Throws: ``TaskContextError`` when `task` is not a parent or produced nothing; a decoding error
    ///   when its output is not a `T`.
    public func input<T: Decodable>(_ task: String, as type: T.Type = T.self) throws -> T {
        guard let value = inputs[task] else {
            throw TaskContextError(
                "task '\(taskID)' has no input from '\(task)' (parents with outputs: \(inputs.keys.sorted().joined(separator: ", ")))")
        }
        return try value.decode(T.self)
    }

    /// Ids of the parents that produced an output.
    public var inputTasks: [String] { inputs.keys.sorted() }

    /// The admitted chunk of `dataset`, if the task consumes one.
    public func chunk(_ dataset: String) -> ConsumedChunk? { consumedChunks.first { $0.dataset == dataset } }

    /// Records a variable as the attempt's next step. Secret-looking names are recorded as `[REDACTED]`.
    /// - Throws: ``TaskContextError`` after the attempt ended (a timed-out task cannot write), or an
    ///   encoding error.
    public func record<T: Encodable>(_ name: String, _ value: T) throws {
        let v = try RecordedValue(value, name: name)
        let step = try nextStep()
        sink.variable(step: step, name: name, kind: StepKind.variable, value: v)
    }

    /// The current time, recorded as a step (a replay returns the recorded time).
    public func now() throws -> Date {
        let step = try nextStep()
        if let replayed = try sink.replayed(step: step, kind: StepKind.now, name: "now"), let micros = try? replayed.decode(Int64.self) {
            sink.variable(step: step, name: "now", kind: StepKind.now, value: replayed)
            return Date(timeIntervalSince1970: Double(micros) / 1_000_000)
        }
        let micros = Recorder.nowMicros()
        sink.variable(step: step, name: "now", kind: StepKind.now, value: RecordedValue(canonicalJSON: Data(String(micros).utf8), type: "time_us"))
        return Date(timeIntervalSince1970: Double(micros) / 1_000_000)
    }

    /// An operator Variable (`clew variables set`), read now and recorded as a step of kind
    /// `variable_read` whose source names the `variable.set` it saw (a secret-looking key's value is
    /// recorded as `[REDACTED]`). A replay returns the value the run read, not today's; a secret is read
    /// again through its reference.
    /// - Throws: ``VariableError`` when the Variable is not set or its reference cannot be read here.
    public func variable(_ key: String) throws -> String {
        let step = try nextStep()
        if let replayed = try sink.replayed(step: step, kind: StepKind.variableRead, name: key),
            let text = try? replayed.decode(String.self), !Redaction.isSecret(key)
        {
            sink.variable(step: step, name: key, kind: StepKind.variableRead, value: replayed)
            return text
        }
        let (value, origin) = try sink.readVariable(key, step: step)
        sink.variable(step: step, name: key, kind: StepKind.variableRead, value: try RecordedValue(value, name: key), source: origin, count: nil)
        return value
    }

    /// An operator Connection (`clew connections set`): one of its hosts picked at random (from a
    /// generator of the attempt's seed and this step, so ``random()`` is not disturbed), recorded as a step
    /// of kind `connection_read` with everything the task got but the password, which is read through its
    /// reference in this process and never recorded. A replay gets the same host back.
    /// - Throws: ``VariableError`` when the Connection is not set or its password cannot be read here.
    public func connection(_ id: String) throws -> ConnectionHandle {
        let step = try nextStep()
        let what = "connection '\(id)''s password"
        if let replayed = try sink.replayed(step: step, kind: StepKind.connectionRead, name: id), let use = try? replayed.decode(ConnectionUse.self) {
            sink.variable(step: step, name: id, kind: StepKind.connectionRead, value: replayed)
            // The password through the reference the record names (a replay), else the Connection's own now.
            let origin = sink.recordedSource(step: step) ?? (try? sink.readConnection(id, step: step, pick: { _ in 0 }).origin)
            let reference = VariableStore.parse(origin: origin, type: EventType.connectionSet)?.1
            return ConnectionHandle(use: use, password: try reference.map { try VariableReference($0).read(for: what) })
        }
        var rng = SplitMix64(seed: seed ^ (UInt64(step) &* 0xA24B_AED4_963E_E407))
        let (use, origin) = try sink.readConnection(id, step: step) { n in Int(rng.next(below: UInt64(n))) }
        sink.variable(step: step, name: id, kind: StepKind.connectionRead, value: try RecordedValue(use), source: origin, count: nil)
        let reference = VariableStore.parse(origin: origin, type: EventType.connectionSet)?.1
        return ConnectionHandle(use: use, password: try reference.map { try VariableReference($0).read(for: what) })
    }

    /// An operator Variable holding JSON, decoded.
    public func variable<T: Decodable>(_ key: String, as type: T.Type) throws -> T {
        let text = try variable(key)
        do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch {
            throw TaskContextError("variable '\(key)' is not JSON of \(T.self): \(error)")
        }
    }

    /// The next number of the attempt's seeded generator (deterministic for run, task and attempt).
    public func random() -> UInt64 { state.withLock { $0.rng.nextValue() } }

    /// A seeded random Double in [0, 1).
    public func randomUnit() -> Double { Double(random() >> 11) / Double(1 << 53) }

    /// A seeded random Int in `range`.
    public func random(in range: Range<Int>) -> Int {
        range.lowerBound + Int(random() % UInt64(range.count))
    }

    /// Runs outside I/O (an API call, a clock, a file read) and records its result as a step; a replay
    /// returns the recorded result instead of running `body`.
    public func sideEffect<T: Codable & Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let step = try nextStep()
        if let replayed = try sink.replayed(step: step, kind: StepKind.sideEffect, name: name) {
            sink.variable(step: step, name: name, kind: StepKind.sideEffect, value: replayed)
            return try replayed.decode(T.self)
        }
        let result = try await body()
        sink.variable(step: step, name: name, kind: StepKind.sideEffect, value: try RecordedValue(result, name: name))
        return result
    }

    /// Records an expectation on the task's data (`rows > 0`, `no nulls`); a failed one marks the chunks the
    /// task produces invalid and fails the attempt.
    public func expect(_ name: String, _ passed: Bool, _ message: String = "") {
        state.withLock { $0.expectations.append(Expectation(name: name, passed: passed, message: message)) }
    }

    package var expectations: [Expectation] { state.withLock { $0.expectations } }

    package func nextStep() throws -> Int {
        try state.withLock { s in
            if s.closed { throw TaskContextError("task '\(taskID)' attempt \(attempt) has ended; nothing more is recorded") }
            s.step += 1
            return s.step
        }
    }

    package func close() { state.withLock { $0.closed = true } }

    /// How many steps the attempt has taken so far.
    package var stepsTaken: Int { state.withLock { $0.step } }
}

/// Where a context's steps go: the live recorder, or a replay feeding recorded values back.
package protocol StepSink: Sendable {
    /// A step happened: a variable was recorded, the time was read, a side effect returned.
    /// `source`: the `file:line` that made the step; `count`: how many times the variable changed at
    /// that line when a loop was summarized (this step is its last value).
    func variable(step: Int, name: String, kind: String, value: RecordedValue, source: String?, count: Int?)
    /// What a command task's environment gets besides its own (a replay: where the recorded steps are).
    var commandEnvironment: [String: String] { get }
    /// The recorded result of a `now` or `side_effect` step when replaying (so the task gets what it got
    /// the first time and the outside world is not touched again), else nil.
    func replayed(step: Int, kind: String, name: String) throws -> RecordedValue?
    /// An operator Variable's value and its origin (`variable.set@<seq>`, with its reference), for the
    /// read at `step` that ``replayed(step:kind:name:)`` did not answer.
    func readVariable(_ key: String, step: Int) throws -> (value: String, origin: String)
    /// An operator Connection as a task gets it now, one host picked with `pick`, and its origin.
    func readConnection(_ id: String, step: Int, pick: (Int) -> Int) throws -> (use: ConnectionUse, origin: String)
    /// The source a recorded step names (a replay), else nil.
    func recordedSource(step: Int) -> String?
}

extension StepSink {
    package func variable(step: Int, name: String, kind: String, value: RecordedValue) {
        variable(step: step, name: name, kind: kind, value: value, source: nil, count: nil)
    }

    package var commandEnvironment: [String: String] { [:] }

    package func readVariable(_ key: String, step: Int) throws -> (value: String, origin: String) {
        throw TaskContextError("variable '\(key)' cannot be read here: no ledger holds Variables")
    }

    package func readConnection(_ id: String, step: Int, pick: (Int) -> Int) throws -> (use: ConnectionUse, origin: String) {
        throw TaskContextError("connection '\(id)' cannot be read here: no ledger holds Connections")
    }

    package func recordedSource(step: Int) -> String? { nil }
}

/// The kinds of step a task context records (`variable.recorded`'s `kind`).
public enum StepKind {
    public static let variable = "variable"
    public static let now = "now"
    public static let sideEffect = "side_effect"
    /// An operator Variable read (``TaskContext/variable(_:)``); its source names the set it saw.
    public static let variableRead = "variable_read"
    /// An operator Connection used (``TaskContext/connection(_:)``): the host given; its source names the set.
    public static let connectionRead = "connection_read"
    /// Row-level lineage of a collection (``Rows``), recorded by ``TaskContext/output(_:)``.
    public static let rows = "rows"
}

/// A chunk the five questions admitted for a task.
public struct ConsumedChunk: Sendable, Hashable {
    package init(dataset: String, key: String, location: String?, digest: String?, lease: String) {
        self.dataset = dataset
        self.key = key
        self.location = location
        self.digest = digest
        self.lease = lease
    }

    public var dataset: String
    public var key: String
    /// An absolute path, or `value:<digest>`.
    public var location: String?
    public var digest: String?
    public var lease: String

    /// The chunk's file, when it has one.
    public var url: URL? {
        guard let location, location.hasPrefix("/") else { return nil }
        return URL(fileURLWithPath: location)
    }
}

/// An expectation evaluated by a task.
public struct Expectation: Sendable, Hashable {
    public var name: String
    public var passed: Bool
    public var message: String
}

/// A misuse of a task context, named.
public struct TaskContextError: ClewError {
    public var description: String
    public var category: ErrorCategory
    public init(_ category: ErrorCategory = .invalidInput, _ description: String) {
        self.description = description
        self.category = category
    }
    public init(_ description: String) { self.init(.invalidInput, description) }
}
