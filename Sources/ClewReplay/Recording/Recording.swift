public import ClewCore
public import ClewEngine
public import ClewLedger
public import ClewModel
public import ClewProjections
import Foundation

/// A recorded run, folded from its stream: what a replay feeds back and compares, and what an inspector
/// steps through.
public struct RecordedRun: Sendable {
    public var key: RunKey
    /// The DAG version (definition hash) the run was queued with.
    public var version: String?
    /// Params as recorded (secret-looking ones redacted).
    public var params: [String: String]
    public var partition: Partition?
    public var trigger: String
    /// The run this one is a branch (counterfactual) of.
    public var branchOf: String?
    /// Where it ran (from the first `run.started`); nil for runs recorded before it was recorded.
    public var environment: RunEnvironment?
    /// `succeeded`, `failed`, `cancelled`, or `running` when no terminal event was recorded.
    public var status: String
    /// Every attempt, in the order it started (blocked ones where they were blocked).
    public var attempts: [RecordedAttempt]
    /// Tasks skipped or marked upstream_failed without running, with the recorded reason.
    public var decisions: [String: String]
    /// First and last seq of the run's stream.
    public var seqs: ClosedRange<UInt64>
    /// Events of the run whose payloads were erased (`clew erase`): a replay cannot be fed from them.
    public var erased: [UInt64] = []

    /// The last attempt that produced each (task, output digest): what a consumed input came from.
    var producers: [String: Int] = [:]

    /// Every step of every attempt in recorded order, with the attempt it belongs to.
    public var stepCount: Int { attempts.reduce(0) { $0 + $1.steps.count } }

    /// Index (into ``attempts``) of the last attempt of `task` whose output has `digest`.
    public func producer(of task: String, digest: String) -> Int? { producers["\(task)\u{0}\(digest)"] }

    /// The last attempt of `task`.
    public func lastAttempt(of task: String) -> RecordedAttempt? { attempts.last { $0.task == task } }
}

/// One attempt of one task, as recorded.
public struct RecordedAttempt: Sendable {
    public enum Outcome: Sendable, Hashable {
        case succeeded
        case failed(String)
        case skipped(String)
        case blocked(String)
        /// No outcome was recorded (the run was interrupted).
        case unfinished

        public var word: String {
            switch self {
            case .succeeded: return "succeeded"
            case .failed: return "failed"
            case .skipped: return "skipped"
            case .blocked: return "blocked"
            case .unfinished: return "unfinished"
            }
        }

        public var detail: String? {
            switch self {
            case .failed(let s), .skipped(let s), .blocked(let s): return s
            default: return nil
            }
        }
    }

    public var task: String
    public var attempt: Int
    public var seed: UInt64?
    /// Seq of `task.started` (of `task.blocked` for an attempt that never started).
    public var startSeq: UInt64
    public var upstream: [RecordedInput]
    public var chunks: [RecordedChunkInput]
    public var steps: [RecordedStep]
    public var expectations: [RecordedExpectation]
    public var output: RecordedValue?
    public var outputSeq: UInt64?
    public var outcome: Outcome
    public var endSeq: UInt64?
    /// What a branch task chose.
    public var branch: [String]?
    /// A command task's recorded result: exit code, files, argv, cwd, env, stdout.
    public var command: RecordedCommand?
    /// The attempt's directory, when recorded (command tasks).
    public var outputDirectory: String?

    public var id: String { "\(task)#\(attempt)" }
}

/// A parent's output an attempt consumed.
public struct RecordedInput: Sendable, Hashable {
    public var fromTask: String
    public var digest: String
    public var seq: UInt64
}

/// A chunk an attempt was admitted to read.
public struct RecordedChunkInput: Sendable, Hashable {
    public var dataset: String
    public var key: String
    public var digest: String?
    public var location: String?
    public var seq: UInt64
}

/// One step of an attempt: a variable recorded, the time read, a side effect's result.
public struct RecordedStep: Sendable, Hashable {
    public var step: Int
    public var name: String
    public var kind: String
    public var value: RecordedValue
    public var seq: UInt64
    /// The source line (`file:line`) that made the step, when the task said (Clew's Python package does).
    public var source: String? = nil
    /// How many times the variable changed at that line, when a loop was summarized (this step is its last value).
    public var count: Int? = nil
}

public struct RecordedExpectation: Sendable, Hashable {
    public var name: String
    public var passed: Bool
    public var message: String
}

public struct RecordedCommand: Sendable, Hashable {
    public var exitCode: Int?
    public var files: [String: String]
    public var argv: [String]?
    public var cwd: String?
    public var env: [String: String]?
    public var stdout: String?
}

/// Why a run cannot be loaded, named.
public struct ReplayError: ClewError {
    public var description: String
    public var category: ErrorCategory
    public init(_ category: ErrorCategory = .invalidInput, _ description: String) {
        self.description = description
        self.category = category
    }
    public init(_ description: String) { self.init(.invalidInput, description) }
}

