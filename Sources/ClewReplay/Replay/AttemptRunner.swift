import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import Foundation
import Synchronization

/// What one replayed attempt did.
struct AttemptResult: Sendable {
    struct ChunkCheck: Sendable {
        var location: String?
        /// SHA-256 of the file now (the recorded digest for a value chunk); nil when the file is gone.
        var digest: String?
    }

    var chunkChecks: [ChunkCheck] = []
    /// The attempt was not run (an input file changed or is gone).
    var notRun = false
    var steps: [(step: Int, name: String, kind: String, value: RecordedValue)] = []
    var expectations: [Expectation] = []
    var output: RecordedValue?
    var outcome: RecordedAttempt.Outcome = .unfinished
    var branch: [String]?
    var exitCode: Int?
    var files: [String: String]?
    var env: [String: String]?
    /// Why the replay stopped the task (it asked for an outside value the record does not have).
    var stopped: String?
}

/// The replay stopped a task: it asked for a time or side effect the record does not have at that step,
/// and outside calls are never repeated.
struct ReplayStop: ClewError {
    var description: String
    var category: ErrorCategory { .conflict }
}

/// Feeds a replayed attempt its recorded time and side-effect results by step number, and collects the
/// steps it takes.
final class ReplaySink: StepSink {
    let recorded: [Int: RecordedStep]
    let taken = Mutex<[(step: Int, name: String, kind: String, value: RecordedValue)]>([])
    let stop = Mutex<String?>(nil)

    /// Where the recorded steps are written for a command task (`CLEW_REPLAY_STEPS`), so a task using
    /// Clew's Python package gets the recorded time and side-effect results back.
    let stepsFile: URL?

    init(_ steps: [RecordedStep], stepsFile: URL? = nil) {
        recorded = Dictionary(steps.map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
        self.stepsFile = stepsFile
    }

    var commandEnvironment: [String: String] {
        guard let stepsFile else { return [:] }
        if !FileManager.default.fileExists(atPath: stepsFile.path) {
            let steps = recorded.values.sorted { $0.step < $1.step }.map { s in
                JSON.Value.object([
                    ("step", .int(Int64(s.step))), ("kind", .string(s.kind)), ("name", .string(s.name)),
                    ("value", .raw(s.value.text.isEmpty ? "null" : s.value.text)),
                ])
            }
            try? Data(JSON.Value.array(steps).text.utf8).write(to: stepsFile)
        }
        return ["CLEW_REPLAY_STEPS": stepsFile.path]
    }

    func variable(step: Int, name: String, kind: String, value: RecordedValue, source: String?, count: Int?) {
        taken.withLock { $0.append((step, name, kind, value)) }
    }

    func replayed(step: Int, kind: String, name: String) throws -> RecordedValue? {
        if let r = recorded[step], r.kind == kind, r.name == name { return r.value }
        let had = recorded[step].map { "\($0.kind) '\($0.name)'" } ?? "nothing"
        let why = "at step \(step) the task asked for \(kind) '\(name)' where the record has \(had); outside calls are not repeated in a replay"
        stop.withLock { $0 = why }
        throw ReplayStop(description: why)
    }

    /// A Variable read that was recorded redacted (a secret): read again through the reference the
    /// record names, in this process; a replay never asks the Variables as they are now.
    func readVariable(_ key: String, step: Int) throws -> (value: String, origin: String) {
        guard let r = recorded[step], let (_, reference) = VariableStore.parse(origin: r.source), let reference else {
            let why = "variable '\(key)' at step \(step) was recorded redacted with no reference to read it again from"
            stop.withLock { $0 = why }
            throw ReplayStop(description: why)
        }
        return (try VariableReference(reference).read(for: "variable '\(key)'"), r.source ?? "")
    }

    func recordedSource(step: Int) -> String? { recorded[step]?.source }
}


/// Runs recorded attempts again, each in a fresh directory under the replay's work directory.
struct AttemptRunner: Sendable {
    let dag: DAG
    let recording: RecordedRun
    let params: [String: String]
    let work: URL
    let ledgerDirectory: URL
    let executions: [String: RunExecution]

    init(ledger: Ledger, registry: DAGRegistry, dag: DAG, recording: RecordedRun, params: [String: String], work: URL) {
        self.dag = dag
        self.recording = recording
        self.params = params
        self.work = work
        self.ledgerDirectory = ledger.directory
        var triggered: [String: RecordedValue] = [:]
        for a in recording.attempts where dag.spec.tasks.first(where: { $0.id == a.task })?.kind == .trigger {
            if let o = a.output { triggered[a.task] = o }
        }
        let feed = BranchFeed(originalRunID: recording.key.run, triggered: triggered)
        var executions: [String: RunExecution] = [:]
        for name in ["replay", "probe"] {
            let engine = Engine(ledger: ledger, registry: registry, options: Engine.Options(dataDirectory: work.appendingPathComponent(name)))
            executions[name] = RunExecution(
                engine: engine, dag: dag, runID: recording.key.run, params: params, partition: recording.partition, branch: feed)
        }
        self.executions = executions
    }

