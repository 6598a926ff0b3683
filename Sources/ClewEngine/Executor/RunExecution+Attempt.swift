import ClewCore
import ClewLedger
import ClewModel
import Foundation
import Synchronization

/// One task's life in a run: its attempts with retries and backoff (``runTask``), and each attempt's
/// phases (``runAttempt``): the five questions, the start, the body under its time limit, the outcome.
extension RunExecution {
    func runTask(_ i: Int, firstAttempt: Int, inputs: [String: RecordedValue]) async -> TaskResult {
        let spec = tasks[i]
        if let reason = branch?.blocked[spec.id] {
            let why = "blocked in the original run: \(reason)"
            emit(EventType.taskBlocked, TaskEvent(task: spec.id, attempt: firstAttempt, reason: why))
            return TaskResult(state: .blocked, error: why)
        }
        var attempt = firstAttempt
        var retriesLeft = spec.retries
        var delay = spec.retryDelayMillis
        var lost = 0
        while true {
            let pool = await takePool(spec, attempt: attempt)
            switch pool {
            case .failed(let why):
                emit(EventType.taskFailed, TaskEvent(task: spec.id, attempt: attempt, error: why))
                return TaskResult(state: .failed, error: why)
            case .cancelled:
                return TaskResult(state: .cancelled, error: "cancelled while queued for pool \(spec.pool ?? "")")
            case .none, .acquired:
                break
            }
            let result = engine.options.queue != nil && branch == nil
                ? await dispatch(spec, attempt: attempt, inputs: inputs) : await runAttempt(spec, attempt: attempt, inputs: inputs)
            await releasePool(pool, reason: "attempt \(attempt) ended")
            let reason: String
            let finalState: TaskState
            switch result {
            case .succeeded(let output, let chosen):
                return TaskResult(state: .succeeded, output: output, chosen: chosen)
            case .skipped(let why):
                emit(EventType.taskSkipped, TaskEvent(task: spec.id, attempt: attempt, reason: why))
                return TaskResult(state: .skipped)
            case .cancelled:
                return TaskResult(state: .cancelled, error: "cancelled")
            case .failed(let why):
                reason = why
                finalState = .failed
            case .blocked(let why):
                reason = why
                finalState = .blocked
            case .lost(let why):
                lost += 1
                if lost > engine.options.maxLostLeases || Task.isCancelled {
                    return TaskResult(state: Task.isCancelled ? .cancelled : .failed, error: "\(why) (\(lost) attempts lost their worker)")
                }
                emit(EventType.taskRetrying, TaskEvent(task: spec.id, attempt: attempt, reason: why, nextAttempt: attempt + 1, backoffMillis: 0))
                attempt += 1
                continue
            }
            if retriesLeft <= 0 || Task.isCancelled {
                return TaskResult(state: finalState, error: reason)
            }
            retriesLeft -= 1
            emit(EventType.taskRetrying, TaskEvent(task: spec.id, attempt: attempt, reason: reason, nextAttempt: attempt + 1, backoffMillis: delay))
            do { try await Task.sleep(for: .milliseconds(delay)) } catch {
                return TaskResult(state: .cancelled, error: "cancelled while waiting to retry")
            }
            delay = min(delay * 2, engine.options.maxBackoffMillis)
            attempt += 1
        }
    }

    /// The seed of an attempt's random generator: a hash of DAG, run, task and attempt (a branch run uses
    /// its original's run id, so it draws the same numbers).
    package func seed(task: String, attempt: Int) -> UInt64 {
        let run = branch?.originalRunID ?? runID
        let hex = ContentDigest.sha256(Data("\(dag.name)/\(run)/\(task)/\(attempt)".utf8))
        return UInt64(hex.prefix(16), radix: 16) ?? 0
    }

    func resolve(_ template: String) -> String {
        guard template.contains("{") else { return template }
        var out = template.replacingOccurrences(of: "{partition}", with: partition?.key ?? params["partition"] ?? "")
            .replacingOccurrences(of: "{run}", with: runID).replacingOccurrences(of: "{dag}", with: dag.name)
        for (k, v) in params { out = out.replacingOccurrences(of: "{param.\(k)}", with: v) }
        return out
    }

    func datasetSpec(_ name: String) -> DatasetSpec { dag.spec.dataset(name) ?? DatasetSpec(name: name) }