extension RecordedRun {
    /// Folds the run's stream (and the values it refers to by digest).
    /// - Throws: ``ReplayError`` when the stream is empty or has no `run.queued`; ledger errors.
    public static func load(_ key: RunKey, from ledger: Ledger) throws -> RecordedRun {
        var loader = RecordingLoader(ledger: ledger, key: key)
        return try loader.load()
    }
}

/// The fold behind ``RecordedRun/load(_:from:)``: one pass over the run's stream, each payload decoded
/// as its type in the event schema; a recorded value's bytes are sliced out of the payload with
/// ``PayloadFields`` so they stay exactly the canonical JSON they were hashed as.
struct RecordingLoader {
    let ledger: Ledger
    let key: RunKey
    var values: [String: RecordedValue] = [:]
    let decoder = JSONDecoder()

    init(ledger: Ledger, key: RunKey) {
        self.ledger = ledger
        self.key = key
    }

    /// The value a `variable.recorded`/`value.produced` event describes: inline, or from its `value.stored`.
    mutating func value(_ v: ValueEvent, payload: Data) throws -> RecordedValue? {
        let type = v.valueType ?? "json"
        if let f = PayloadFields(payload), f.members["value"] != nil {
            return RecordedValue(json: f.raw("value") ?? Data("null".utf8), digest: v.digest, type: type)
        }
        if let cached = values[v.digest] { return cached }
        guard let stored = try ledger.events(inStream: StreamID.value(v.digest), limit: 1).first,
            let s = PayloadFields(stored.payload), let raw = s.raw("value")
        else { return nil }
        let value = RecordedValue(json: raw, digest: v.digest, type: (try? decoder.decode(ValueStored.self, from: stored.payload))?.valueType ?? type)
        values[v.digest] = value
        return value
    }

    mutating func load() throws -> RecordedRun {
        var run: RecordedRun?
        var open: [String: Int] = [:]  // "task#attempt" -> index in attempts
        var attempts: [RecordedAttempt] = []
        var decisions: [String: String] = [:]
        var erased: [UInt64] = []
        var last: UInt64 = 0
        var after: UInt64 = 0
        func index(_ task: String, _ attempt: Int, seq: UInt64) -> Int {
            let id = "\(task)#\(attempt)"
            if let i = open[id] { return i }
            attempts.append(RecordedAttempt(
                task: task, attempt: attempt, seed: nil, startSeq: seq, upstream: [], chunks: [], steps: [], expectations: [],
                output: nil, outputSeq: nil, outcome: .unfinished, endSeq: nil, branch: nil, command: nil, outputDirectory: nil))
            open[id] = attempts.count - 1
            return attempts.count - 1
        }
        while true {
            let page = try ledger.events(inStream: key.stream, after: after, limit: 65_536)
            if page.isEmpty { break }
            after = page.last!.seq
            for e in page {
                last = e.seq
                if e.payloadErased {
                    erased.append(e.seq)
                    continue
                }
                guard case .run(_, let fact) = Fact.decode(e, wanted: .run, decoder: decoder) else { continue }
                if case .queued(let q) = fact {
                    if run == nil {
                        var partition: Partition?
                        if let p = q.partition, let s = q.intervalStart.flatMap(PartitionKey.parse), let end = q.intervalEnd.flatMap(PartitionKey.parse) {
                            partition = Partition(key: p, start: s, end: end)
                        }
                        run = RecordedRun(
                            key: key, version: q.dagVersion, params: q.params ?? [:], partition: partition, trigger: q.trigger ?? "manual",
                            branchOf: q.branchOf, environment: nil, status: "running", attempts: [], decisions: [:], seqs: e.seq...e.seq)
                    }
                    continue
                }
                guard run != nil else { continue }
                switch fact {
                case .started(let s):
                    if run?.environment == nil, let b = s.buildID { run?.environment = RunEnvironment(buildID: b, os: s.os ?? "", arch: s.arch ?? "") }
                    run?.status = "running"
                case .ended(let state, _):
                    run?.status = state
                case .task(let t) where e.type == EventType.taskSkipped || e.type == EventType.taskUpstreamFailed:
                    if let a = t.attempt, let i = open["\(t.task)#\(a)"] {
                        attempts[i].outcome = .skipped(t.reason ?? "")
                        attempts[i].endSeq = e.seq
                    } else {
                        decisions[t.task] = e.type == EventType.taskSkipped
                            ? "skipped: \(t.reason ?? "")" : "upstream_failed: \((t.upstream ?? []).joined(separator: ", "))"
                    }
                case .task(let t):
                    guard let a = t.attempt else { continue }
                    let i = index(t.task, a, seq: e.seq)
                    switch e.type {
                    case EventType.taskStarted:
                        attempts[i].startSeq = e.seq
                        attempts[i].seed = t.seed.flatMap { UInt64($0, radix: 16) }
                        attempts[i].outputDirectory = t.outputDir
                    case EventType.taskBlocked:
                        attempts[i].outcome = .blocked(t.reason ?? "")
                        attempts[i].endSeq = e.seq
                    case EventType.taskSucceeded, EventType.taskFailed:
                        attempts[i].outcome = e.type == EventType.taskSucceeded ? .succeeded : .failed(t.error ?? "")
                        attempts[i].endSeq = e.seq
                        attempts[i].branch = t.branch?.tasks
                        if t.exitCode != nil || t.argv != nil {
                            attempts[i].command = RecordedCommand(
                                exitCode: t.exitCode, files: Dictionary((t.files ?? []).map { ($0.path, $0.sha256) }, uniquingKeysWith: { a, _ in a }),
                                argv: t.argv, cwd: t.cwd, env: t.env, stdout: t.stdout)
                        }
                    default:
                        break
                    }
                case .consumed(let c):
                    guard let a = c.attempt else { continue }
                    let i = index(c.task, a, seq: e.seq)
                    if let from = c.fromTask {
                        attempts[i].upstream.append(RecordedInput(fromTask: from, digest: c.digest ?? "", seq: e.seq))
                    } else if let dataset = c.dataset, let chunk = c.chunk {
                        attempts[i].chunks.append(RecordedChunkInput(dataset: dataset, key: chunk, digest: c.digest, location: c.location, seq: e.seq))
                    }
                case .value(let v):
                    guard let a = v.attempt else { continue }
                    let i = index(v.task, a, seq: e.seq)
                    if e.type == EventType.valueProduced {
                        attempts[i].output = try value(v, payload: e.payload)
                        attempts[i].outputSeq = e.seq
                    } else if let value = try value(v, payload: e.payload) {
                        attempts[i].steps.append(RecordedStep(
                            step: v.step ?? attempts[i].steps.count + 1, name: v.name ?? "?", kind: v.kind ?? StepKind.variable, value: value,
                            seq: e.seq, source: v.source, count: v.count))
                    }
                case .expectation(let x):
                    guard let a = x.attempt else { continue }
                    let i = index(x.task, a, seq: e.seq)
                    attempts[i].expectations.append(RecordedExpectation(name: x.name, passed: x.passed, message: x.message ?? ""))
                default:
                    break
                }
            }
        }
        guard var run else {
            throw ReplayError(.notFound, "run \(key) is not in the ledger (stream \(key.stream) has no run.queued)")
        }
        run.seqs = run.seqs.lowerBound...max(last, run.seqs.lowerBound)
        run.attempts = attempts
        run.decisions = decisions
        run.erased = erased
        for (i, a) in attempts.enumerated() {
            if let o = a.output { run.producers["\(a.task)\u{0}\(o.digest)"] = i }
        }
        try fillChunkLocations(&run)
        return run
    }

