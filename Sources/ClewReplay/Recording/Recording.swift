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

/// The fold behind ``RecordedRun/load(_:from:)``: one pass over the run's stream, payloads read with
/// ``PayloadFields`` so recorded values keep their exact bytes.
struct RecordingLoader {
    let ledger: Ledger
    let key: RunKey
    var values: [String: RecordedValue] = [:]

    init(ledger: Ledger, key: RunKey) {
        self.ledger = ledger
        self.key = key
    }

    mutating func value(_ f: PayloadFields) throws -> RecordedValue? {
        guard let digest = f.string("digest") else { return nil }
        let type = f.string("value_type") ?? "json"
        if let raw = f.raw("value") ?? (f.members["value"] != nil ? Data("null".utf8) : nil) {
            return RecordedValue(json: raw, digest: digest, type: type)
        }
        if let v = values[digest] { return v }
        guard let stored = try ledger.events(inStream: StreamID.value(digest), limit: 1).first,
            let s = PayloadFields(stored.payload), let raw = s.raw("value")
        else { return nil }
        let v = RecordedValue(json: raw, digest: digest, type: s.string("value_type") ?? type)
        values[digest] = v
        return v
    }

    mutating func load() throws -> RecordedRun {
        var run: RecordedRun?
        var open: [String: Int] = [:]  // "task#attempt" -> index in attempts
        var attempts: [RecordedAttempt] = []
        var decisions: [String: String] = [:]
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
                guard let f = PayloadFields(e.payload) else { continue }
                if e.type == EventType.runQueued {
                    if run == nil {
                        var partition: Partition?
                        if let p = f.string("partition"), let s = f.string("interval_start").flatMap(PartitionKey.parse),
                            let end = f.string("interval_end").flatMap(PartitionKey.parse)
                        {
                            partition = Partition(key: p, start: s, end: end)
                        }
                        run = RecordedRun(
                            key: key, version: f.string("dag_version"), params: f.stringMap("params") ?? [:], partition: partition,
                            trigger: f.string("trigger") ?? "manual", branchOf: f.string("branch_of"), environment: nil,
                            status: "running", attempts: [], decisions: [:], seqs: e.seq...e.seq)
                    }
                    continue
                }
                guard run != nil else { continue }
                switch e.type {
                case EventType.runStarted:
                    if run?.environment == nil, let b = f.string("build_id") {
                        run?.environment = RunEnvironment(buildID: b, os: f.string("os") ?? "", arch: f.string("arch") ?? "")
                    }
                    run?.status = "running"
                case EventType.runSucceeded: run?.status = "succeeded"
                case EventType.runFailed: run?.status = "failed"
                case EventType.runCancelled: run?.status = "cancelled"
                case EventType.taskSkipped, EventType.taskUpstreamFailed:
                    guard let task = f.string("task") else { continue }
                    if let a = f.int("attempt"), let i = open["\(task)#\(a)"] {
                        attempts[i].outcome = .skipped(f.string("reason") ?? "")
                        attempts[i].endSeq = e.seq
                    } else {
                        decisions[task] = e.type == EventType.taskSkipped
                            ? "skipped: \(f.string("reason") ?? "")" : "upstream_failed: \((f.strings("upstream") ?? []).joined(separator: ", "))"
                    }
                default:
                    guard let task = f.string("task"), let a = f.int("attempt") else { continue }
                    switch e.type {
                    case EventType.taskStarted:
                        let i = index(task, a, seq: e.seq)
                        attempts[i].startSeq = e.seq
                        attempts[i].seed = f.string("seed").flatMap { UInt64($0, radix: 16) }
                        attempts[i].outputDirectory = f.string("output_dir")
                    case EventType.taskBlocked:
                        let i = index(task, a, seq: e.seq)
                        attempts[i].outcome = .blocked(f.string("reason") ?? "")
                        attempts[i].endSeq = e.seq
                    case EventType.valueConsumed:
                        let i = index(task, a, seq: e.seq)
                        if let from = f.string("from_task") {
                            attempts[i].upstream.append(RecordedInput(fromTask: from, digest: f.string("digest") ?? "", seq: e.seq))
                        } else if let dataset = f.string("dataset"), let chunk = f.string("chunk") {
                            attempts[i].chunks.append(RecordedChunkInput(
                                dataset: dataset, key: chunk, digest: f.string("digest"), location: f.string("location"), seq: e.seq))
                        }
                    case EventType.variableRecorded:
                        let i = index(task, a, seq: e.seq)
                        if let v = try value(f) {
                            attempts[i].steps.append(RecordedStep(
                                step: f.int("step") ?? attempts[i].steps.count + 1, name: f.string("name") ?? "?",
                                kind: f.string("kind") ?? StepKind.variable, value: v, seq: e.seq))
                        }
                    case EventType.expectationEvaluated:
                        let i = index(task, a, seq: e.seq)
                        attempts[i].expectations.append(RecordedExpectation(
                            name: f.string("name") ?? "", passed: f.bool("passed") ?? false, message: f.string("message") ?? ""))
                    case EventType.valueProduced:
                        let i = index(task, a, seq: e.seq)
                        attempts[i].output = try value(f)
                        attempts[i].outputSeq = e.seq
                    case EventType.taskSucceeded, EventType.taskFailed:
                        let i = index(task, a, seq: e.seq)
                        attempts[i].outcome = e.type == EventType.taskSucceeded ? .succeeded : .failed(f.string("error") ?? "")
                        attempts[i].endSeq = e.seq
                        attempts[i].branch = f.strings("branch")
                        if f.members["exit_code"] != nil || f.members["argv"] != nil {
                            var files: [String: String] = [:]
                            for item in (f.any("files") as? [[String: Any]]) ?? [] {
                                if let p = item["path"] as? String, let s = item["sha256"] as? String { files[p] = s }
                            }
                            attempts[i].command = RecordedCommand(
                                exitCode: f.int("exit_code"), files: files, argv: f.strings("argv"), cwd: f.string("cwd"),
                                env: f.stringMap("env"), stdout: f.string("stdout"))
                        }
                    default:
                        break
                    }
                }
            }
        }
        guard var run else {
            throw ReplayError(.notFound, "run \(key) is not in the ledger (stream \(key.stream) has no run.queued)")
        }
        run.seqs = run.seqs.lowerBound...max(last, run.seqs.lowerBound)
        run.attempts = attempts
        run.decisions = decisions
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
                    for e in try ledger.events(inStream: StreamID.dataset(chunk.dataset)) where e.seq <= run.seqs.upperBound {
                        if let f = PayloadFields(e.payload), let loc = f.string("location"), let k = f.string("chunk") {
                            map["\(k) \(f.string("digest") ?? "")"] = loc
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