    /// `<data>/runs/<dag>/<run>/<task>/<attempt>`, built as text (URL parsing per attempt is measurable).
    package func attemptPath(_ task: String, _ attempt: Int) -> String {
        "\(engine.options.dataDirectory.path)/runs/\(dag.name)/\(runID)/\(task)/\(attempt)"
    }

    /// One attempt, phase by phase: admitted by the five questions, started, its body run under its time
    /// limit, its expectations recorded, and its outcome (chunks published or failed, `task.succeeded` or
    /// `task.failed`).
    func runAttempt(_ spec: TaskSpec, attempt: Int, inputs: [String: RecordedValue]) async -> AttemptResult {
        if Task.isCancelled { return .cancelled }
        let gate: Gate
        switch await askQuestions(spec, attempt: attempt) {
        case .success(let g): gate = g
        case .failure(let early): return early.result
        }
        let context = start(spec, attempt: attempt, inputs: inputs, admitted: gate.admitted)

        let clock = ContinuousClock.now
        let outcome: Result<BodyOutcome, any Error>
        do {
            outcome = .success(try await withTimeout(spec.timeoutMillis, stopsCooperatively: spec.kind == .command) {
                try await self.runBody(spec, context: context)
            })
        } catch {
            outcome = .failure(error)
        }
        context.close()
        let millis = (ContinuousClock.now - clock).milliseconds
        for e in context.expectations {
            emit(
                EventType.expectationEvaluated,
                ExpectationEvaluated(task: spec.id, attempt: attempt, name: e.name, passed: e.passed, message: e.message))
        }
        return conclude(spec, attempt: attempt, gate: gate, context: context, outcome: outcome, millis: millis)
    }

    /// An attempt that ends before it starts (blocked by a "no", or the questions could not be asked).
    struct EarlyEnd: Error {
        var result: AttemptResult
    }

    /// The five questions before consuming, then writer safety before producing (``admit(_:attempt:)``);
    /// a branch run reads what its original was admitted and asks nothing.
    func askQuestions(_ spec: TaskSpec, attempt: Int) async -> Result<Gate, EarlyEnd> {
        if let branch { return .success(Gate(admitted: branch.chunks[spec.id] ?? [])) }
        guard !spec.consumes.isEmpty || !spec.produces.isEmpty else { return .success(Gate()) }
        do {
            try await recorder.flush()
            let gate = try await admit(spec, attempt: attempt)
            if let reason = gate.blocked {
                emit(EventType.taskBlocked, TaskEvent(task: spec.id, attempt: attempt, reason: reason))
                return .failure(EarlyEnd(result: .blocked(reason)))
            }
            return .success(gate)
        } catch {
            emit(EventType.taskFailed, TaskEvent(task: spec.id, attempt: attempt, error: "\(error)"))
            return .failure(EarlyEnd(result: .failed("\(error)")))
        }
    }

    /// The attempt's context, and `task.started` with one `value.consumed` per input and admitted chunk.
    func start(_ spec: TaskSpec, attempt: Int, inputs: [String: RecordedValue], admitted: [ConsumedChunk]) -> TaskContext {
        let path = attemptPath(spec.id, attempt)
        let seed = seed(task: spec.id, attempt: attempt)
        let sink = LiveSink(execution: self, task: spec.id, attempt: attempt, feed: branch.map { StepFeed($0.steps[spec.id] ?? []) })
        let context = TaskContext(
            dag: dag.name, runID: runID, taskID: spec.id, attempt: attempt, params: params, partition: partition?.key,
            interval: partition.map { $0.start..<$0.end }, outputPath: path, seed: seed, inputs: inputs,
            consumedChunks: admitted, sink: sink)
        emit(
            EventType.taskStarted,
            TaskEvent(
                task: spec.id, attempt: attempt, seed: String(seed, radix: 16), timeoutMillis: spec.timeoutMillis,
                outputDir: spec.kind == .command ? path : nil))
        for (from, value) in inputs.sorted(by: { $0.key < $1.key }) {
            emit(EventType.valueConsumed, ValueConsumed(task: spec.id, attempt: attempt, fromTask: from, digest: value.digest))
        }
        for chunk in admitted {
            emit(
                EventType.valueConsumed,
                ValueConsumed(
                    task: spec.id, attempt: attempt, dataset: chunk.dataset, chunk: chunk.key, digest: chunk.digest,
                    location: chunk.location))
        }
        return context
    }

