package import ClewCore
import ClewLedger
package import ClewModel
import Foundation
import Synchronization

/// One run of one DAG: the scheduling loop (structured concurrency up to the concurrency limit), attempts
/// with retries, timeouts and backoff, failure propagation, chunks and the five questions.
///
/// A *branch* run (a counterfactual replay) runs the same way but reads what its original read: the chunks
/// it was admitted, its recorded time and side-effect results, its random seeds; it asks no questions,
/// takes no leases and publishes no chunks.
package final class RunExecution: Sendable {
    let engine: Engine
    let dag: DAG
    let runID: String
    let stream: String
    let params: [String: String]
    let partition: Partition?
    let tasks: [TaskSpec]
    let index: [String: Int]
    let children: [[Int]]
    let parents: [[Int]]
    let branch: BranchFeed?
    var recorder: Recorder { engine.recorder }

    package init(engine: Engine, dag: DAG, runID: String, params: [String: String], partition: Partition?, branch: BranchFeed? = nil) {
        self.branch = branch
        self.engine = engine
        self.dag = dag
        self.runID = runID
        self.stream = StreamID.run(dag: dag.name, run: runID)
        self.params = params
        self.partition = partition
        self.tasks = dag.spec.tasks
        let index = Dictionary(dag.spec.tasks.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.index = index
        var children = Array(repeating: [Int](), count: dag.spec.tasks.count)
        var parents = Array(repeating: [Int](), count: dag.spec.tasks.count)
        for (i, t) in dag.spec.tasks.enumerated() {
            for p in t.upstream {
                if let pi = index[p] {
                    children[pi].append(i)
                    parents[i].append(pi)
                }
            }
        }
        self.children = children
        self.parents = parents
    }

    func emit(_ type: String, _ fields: [(String, JSON.Value)]) {
        recorder.emit(type, stream: stream, .object(fields))
    }

    // MARK: - The scheduling loop

    /// What one task's attempts ended with.
    struct TaskResult: Sendable {
        var state: TaskState
        var output: RecordedValue?
        var chosen: [String]?
        var error: String?
    }

    func execute(resume: ResumeState?) async throws -> RunOutcome {
        let limit = max(1, engine.options.concurrency ?? dag.spec.maxActiveTasks)
        emit(EventType.runStarted, [
            ("dag", .string(dag.name)), ("run", .string(runID)), ("pid", .int(Int64(getpid()))),
            ("host", .string(ChunkBook.host)), ("max_active_tasks", .int(Int64(limit))),
        ] + RunEnvironment.current.fields)
        try await recorder.flush()

        let n = tasks.count
        var states = Array(repeating: TaskState.pending, count: n)
        var outputs: [Int: RecordedValue] = [:]
        var chosen: [Int: [String]] = [:]
        var errors: [String: String] = [:]
        var firstAttempt = Array(repeating: 1, count: n)
        if let resume {
            for (id, output) in resume.outputs { if let i = index[id] { outputs[i] = output } }
            for (id, c) in resume.chosen { if let i = index[id] { chosen[i] = c } }
            for (id, a) in resume.lastAttempt { if let i = index[id] { firstAttempt[i] = a + 1 } }
            for id in resume.succeeded { if let i = index[id] { states[i] = .succeeded } }
        }
        var remaining = (0..<n).map { i in parents[i].filter { !states[$0].isTerminal }.count }
        var queue: [Int] = []
        var head = 0
        var order = 0

        // Decides a task whose parents have all ended, propagating skips and failures without recursion.
        func settle(_ start: [Int]) {
            var work = start
            while let c = work.popLast() {
                guard states[c] == .pending else { continue }
                switch decide(c, states: states, chosen: chosen) {
                case .run:
                    queue.append(c)
                case .skip(let reason):
                    states[c] = .skipped
                    emit(EventType.taskSkipped, [("task", .string(tasks[c].id)), ("reason", .string(reason))])
                    work.append(contentsOf: release(c))
                case .upstreamFailed(let failed):
                    states[c] = .upstreamFailed
                    emit(EventType.taskUpstreamFailed, [("task", .string(tasks[c].id)), ("upstream", .array(failed.map { .string($0) }))])
                    work.append(contentsOf: release(c))
                }
            }
        }
        func release(_ i: Int) -> [Int] {
            var ready: [Int] = []
            for c in children[i] {
                remaining[c] -= 1
                if remaining[c] == 0 { ready.append(c) }
            }
            return ready.reversed()
        }

        settle((0..<n).filter { states[$0] == .pending && remaining[$0] == 0 }.reversed())
        var cancelled = false
        await withTaskGroup(of: (Int, TaskResult).self) { group in
            var running = 0
            func launch() {
                while running < limit, head < queue.count, !cancelled {
                    let i = queue[head]
                    head += 1
                    order += 1
                    let inputs = Dictionary(
                        parents[i].compactMap { p in outputs[p].map { (tasks[p].id, $0) } }, uniquingKeysWith: { a, _ in a })
                    emit(EventType.taskScheduled, [
                        ("task", .string(tasks[i].id)), ("attempt", .int(Int64(firstAttempt[i]))),
                        ("order", .int(Int64(order))), ("slot", .int(Int64(running + 1))),
                    ])
                    let attempt = firstAttempt[i]
                    group.addTask { (i, await self.runTask(i, firstAttempt: attempt, inputs: inputs)) }
                    running += 1
                }
            }
            launch()
            while let (i, result) = await group.next() {
                running -= 1
                states[i] = result.state
                if let o = result.output { outputs[i] = o }
                if let c = result.chosen { chosen[i] = c }
                if let e = result.error { errors[tasks[i].id] = e }
                if Task.isCancelled || result.state == .cancelled { cancelled = true }
                if cancelled { continue }  // what has not started stays not run (listed in run.cancelled)
                settle(release(i))
                launch()
            }
        }
        if Task.isCancelled { cancelled = true }

        let notRun = (0..<n).filter { states[$0] == .pending }.map { tasks[$0].id }
        let failed = (0..<n).filter { states[$0].isFailure }.map { tasks[$0].id }
        let status: RunOutcome.Status = cancelled || (!notRun.isEmpty && failed.isEmpty) ? .cancelled : failed.isEmpty ? .succeeded : .failed
        let counts = Dictionary(grouping: states, by: \.rawValue).mapValues { Int64($0.count) }
        var end: [(String, JSON.Value)] = [
            ("run", .string(runID)), ("tasks", .object(counts.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
        ]
        if !failed.isEmpty { end.append(("failed_tasks", .array(failed.map { .string($0) }))) }
        if !notRun.isEmpty { end.append(("not_run", .array(notRun.map { .string($0) }))) }
        emit(status == .succeeded ? EventType.runSucceeded : status == .failed ? EventType.runFailed : EventType.runCancelled, end)
        try await recorder.flush()
        var outcome = RunOutcome(dag: dag.name, runID: runID, stream: stream, status: status, tasks: [:], outputs: [:], errors: errors)
        for i in 0..<n {
            outcome.tasks[tasks[i].id] = states[i] == .pending ? .cancelled : states[i]
            if let o = outputs[i] { outcome.outputs[tasks[i].id] = o }
        }
        return outcome
    }

    enum Decision { case run, skip(String), upstreamFailed([String]) }

    func decide(_ c: Int, states: [TaskState], chosen: [Int: [String]]) -> Decision {
        let id = tasks[c].id
        var failed: [String] = []
        var skipped: [String] = []
        var succeeded = 0
        for p in parents[c] {
            switch states[p] {
            case .succeeded:
                if let choice = chosen[p], tasks[p].kind == .branch || tasks[p].command?.isBranch == true, !choice.contains(id) {
                    skipped.append("\(tasks[p].id) (branch chose \(choice.isEmpty ? "nothing" : choice.joined(separator: ",")))")
                } else {
                    succeeded += 1
                }
            case .skipped: skipped.append(tasks[p].id)
            default: failed.append(tasks[p].id)
            }
        }
        switch tasks[c].rule {
        case .allSuccess:
            if !failed.isEmpty { return .upstreamFailed(failed) }
            if !skipped.isEmpty { return .skip("upstream skipped: \(skipped.joined(separator: ", "))") }
            return .run
        case .noneFailed:
            if !failed.isEmpty { return .upstreamFailed(failed) }
            if succeeded == 0 && !parents[c].isEmpty { return .skip("every upstream task was skipped") }
            return .run
        case .oneSuccess:
            if succeeded > 0 || parents[c].isEmpty { return .run }
            if !failed.isEmpty { return .upstreamFailed(failed) }
            return .skip("no upstream task succeeded")
        case .allDone:
            return .run
        }
    }

    // MARK: - Attempts

    enum AttemptResult {
        case succeeded(RecordedValue?, chosen: [String]?)
        case failed(String)
        case blocked(String)
        case skipped(String)
        case cancelled
    }

    func runTask(_ i: Int, firstAttempt: Int, inputs: [String: RecordedValue]) async -> TaskResult {
        let spec = tasks[i]
        if let reason = branch?.blocked[spec.id] {
            let why = "blocked in the original run: \(reason)"
            emit(EventType.taskBlocked, [("task", .string(spec.id)), ("attempt", .int(Int64(firstAttempt))), ("reason", .string(why))])
            return TaskResult(state: .blocked, error: why)
        }
        var attempt = firstAttempt
        var retriesLeft = spec.retries
        var delay = spec.retryDelayMillis
        while true {
            let result = await runAttempt(spec, attempt: attempt, inputs: inputs)
            let reason: String
            let finalState: TaskState
            switch result {
            case .succeeded(let output, let chosen):
                return TaskResult(state: .succeeded, output: output, chosen: chosen)
            case .skipped(let why):
                emit(EventType.taskSkipped, [("task", .string(spec.id)), ("attempt", .int(Int64(attempt))), ("reason", .string(why))])
                return TaskResult(state: .skipped)
            case .cancelled:
                return TaskResult(state: .cancelled, error: "cancelled")
            case .failed(let why):
                reason = why
                finalState = .failed
            case .blocked(let why):
                reason = why
                finalState = .blocked
            }
            if retriesLeft <= 0 || Task.isCancelled {
                return TaskResult(state: finalState, error: reason)
            }
            retriesLeft -= 1
            emit(EventType.taskRetrying, [
                ("task", .string(spec.id)), ("attempt", .int(Int64(attempt))), ("next_attempt", .int(Int64(attempt + 1))),
                ("backoff_ms", .int(Int64(delay))), ("reason", .string(reason)),
            ])
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

    func runAttempt(_ spec: TaskSpec, attempt: Int, inputs: [String: RecordedValue]) async -> AttemptResult {
        let taskField: (String, JSON.Value) = ("task", .string(spec.id))
        let attemptField: (String, JSON.Value) = ("attempt", .int(Int64(attempt)))
        if Task.isCancelled { return .cancelled }

        // The five questions before consuming, then writer safety before producing.
        var admitted: [ConsumedChunk] = []
        var producing: [(ref: ChunkRef, key: String, from: ChunkStatus?)] = []
        if let branch {
            admitted = branch.chunks[spec.id] ?? []
        } else if !spec.consumes.isEmpty || !spec.produces.isEmpty {
            do {
                try await recorder.flush()
                let gate = try admit(spec, attempt: attempt)
                admitted = gate.admitted
                producing = gate.producing
                if let reason = gate.blocked {
                    emit(EventType.taskBlocked, [taskField, attemptField, ("reason", .string(reason))])
                    return .blocked(reason)
                }
            } catch {
                emit(EventType.taskFailed, [taskField, attemptField, ("error", .string("\(error)"))])
                return .failed("\(error)")
            }
        }

        let path = attemptPath(spec.id, attempt)
        let seed = seed(task: spec.id, attempt: attempt)
        let sink = LiveSink(execution: self, task: spec.id, attempt: attempt, feed: branch.map { StepFeed($0.steps[spec.id] ?? []) })
        let context = TaskContext(
            dag: dag.name, runID: runID, taskID: spec.id, attempt: attempt, params: params, partition: partition?.key,
            interval: partition.map { $0.start..<$0.end }, outputPath: path, seed: seed, inputs: inputs,
            consumedChunks: admitted, sink: sink)
        var started: [(String, JSON.Value)] = [taskField, attemptField, ("seed", .string(String(seed, radix: 16)))]
        if let t = spec.timeoutMillis { started.append(("timeout_ms", .int(Int64(t)))) }
        if spec.kind == .command { started.append(("output_dir", .string(path))) }
        emit(EventType.taskStarted, started)
        for (from, value) in inputs.sorted(by: { $0.key < $1.key }) {
            emit(EventType.valueConsumed, [taskField, attemptField, ("from_task", .string(from)), ("digest", .string(value.digest))])
        }
        for chunk in admitted {
            emit(EventType.valueConsumed, [
                taskField, attemptField, ("dataset", .string(chunk.dataset)), ("chunk", .string(chunk.key)),
                ("digest", chunk.digest.map(JSON.Value.string) ?? .null), ("location", chunk.location.map(JSON.Value.string) ?? .null),
            ])
        }

        let clock = ContinuousClock.now
        let body = Result<BodyOutcome, any Error>.self
        let outcome: Result<BodyOutcome, any Error>
        do {
            outcome = body.success(try await withTimeout(spec.timeoutMillis, stopsCooperatively: spec.kind == .command) {
                try await self.runBody(spec, context: context)
            })
        } catch {
            outcome = .failure(error)
        }
        context.close()
        let elapsed = ContinuousClock.now - clock
        let millis = elapsed.milliseconds
        let expectations = context.expectations
        for e in expectations {
            emit(EventType.expectationEvaluated, [
                taskField, attemptField, ("name", .string(e.name)), ("passed", .bool(e.passed)), ("message", .string(e.message)),
            ])
        }

        switch outcome {
        case .success(let result) where result.skipped != nil:
            if branch == nil { finishChunks(spec, attempt: attempt, admitted: admitted, producing: producing, produced: nil, reason: result.skipped) }
            return .skipped(result.skipped ?? "")
        case .success(let result) where result.failure == nil:
            var output = result.output
            if let o = output, o.json.count > 0 {
                emit(EventType.valueProduced, [taskField, attemptField] + engine.values.fields(for: o))
            } else {
                output = nil
            }
            let failedExpectations = expectations.filter { !$0.passed }
            let chunkProblem = branch != nil ? nil : finishChunks(
                spec, attempt: attempt, admitted: admitted, producing: producing,
                produced: ProducedFacts(output: output, expectations: expectations, declared: result.declaredChunks, directory: context.outputPath), reason: nil)
            if !failedExpectations.isEmpty || chunkProblem != nil {
                let why = chunkProblem ?? Self.expectationFailure(failedExpectations)
                emit(EventType.taskFailed, [taskField, attemptField, ("duration_ms", .int(millis)), ("error", .string(why))] + result.fields)
                return .failed(why)
            }
            var done: [(String, JSON.Value)] = [taskField, attemptField, ("duration_ms", .int(millis))]
            if let o = output { done.append(("output_digest", .string(o.digest))) }
            if let c = result.chosen { done.append(("branch", .array(c.map { .string($0) }))) }
            emit(EventType.taskSucceeded, done + result.fields)
            return .succeeded(output, chosen: result.chosen)
        case .success(let result):
            let cancelled = Task.isCancelled
            let why = cancelled ? "cancelled (\(result.failure ?? "stopped"))" : result.failure ?? "failed"
            if branch == nil { finishChunks(spec, attempt: attempt, admitted: admitted, producing: producing, produced: nil, reason: why) }
            emit(EventType.taskFailed, [taskField, attemptField, ("duration_ms", .int(millis)), ("error", .string(why))]
                + (cancelled ? [("cancelled", .bool(true))] : []) + result.fields)
            return cancelled ? .cancelled : .failed(why)
        case .failure(let error):
            let cancelled = error is CancellationError || (Task.isCancelled && !(error is TimeoutError))
            let why = cancelled ? "cancelled" : (error as? TimeoutError).map { "\($0)" } ?? "\(error)"
            if branch == nil { finishChunks(spec, attempt: attempt, admitted: admitted, producing: producing, produced: nil, reason: why) }
            emit(EventType.taskFailed, [taskField, attemptField, ("duration_ms", .int(millis)), ("error", .string(why))]
                + (error is TimeoutError ? [("timed_out", .bool(true))] : []) + (cancelled ? [("cancelled", .bool(true))] : []))
            return cancelled ? .cancelled : .failed(why)
        }
    }

    /// Why an attempt whose expectations failed failed (`task.failed`'s `error`).
    package static func expectationFailure(_ failed: [Expectation]) -> String {
        "expectation failed: " + failed.map { "\($0.name)\($0.message.isEmpty ? "" : " (\($0.message))")" }.joined(separator: "; ")
    }

    /// What a task's code returned.
    package struct BodyOutcome: Sendable {
        package var output: RecordedValue?
        package var chosen: [String]?
        package var failure: String?
        package var skipped: String?
        package var declaredChunks: [(dataset: String, key: String, path: String)] = []
        /// Extra payload fields for task.succeeded / task.failed (exit code, stdout …).
        package var fields: [(String, JSON.Value)] = []
    }

    /// Runs a task's code (closure, command or trigger) in `context`.
    package func runBody(_ spec: TaskSpec, context: TaskContext) async throws -> BodyOutcome {
        guard let body = dag.bodies[spec.id] else {
            if spec.kind == .command { return try await runCommand(spec, context: context) }
            if spec.kind == .trigger { return try await runTrigger(spec, condition: nil, context: context) }
            throw EngineError("task \(spec.id) has no code")
        }
        switch body {
        case .swift(let f):
            return BodyOutcome(output: try await f(context))
        case .branch(let f):
            let chosen = try await f(context)
            try checkBranch(spec, chosen)
            return BodyOutcome(output: try RecordedValue(chosen), chosen: chosen)
        case .command:
            return try await runCommand(spec, context: context)
        case .trigger(let condition):
            return try await runTrigger(spec, condition: condition, context: context)
        }
    }

    package func checkBranch(_ spec: TaskSpec, _ chosen: [String]) throws {
        let kids = Set(children[index[spec.id]!].map { tasks[$0].id })
        let unknown = chosen.filter { !kids.contains($0) }
        if !unknown.isEmpty {
            throw EngineError("branch \(spec.id) chose \(unknown.joined(separator: ", ")), which is not among its children (\(kids.sorted().joined(separator: ", ")))")
        }
    }

    func runCommand(_ spec: TaskSpec, context: TaskContext) async throws -> BodyOutcome {
        let directory = context.outputDirectory
        guard let command = spec.command else { throw EngineError("task \(spec.id) has no command") }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var env: [String: String] = [
            "CLEW_DAG": dag.name, "CLEW_RUN_ID": runID, "CLEW_TASK_ID": spec.id, "CLEW_ATTEMPT": String(context.attempt),
            "CLEW_OUTPUT_DIR": directory.path, "CLEW_SEED": String(context.seed),
            "CLEW_PARAMS": JSON.Value.strings(params).text,
            "CLEW_UPSTREAM": JSON.Value.object(context.inputTasks.map { ($0, .raw(context.inputs[$0]!.text)) }).text,
            "CLEW_INPUTS": JSON.Value.array(context.consumedChunks.map { c in
                .object([("dataset", .string(c.dataset)), ("key", .string(c.key)), ("location", c.location.map(JSON.Value.string) ?? .null), ("digest", c.digest.map(JSON.Value.string) ?? .null)])
            }).text,
        ]
        if let p = partition {
            env["CLEW_PARTITION"] = p.key
            env["CLEW_INTERVAL_START"] = PartitionKey.string(micros: p.start)
            env["CLEW_INTERVAL_END"] = PartitionKey.string(micros: p.end)
        }
        for (k, v) in params { env["CLEW_PARAM_\(Self.envName(k))"] = v }
        for c in context.consumedChunks { if let url = c.url { env["CLEW_INPUT_\(Self.envName(c.dataset))"] = url.path } }
        for ref in spec.produces { env["CLEW_OUTPUT_\(Self.envName(ref.dataset))"] = directory.appendingPathComponent(ref.path ?? ref.dataset).path }
        let workDir = command.workingDirectory ?? FileManager.default.currentDirectoryPath
        let r = try await CommandRunner.run(command, environment: env, workingDirectory: workDir, context: context)
        // What a replay needs to run the command again: its arguments, working directory and environment
        // (output paths relative to the attempt's directory, secrets redacted).
        // Secret values (of secret-named params and variables) are cut out wherever they appear (CLEW_PARAMS holds them all).
        let secrets = (params.merging(command.environment, uniquingKeysWith: { a, _ in a })).filter { Redaction.isSecret($0.key) && !$0.value.isEmpty }.map(\.value)
        let recordedEnv = command.environment.merging(env, uniquingKeysWith: { _, b in b }).reduce(into: [String: String]()) { out, kv in
            var value = kv.value.replacingOccurrences(of: directory.path, with: "$CLEW_OUTPUT_DIR")
            for secret in secrets { value = value.replacingOccurrences(of: secret, with: "[REDACTED]") }
            out[kv.key] = Redaction.isSecret(kv.key) ? "[REDACTED]" : value
        }
        var fields: [(String, JSON.Value)] = [
            ("exit_code", r.exitCode.map { .int(Int64($0)) } ?? .null), ("stdout", .string(r.stdout)), ("stderr", .string(r.stderr)),
            ("stdout_bytes", .int(Int64(r.stdoutBytes))), ("stderr_bytes", .int(Int64(r.stderrBytes))),
            ("files", .array(r.files.map { .object([("path", .string($0.path)), ("sha256", .string($0.sha256)), ("bytes", .int($0.bytes))]) })),
            ("argv", .array(command.argv.map { .string($0) })), ("cwd", .string(workDir)), ("env", .strings(recordedEnv)),
        ]
        if let s = r.signal { fields.append(("signal", .int(Int64(s)))) }
        var outcome = BodyOutcome(fields: fields)
        outcome.declaredChunks = r.chunks
        if !r.outputs.isEmpty {
            var object: [String: Any] = [:]
            for (name, value) in r.outputs {
                object[name] = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)) ?? value
            }
            let redacted = Redaction.redact(object)
            if let data = try? JSONSerialization.data(withJSONObject: redacted, options: [.sortedKeys, .withoutEscapingSlashes]) {
                outcome.output = RecordedValue(canonicalJSON: data, type: "command")
            }
        }
        if !r.protocolErrors.isEmpty {
            outcome.failure = "line protocol: " + r.protocolErrors.prefix(3).joined(separator: "; ")
        } else if let s = r.signal {
            outcome.failure = "killed by signal \(s)"
        } else if r.exitCode != 0 {
            let last = r.stderr.split(separator: "\n").last.map { ": \($0)" } ?? ""
            outcome.failure = "exit code \(r.exitCode ?? -1)\(last)"
        }
        if command.isBranch, outcome.failure == nil {
            let chosen = r.branch ?? []
            do { try checkBranch(spec, chosen) } catch { outcome.failure = "\(error)" }
            outcome.chosen = chosen
        }
        return outcome
    }

    static func envName(_ s: String) -> String {
        String(s.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    func runTrigger(_ spec: TaskSpec, condition: (@Sendable (TaskContext) async throws -> Bool)?, context: TaskContext) async throws -> BodyOutcome {
        guard let trigger = spec.trigger else { throw EngineError("task \(spec.id) names no DAG to trigger") }
        if let condition, try await !condition(context) { return BodyOutcome(skipped: "trigger condition is false") }
        if let when = trigger.when {
            let parts = when.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, resolve(parts[0]) != resolve(parts[1]) {
                return BodyOutcome(skipped: "trigger condition '\(when)' is false")
            }
        }
        if let branch {
            // A replay or branch run does not start child runs: the child run the original started is its result.
            guard let recorded = branch.triggered[spec.id] else {
                throw EngineError("task \(spec.id) triggered no run in the original, so a replay cannot say what it would return")
            }
            return BodyOutcome(output: recorded)
        }
        guard let child = engine.registry.dag(named: trigger.dag) else {
            throw EngineError(.notFound, "task \(spec.id) triggers DAG \(trigger.dag), which is not known")
        }
        let childParams = trigger.params.mapValues(resolve)
        let childRun = try engine.newRunID(dag: child.name, partition: nil, trigger: "manual").replacingOccurrences(of: "manual__", with: "triggered__")
        emit(EventType.dagTriggered, [
            ("task", .string(spec.id)), ("attempt", .int(Int64(context.attempt))), ("child_dag", .string(child.name)),
            ("child_run", .string(childRun)), ("params", .strings(Redaction.redact(params: childParams))),
        ])
        let outcome = try await engine.run(child, params: childParams, partition: partition, runID: childRun, trigger: "dag:\(dag.name)/\(runID)")
        var result = BodyOutcome(output: try RecordedValue(["dag": child.name, "run": outcome.runID, "status": outcome.status.rawValue]))
        if trigger.wait, outcome.status != .succeeded {
            result.failure = "triggered run \(child.name)/\(outcome.runID) \(outcome.status.rawValue) (failed tasks: \(outcome.failedTasks.joined(separator: ", ")))"
        }
        return result
    }
}

/// Steps recorded live: each becomes a `variable.recorded` event in the run's stream. In a branch run,
/// `feed` hands back the original's recorded time and side-effect results.
struct LiveSink: StepSink {
    let execution: RunExecution
    let task: String
    let attempt: Int
    let feed: StepFeed?

    func variable(step: Int, name: String, kind: String, value: RecordedValue) {
        execution.emit(EventType.variableRecorded, [
            ("task", .string(task)), ("attempt", .int(Int64(attempt))), ("step", .int(Int64(step))), ("name", .string(name)),
            ("kind", .string(kind)),
        ] + execution.engine.values.fields(for: value))
    }

    func replayed(step: Int, kind: String, name: String) -> RecordedValue? { feed?.take(kind: kind, name: name) }
}

/// An attempt that ran past its time limit.
package struct TimeoutError: ClewError {
    let millis: Int
    package var description: String { "timed out after \(millis) ms" }
    package var category: ErrorCategory { .unavailable }
}

/// Runs `body` with a time limit. Commands stop cooperatively (cancellation kills the process group and
/// is awaited); Swift closures are cancelled and abandoned, so one that ignores cancellation cannot hold
/// up the run (its context is closed, so it cannot record anything more).
package func withTimeout<T: Sendable>(
    _ millis: Int?, stopsCooperatively: Bool, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    guard let millis else { return try await body() }
    let work = Task { try await body() }
    let once = Mutex(false)
    let result: Result<T, any Error> = await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
            let finish: @Sendable (Result<T, any Error>) -> Void = { r in
                if once.withLock({ done in defer { done = true }; return !done }) { continuation.resume(returning: r) }
            }
            let timer = Task {
                try? await Task.sleep(for: .milliseconds(millis))
                if !Task.isCancelled { finish(.failure(TimeoutError(millis: millis))) }
            }
            Task {
                let r = await work.result
                timer.cancel()
                finish(r)
            }
        }
    } onCancel: {
        work.cancel()
    }
    if case .failure(let e) = result, e is TimeoutError {
        work.cancel()
        if stopsCooperatively { _ = await work.result }
    }
    return try result.get()
}