    /// Older recordings did not put the location in `value.consumed`: find it in the dataset's stream
    /// (the production of that chunk with that digest).
    func fillChunkLocations(_ run: inout RecordedRun) throws {
        var byDataset: [String: [String: String]] = [:]  // dataset -> "key digest" -> location
        for a in run.attempts.indices {
            for c in run.attempts[a].chunks.indices where run.attempts[a].chunks[c].location == nil {
                let chunk = run.attempts[a].chunks[c]
                if byDataset[chunk.dataset] == nil {
                    var map: [String: String] = [:]
                    for e in try ledger.events(inStream: StreamID.dataset(chunk.dataset))
                    where e.seq <= run.seqs.upperBound && e.type == EventType.chunkStatusChanged {
                        if let c = try? decoder.decode(ChunkChange.self, from: e.payload), let loc = c.location {
                            map["\(c.chunk) \(c.digest ?? "")"] = loc
                        }
                    }
                    byDataset[chunk.dataset] = map
                }
                run.attempts[a].chunks[c].location = byDataset[chunk.dataset]?["\(chunk.key) \(chunk.digest ?? "")"]
            }
        }
    }
}

extension RecordedRun {
    /// Resolves `RUN` or `DAG/RUN` to the runs in the ledger with that id.
    public static func resolve(_ text: String, in ledger: Ledger) throws -> RunKey {
        if let slash = text.firstIndex(of: "/") {
            let key = RunKey(dag: String(text[..<slash]), run: String(text[text.index(after: slash)...]))
            if try !ledger.seqs(inStream: key.stream, limit: 1).isEmpty { return key }
        }
        let keys = try ledger.streams(prefix: "run/").compactMap { RunKey(stream: $0.stream) }.filter { $0.run == text }
        guard let key = keys.first else { throw ReplayError(.notFound, "no run \(text) in the ledger (give RUN or DAG/RUN; `clew runs` lists them)") }
        guard keys.count == 1 else {
            throw ReplayError(.ambiguous, "run id \(text) is used by several DAGs: \(keys.map(\.description).joined(separator: ", ")); give DAG/RUN")
        }
        return key
    }
}
