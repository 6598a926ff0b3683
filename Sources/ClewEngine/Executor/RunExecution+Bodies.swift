import ClewCore
import ClewLedger
package import ClewModel
import Foundation
import Synchronization

/// What a task runs: Swift code, a command, or a trigger of another DAG.
extension RunExecution {
    /// What a task's code returned.
    package struct BodyOutcome: Sendable {
        package var output: RecordedValue?
        package var chosen: [String]?
        package var failure: String?
        package var skipped: String?
        package var declaredChunks: [(dataset: String, key: String, path: String)] = []
        /// A command task's report (exit code, output, files, argv …) for task.succeeded / task.failed.
        package var command: CommandReport?
    }

    /// What a command task's end event records about the process, so a replay can run it again.
    package struct CommandReport: Sendable {
        package var exitCode: Int32?
        package var signal: Int32?
        package var stdout: String
        package var stderr: String
        package var stdoutBytes: Int
        package var stderrBytes: Int
        package var files: [TaskFile]
        package var argv: [String]
        package var cwd: String
        package var env: [String: String]

        /// Writes the report into a `task.succeeded`/`task.failed` payload.
        func describe(_ event: inout TaskEvent) {
            event.exitCode = exitCode.map(Int.init)
            event.signal = signal.map(Int.init)
            event.stdout = stdout
            event.stderr = stderr
            event.stdoutBytes = stdoutBytes
            event.stderrBytes = stderrBytes
            event.files = files
            event.argv = argv
            event.cwd = cwd
            event.env = env
        }
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
        // Variables the task declares: each read is a step (the first ones), given as CLEW_VAR_<KEY>.
        var givenSecrets: [String] = []
        for key in command.variables ?? [] {
            let value = try context.variable(key)
            env["CLEW_VAR_\(Self.envName(key))"] = value
            if Redaction.isSecret(key), !value.isEmpty { givenSecrets.append(value) }
        }
        // Connections it uses: one host each (a step), as CLEW_CONN_<ID>_HOST, _PORT, _SCHEMA, _LOGIN,
        // _PASSWORD, _TYPE, _EXTRA (JSON); the password only here, never recorded.
        for id in command.connections ?? [] {
            let c = try context.connection(id)
            let prefix = "CLEW_CONN_\(Self.envName(id))_"
            env[prefix + "HOST"] = c.host
            if let port = c.use.port { env[prefix + "PORT"] = String(port) }
            if let schema = c.use.schema { env[prefix + "SCHEMA"] = schema }
            if let login = c.use.login { env[prefix + "LOGIN"] = login }
            if let type = c.use.type { env[prefix + "TYPE"] = type }
            if let extra = c.use.extra { env[prefix + "EXTRA"] = JSON.Value.strings(extra).text }
            if let password = c.password {
                env[prefix + "PASSWORD"] = password
                if !password.isEmpty { givenSecrets.append(password) }
            }
        }
        // The command's own steps (line protocol) are numbered after these; Clew's Python package
        // numbers its replay lookups the same way.
        env["CLEW_STEP_BASE"] = String(context.stepsTaken)
        for c in context.consumedChunks { if let url = c.url { env["CLEW_INPUT_\(Self.envName(c.dataset))"] = url.path } }
        for ref in spec.produces { env["CLEW_OUTPUT_\(Self.envName(ref.dataset))"] = directory.appendingPathComponent(ref.path ?? ref.dataset).path }
        let workDir = command.workingDirectory ?? FileManager.default.currentDirectoryPath
        // The sink's variables (a replay's recorded steps) are given to the command but not recorded with it.
        let r = try await CommandRunner.run(
            command, environment: env.merging(context.sink.commandEnvironment, uniquingKeysWith: { a, _ in a }), workingDirectory: workDir,
            context: context)
        // What a replay needs to run the command again: its arguments, working directory and environment
        // (output paths relative to the attempt's directory, secrets redacted).
        // Secret values (of secret-named params and environment variables, secret Variables, Connection passwords)
        // are cut out wherever they appear (CLEW_PARAMS holds them all).
        let secrets = (params.merging(command.environment, uniquingKeysWith: { a, _ in a })).filter { Redaction.isSecret($0.key) && !$0.value.isEmpty }.map(\.value)
            + givenSecrets
        let recordedEnv = command.environment.merging(env, uniquingKeysWith: { _, b in b }).reduce(into: [String: String]()) { out, kv in
            var value = kv.value.replacingOccurrences(of: directory.path, with: "$CLEW_OUTPUT_DIR")
            for secret in secrets { value = value.replacingOccurrences(of: secret, with: "[REDACTED]") }
            out[kv.key] = Redaction.isSecret(kv.key) ? "[REDACTED]" : value
        }
        // What the command printed is recorded too: a secret it echoes (a connection string in an error
        // message) is cut out of it as well. Values under 4 characters are left, or every "a" would go.
        let scrub: (String) -> String = { text in
            secrets.filter { $0.count >= 4 }.reduce(text) { $0.replacingOccurrences(of: $1, with: "[REDACTED]") }
        }
        let stderr = scrub(r.stderr)
        var outcome = BodyOutcome(
            command: CommandReport(
                exitCode: r.exitCode, signal: r.signal, stdout: scrub(r.stdout), stderr: stderr, stdoutBytes: r.stdoutBytes,
                stderrBytes: r.stderrBytes, files: r.files, argv: command.argv, cwd: workDir, env: recordedEnv))
        outcome.declaredChunks = r.chunks
        if !r.outputs.isEmpty { outcome.output = RecordedValue(outputs: r.outputs, type: "command") }
        if !r.protocolErrors.isEmpty {
            outcome.failure = "line protocol: " + r.protocolErrors.prefix(3).joined(separator: "; ")
        } else if let s = r.signal {
            outcome.failure = "killed by signal \(s)"
        } else if r.exitCode != 0 {
            let last = stderr.split(separator: "\n").last.map { ": \($0)" } ?? ""
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
        emit(
            EventType.dagTriggered,
            DAGTriggered(
                task: spec.id, attempt: context.attempt, childDAG: child.name, childRun: childRun,
                params: Redaction.redact(params: childParams)))
        let outcome = try await engine.run(child, params: childParams, partition: partition, runID: childRun, trigger: "dag:\(dag.name)/\(runID)")
        var result = BodyOutcome(output: try RecordedValue(["dag": child.name, "run": outcome.runID, "status": outcome.status.rawValue]))
        if trigger.wait, outcome.status != .succeeded {
            result.failure = "triggered run \(child.name)/\(outcome.runID) \(outcome.status.rawValue) (failed tasks: \(outcome.failedTasks.joined(separator: ", ")))"
        }
        return result
    }
}