    /// The replay's directory for an attempt and the original's (to compare messages that name paths).
    func paths(_ a: RecordedAttempt, directory: String) -> (replay: String, original: String) {
        let replay = executions[directory]!.attemptPath(a.task, a.attempt)
        let original = a.outputDirectory
            ?? ledgerDirectory.appendingPathComponent("data/runs/\(recording.key.dag)/\(recording.key.run)/\(a.task)/\(a.attempt)").path
        return (replay, original)
    }

    /// The parents' outputs the attempt consumed: replayed ones where the parent was replayed, else recorded.
    func inputs(for a: RecordedAttempt, replayed: [String: RecordedValue]) -> [String: RecordedValue] {
        var out: [String: RecordedValue] = [:]
        for u in a.upstream {
            if let v = replayed[u.fromTask] {
                out[u.fromTask] = v
            } else if let i = recording.producer(of: u.fromTask, digest: u.digest), let v = recording.attempts[i].output {
                out[u.fromTask] = v
            }
        }
        return out
    }

    /// Where a recorded chunk is now: its recorded location if the content still matches, else a copy
    /// imported with a run bundle (`<ledger>/data/files/<sha256>`).
    func locate(_ c: RecordedChunkInput) -> AttemptResult.ChunkCheck { Self.locate(c, ledgerDirectory: ledgerDirectory) }

    static func locate(_ c: RecordedChunkInput, ledgerDirectory: URL) -> AttemptResult.ChunkCheck {
        guard let location = c.location else {
            if let d = c.digest {
                let imported = ledgerDirectory.appendingPathComponent("data/files/\(d)")
                if ContentDigest.sha256(file: imported) == d { return .init(location: imported.path, digest: d) }
            }
            return .init(location: nil, digest: nil)
        }
        if location.hasPrefix("value:") { return .init(location: location, digest: c.digest) }
        let current = ContentDigest.sha256(file: URL(fileURLWithPath: location))
        if current == c.digest || c.digest == nil { return .init(location: location, digest: current) }
        if let d = c.digest {
            let imported = ledgerDirectory.appendingPathComponent("data/files/\(d)")
            if ContentDigest.sha256(file: imported) == d { return .init(location: imported.path, digest: d) }
        }
        return .init(location: location, digest: current)
    }

    func run(_ a: RecordedAttempt, inputs: [String: RecordedValue], directory: String) async -> AttemptResult {
        var result = AttemptResult()
        guard let spec = dag.spec.tasks.first(where: { $0.id == a.task }) else {
            result.outcome = .failed("task \(a.task) is not in DAG \(dag.name) as defined now")
            return result
        }
        var chunks: [ConsumedChunk] = []
        for c in a.chunks {
            let check = locate(c)
            result.chunkChecks.append(check)
            if check.digest != c.digest { result.notRun = true }
            chunks.append(ConsumedChunk(dataset: c.dataset, key: c.key, location: check.location, digest: c.digest, lease: "replay"))
        }
        if result.notRun { return result }
        let execution = executions[directory]!
        let path = execution.attemptPath(a.task, a.attempt)
        try? FileManager.default.removeItem(atPath: path)
        let sink = ReplaySink(a.steps, stepsFile: spec.kind == .command ? work.appendingPathComponent("steps-\(a.task)-\(a.attempt)-\(UUID().uuidString.prefix(8)).json") : nil)
        let context = TaskContext(
            dag: dag.name, runID: recording.key.run, taskID: a.task, attempt: a.attempt, params: params,
            partition: recording.partition?.key, interval: recording.partition.map { $0.start..<$0.end }, outputPath: path,
            seed: a.seed ?? execution.seed(task: a.task, attempt: a.attempt), inputs: inputs, consumedChunks: chunks, sink: sink)
        let body: Result<RunExecution.BodyOutcome, any Error>
        do {
            body = .success(try await withTimeout(spec.timeoutMillis, stopsCooperatively: spec.kind == .command) {
                try await execution.runBody(spec, context: context)
            })
        } catch {
            body = .failure(error)
        }
        context.close()
        result.steps = sink.taken.withLock { $0 }
        result.stopped = sink.stop.withLock { $0 }
        result.expectations = context.expectations
        switch body {
        case .success(let o):
            if let command = o.command {
                result.exitCode = command.exitCode.map(Int.init)
                result.files = Dictionary(command.files.map { ($0.path, $0.sha256) }, uniquingKeysWith: { a, _ in a })
                result.env = command.env
            }
            if let skipped = o.skipped {
                result.outcome = .skipped(skipped)
            } else if let failure = o.failure {
                result.outcome = .failed(failure)
            } else {
                result.output = o.output.flatMap { $0.json.isEmpty ? nil : $0 }
                let failed = result.expectations.filter { !$0.passed }
                result.outcome = failed.isEmpty ? .succeeded : .failed(RunExecution.expectationFailure(failed))
                result.branch = o.chosen
            }
        case .failure(let error):
            result.outcome = .failed("\(error)")
        }
        return result
    }
}