    /// How the attempt ended: its output and chunks published (or failed), then `task.succeeded` or
    /// `task.failed` (with why: a failed expectation or chunk, the body's failure, a timeout, a cancel).
    func conclude(
        _ spec: TaskSpec, attempt: Int, gate: Gate, context: TaskContext, outcome: Result<BodyOutcome, any Error>, millis: Int64
    ) -> AttemptResult {
        let (admitted, producing) = (gate.admitted, gate.producing)
        let expectations = context.expectations
        switch outcome {
        case .success(let result) where result.skipped != nil:
            if branch == nil { finishChunks(spec, attempt: attempt, admitted: admitted, producing: producing, produced: nil, reason: result.skipped) }
            return .skipped(result.skipped ?? "")
        case .success(let result) where result.failure == nil:
            var output = result.output
            if let o = output, o.json.count > 0 {
                emit(EventType.valueProduced, engine.values.payload(o, task: spec.id, attempt: attempt))
            } else {
                output = nil
            }
            let failedExpectations = expectations.filter { !$0.passed }
            let chunkProblem = branch != nil ? nil : finishChunks(
                spec, attempt: attempt, admitted: admitted, producing: producing,
                produced: ProducedFacts(output: output, expectations: expectations, declared: result.declaredChunks, directory: context.outputPath), reason: nil)
            if !failedExpectations.isEmpty || chunkProblem != nil {
                let why = chunkProblem ?? Self.expectationFailure(failedExpectations)
                var failed = TaskEvent(task: spec.id, attempt: attempt, durationMillis: Int(millis), error: why)
                result.command?.describe(&failed)
                emit(EventType.taskFailed, failed)
                return .failed(why)
            }
            var done = TaskEvent(
                task: spec.id, attempt: attempt, durationMillis: Int(millis), outputDigest: output?.digest, branch: result.chosen.map(BranchChoice.init))
            result.command?.describe(&done)
            emit(EventType.taskSucceeded, done)
            return .succeeded(output, chosen: result.chosen)
        case .success(let result):
            let cancelled = Task.isCancelled
            let why = cancelled ? "cancelled (\(result.failure ?? "stopped"))" : result.failure ?? "failed"
            if branch == nil { finishChunks(spec, attempt: attempt, admitted: admitted, producing: producing, produced: nil, reason: why) }
            var failed = TaskEvent(task: spec.id, attempt: attempt, durationMillis: Int(millis), error: why, cancelled: cancelled ? true : nil)
            result.command?.describe(&failed)
            emit(EventType.taskFailed, failed)
            return cancelled ? .cancelled : .failed(why)
        case .failure(let error):
            let cancelled = error is CancellationError || (Task.isCancelled && !(error is TimeoutError))
            let why = cancelled ? "cancelled" : (error as? TimeoutError).map { "\($0)" } ?? "\(error)"
            if branch == nil { finishChunks(spec, attempt: attempt, admitted: admitted, producing: producing, produced: nil, reason: why) }
            emit(
                EventType.taskFailed,
                TaskEvent(
                    task: spec.id, attempt: attempt, durationMillis: Int(millis), error: why, timedOut: error is TimeoutError ? true : nil,
                    cancelled: cancelled ? true : nil))
            return cancelled ? .cancelled : .failed(why)
        }
    }

    /// Why an attempt whose expectations failed failed (`task.failed`'s `error`).
    package static func expectationFailure(_ failed: [Expectation]) -> String {
        "expectation failed: " + failed.map { "\($0.name)\($0.message.isEmpty ? "" : " (\($0.message))")" }.joined(separator: "; ")
    }
}

/// Steps recorded live: each becomes a `variable.recorded` event in the run's stream. In a branch run,
/// `feed` hands back the original's recorded time and side-effect results.
struct LiveSink: StepSink {
    let execution: RunExecution
    let task: String
    let attempt: Int
    let feed: StepFeed?

    func variable(step: Int, name: String, kind: String, value: RecordedValue, source: String?, count: Int?) {
        var payload = execution.engine.values.payload(value, task: task, attempt: attempt)
        payload.step = step
        payload.name = name
        payload.kind = kind
        payload.source = source
        payload.count = count
        execution.emit(EventType.variableRecorded, payload)
    }

    func replayed(step: Int, kind: String, name: String) -> RecordedValue? { feed?.take(kind: kind, name: name) }

    func readVariable(_ key: String, step: Int) throws -> (value: String, origin: String) {
        try execution.engine.variables.resolve(key)
    }

    func readConnection(_ id: String, step: Int, pick: (Int) -> Int) throws -> (use: ConnectionUse, origin: String) {
        try execution.engine.connections.resolve(id, pick: pick)
    }

}

