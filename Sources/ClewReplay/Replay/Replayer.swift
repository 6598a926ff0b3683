import ClewCore
public import ClewEngine
public import ClewLedger
import ClewModel
import ClewProjections
public import Foundation
import Synchronization

/// How to replay.
public struct ReplayOptions: Sendable {
    /// Replay this task and everything downstream of it; upstream outputs come from the record.
    public var from: String?
    /// Params recorded redacted (secrets) must be given again.
    public var params: [String: String] = [:]
    /// Where replayed attempts write their files; by default `<ledger>/data/replays/<dag>/<run>/<time>`.
    /// The original's files are only read.
    public var workDirectory: URL?
    /// Re-run a diverged attempt once more to tell nondeterminism from changed code or environment.
    public var probe = true

    public init() {}
}

/// Re-executes a recorded run with the code registered for its DAG, feeding back everything the run got
/// from outside its code (inputs, params, time, randomness, side-effect results, chunk files, scheduling:
/// start order, attempts and their seeds, branch choices), and compares every event it would emit with
/// the recorded one. It writes nothing to the ledger.
///
/// ```swift
/// let run = try RecordedRun.load(RunKey(dag: "numeric_flow", run: id), from: ledger)
/// let report = try await Replayer(ledger: ledger, registry: DAGRegistry(DemoDAGs.all)).replay(run)
/// print(report.verdict, report.stepsCompared)
/// ```
public final class Replayer: Sendable {
    public let ledger: Ledger
    public let registry: DAGRegistry
    /// The build/OS/machine the replay runs on, compared with the recording's when classifying.
    public let environment: RunEnvironment

    public init(ledger: Ledger, registry: DAGRegistry, environment: RunEnvironment = .current) {
        self.ledger = ledger
        self.registry = registry
        self.environment = environment
    }

    /// Replays `recording` and reports the verdict (identical, or the first difference and its cause).
    /// - Throws: ``ReplayError`` when the DAG is unknown, `--from` names no task, or a secret param is missing.
    public func replay(_ recording: RecordedRun, options: ReplayOptions = ReplayOptions()) async throws -> ReplayReport {
        if !recording.erased.isEmpty {
            let listed = recording.erased.prefix(10).map(String.init).joined(separator: ", ")
            throw ReplayError(
                .conflict,
                "run \(recording.key) cannot be replayed: the payloads of its events \(listed)\(recording.erased.count > 10 ? " …" : "") were erased (`clew erase`), and a replay is fed from them")
        }
        let clock = ContinuousClock.now
        let resolved = try resolveDAG(recording)
        var notices = resolved.notices
        let dag = resolved.dag
        var params = recording.params
        for (k, v) in options.params { params[k] = v }
        if let missing = params.first(where: { $0.value == "[REDACTED]" })?.key {
            throw ReplayError("param \(missing) of run \(recording.key) was recorded redacted; give it again with --param \(missing)=…")
        }
        let work = options.workDirectory ?? Self.defaultWorkDirectory(ledger: ledger, key: recording.key)
        let session = AttemptRunner(
            ledger: ledger, registry: registry, dag: dag, recording: recording, params: params, work: work)

        var replaySet = Set(dag.spec.tasks.map(\.id))
        var fromRecord: [String] = []
        if let from = options.from {
            guard dag.spec.tasks.contains(where: { $0.id == from }) else {
                throw ReplayError(.notFound, "--from \(from): DAG \(dag.name) has no task \(from) (tasks: \(dag.spec.tasks.map(\.id).prefix(12).joined(separator: ", ")))")
            }
            guard recording.attempts.contains(where: { $0.task == from }) else {
                throw ReplayError("--from \(from): task \(from) did not run in \(recording.key) (\(recording.decisions[from] ?? "no attempt recorded"))")
            }
            replaySet = Self.downstream(of: from, in: dag.spec)
            fromRecord = Set(recording.attempts.map(\.task)).subtracting(replaySet).sorted()
        }
        if let env = recording.environment, env.buildID != environment.buildID {
            notices.append("the run was recorded by build \(env.buildID.prefix(16)); this is build \(environment.buildID.prefix(16))")
        }

        // Attempts run concurrently where the record shows they did not depend on each other (up to the
        // DAG's max_active_tasks and the cores there are); they are compared in recorded order.
        let chosen = recording.attempts.indices.filter { i in
            let a = recording.attempts[i]
            if !replaySet.contains(a.task) { return false }
            if a.seed == nil, case .blocked = a.outcome { return false }  // a scheduling decision, fed back
            return true
        }
        let results = await replayAll(chosen, session: session, limit: max(1, min(dag.spec.maxActiveTasks, ProcessInfo.processInfo.activeProcessorCount)))
        var compared = 0
        var replayed = 0
        for i in chosen {
            let a = recording.attempts[i]
            guard let (result, inputs) = results[i] else { continue }
            replayed += 1
            let comparison = Comparison.compare(recorded: a, replayed: result, inputs: inputs, paths: session.paths(a, directory: "replay"))
            compared += comparison.count
            if let m = comparison.mismatch {
                let cause = await classify(m, attempt: a, first: result, inputs: inputs, session: session, resolved: resolved, recording: recording, probe: options.probe)
                let divergence = Divergence(
                    task: a.task, attempt: a.attempt, step: m.step, event: m.event, variable: m.variable, expected: m.expected,
                    actual: m.actual, diff: ValueDiff.differences(m.expected, m.actual), cause: cause, seq: m.seq)
                return ReplayReport(
                    verdict: "diverged", run: recording.key.description, stepsCompared: compared, attemptsReplayed: replayed,
                    fromRecord: fromRecord, divergence: divergence, notices: notices,
                    seconds: (ContinuousClock.now - clock).seconds)
            }
        }
        return ReplayReport(
            verdict: "identical", run: recording.key.description, stepsCompared: compared, attemptsReplayed: replayed,
            fromRecord: fromRecord, divergence: nil, notices: notices, seconds: (ContinuousClock.now - clock).seconds)
    }

    /// Replays the attempts at `indices` of the recording, each once the attempts whose outputs it consumed
    /// have been replayed (their replayed outputs are its inputs), at most `limit` at a time.
    func replayAll(_ indices: [Int], session: AttemptRunner, limit: Int) async -> [Int: (AttemptResult, [String: RecordedValue])] {
        let attempts = session.recording.attempts
        // The attempt that produced each consumed output, when it is replayed too.
        var byTask: [String: [Int]] = [:]
        for i in indices { byTask[attempts[i].task, default: []].append(i) }
        var providers: [Int: [Int]] = [:]
        for i in indices {
            providers[i] = attempts[i].upstream.compactMap { u in
                let earlier = (byTask[u.fromTask] ?? []).filter { $0 < i }
                return earlier.last { attempts[$0].output?.digest == u.digest } ?? earlier.last
            }
        }
        var waiting: [Int: Int] = [:]  // attempt -> providers not yet replayed
        var dependents: [Int: [Int]] = [:]
        for i in indices {
            waiting[i] = providers[i]?.count ?? 0
            for j in providers[i] ?? [] { dependents[j, default: []].append(i) }
        }
        var ready = indices.filter { waiting[$0] == 0 }  // kept in recorded order
        var results: [Int: (AttemptResult, [String: RecordedValue])] = [:]
        await withTaskGroup(of: (Int, AttemptResult, [String: RecordedValue]).self) { group in
            var running = 0
            func launch() {
                while running < limit, !ready.isEmpty {
                    let i = ready.removeFirst()
                    var replayedOutputs: [String: RecordedValue] = [:]
                    for j in providers[i] ?? [] {
                        if let (r, _) = results[j], case .succeeded = r.outcome, let o = r.output { replayedOutputs[attempts[j].task] = o }
                    }
                    let inputs = session.inputs(for: attempts[i], replayed: replayedOutputs)
                    let attempt = attempts[i]
                    group.addTask { (i, await session.run(attempt, inputs: inputs, directory: "replay"), inputs) }
                    running += 1
                }
            }
            launch()
            while let (i, result, inputs) = await group.next() {
                running -= 1
                results[i] = (result, inputs)
                for d in dependents[i] ?? [] {
                    waiting[d, default: 0] -= 1
                    if waiting[d] == 0 { ready.append(d) }
                }
                launch()
            }
        }
        return results
    }

    static func defaultWorkDirectory(ledger: Ledger, key: RunKey) -> URL {
        let stamp = PartitionKey.string(micros: Int64(Date().timeIntervalSince1970 * 1_000_000)).filter { $0 != "-" && $0 != ":" }
        return ledger.directory.appendingPathComponent("data/replays/\(key.dag)/\(key.run)/\(stamp)-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// `task` and every task downstream of it.
    static func downstream(of task: String, in spec: DAGSpec) -> Set<String> {
        var children: [String: [String]] = [:]
        for t in spec.tasks { for p in t.upstream { children[p, default: []].append(t.id) } }
        var out: Set<String> = [task]
        var work = [task]
        while let t = work.popLast() {
            for c in children[t] ?? [] where out.insert(c).inserted { work.append(c) }
        }
        return out
    }

    // MARK: - The DAG

    struct ResolvedDAG: Sendable {
        var dag: DAG
        /// The definition recorded for the run's version, when the ledger has it.
        var recordedSpec: DAGSpec?
        var notices: [String]
    }

    /// The code to replay with: the registered DAG of that name, or, for a DAG this executable does not
    /// ship whose tasks are all commands, its recorded definition.
    func resolveDAG(_ recording: RecordedRun) throws -> ResolvedDAG {
        let recordedSpec = try Self.recordedDefinition(dag: recording.key.dag, version: recording.version, ledger: ledger)
        var notices: [String] = []
        if let dag = registry.dag(named: recording.key.dag) {
            if let v = recording.version, dag.version != v {
                notices.append("DAG \(dag.name) is at version \(dag.version) here; the run executed version \(v)")
            }
            return ResolvedDAG(dag: dag, recordedSpec: recordedSpec, notices: notices)
        }
        if let spec = recordedSpec, spec.tasks.allSatisfy({ $0.kind == .command || $0.kind == .trigger }) {
            notices.append("DAG \(spec.name) is not in this executable or pipeline directory; replaying its recorded definition (command tasks)")
            return ResolvedDAG(dag: DAG(spec: spec, bodies: [:]), recordedSpec: spec, notices: notices)
        }
        throw ReplayError(
            "DAG \(recording.key.dag) is not known to this executable or pipeline directory (--pipelines DIR), so its code cannot be replayed")
    }

    /// The definition `dag.registered` recorded for `version`.
    static func recordedDefinition(dag: String, version: String?, ledger: Ledger) throws -> DAGSpec? {
        guard let version else { return nil }
        for e in try ledger.events(inStream: StreamID.dag(dag)).reversed() where e.type == EventType.dagRegistered {
            guard let registered = try? JSONDecoder().decode(DAGRegistered.self, from: e.payload), registered.version == version else { continue }
            return registered.definition
        }
        return nil
    }

    // MARK: - Classification

    func classify(
        _ m: Comparison.Mismatch, attempt a: RecordedAttempt, first: AttemptResult, inputs: [String: RecordedValue],
        session: AttemptRunner, resolved: ResolvedDAG, recording: RecordedRun, probe: Bool
    ) async -> Divergence.Cause {
        if m.event == EventType.valueConsumed, m.isChunk {
            return .init(
                kind: "input_changed",
                explanation: "an input changed: \(m.variable) no longer has the content the run read (\(m.actual == nil ? "the file is gone" : "its SHA-256 differs")), so the task was not re-run on it",
                evidence: ["input": m.variable, "recorded_digest": m.expected ?? "", "current_digest": m.actual ?? "missing", "location": m.location ?? ""])
        }
        if m.event == EventType.valueConsumed {
            return .init(
                kind: "input_changed", explanation: "an input changed: the output of upstream task \(m.variable) differs from the one the run consumed",
                evidence: ["from_task": m.variable, "recorded_digest": m.expected ?? "", "replayed_digest": m.actual ?? ""])
        }
        if let v = recording.version, resolved.dag.version != v {
            var evidence = ["recorded_version": v, "current_version": resolved.dag.version]
            if let old = resolved.recordedSpec {
                let now = resolved.dag.spec
                let changed = now.tasks.filter { t in old.tasks.first { $0.id == t.id } != t }.map(\.id)
                let removed = old.tasks.map(\.id).filter { id in !now.tasks.contains { $0.id == id } }
                if !changed.isEmpty { evidence["changed_tasks"] = changed.joined(separator: ", ") }
                if !removed.isEmpty { evidence["removed_tasks"] = removed.joined(separator: ", ") }
                if old.sourceDigest != now.sourceDigest {
                    evidence["recorded_source_sha256"] = old.sourceDigest ?? "none"
                    evidence["current_source_sha256"] = now.sourceDigest ?? "none"
                }
            }
            let which = evidence["changed_tasks"].map { " (changed: \($0))" } ?? ""
            return .init(kind: "dag_changed", explanation: "the DAG's code changed: its definition hash is \(resolved.dag.version), the run executed \(v)\(which)", evidence: evidence)
        }
        if probe {
            let second = await session.run(a, inputs: inputs, directory: "probe")
            if let d = Comparison.firstDifference(first, second) {
                return .init(
                    kind: "nondeterminism",
                    explanation: "the task reads something outside its context (the wall clock, an unseeded random generator, a changing file or service): two replays of the same attempt with the same inputs differ at \(d)",
                    evidence: ["replays_differ_at": d])
            }
        }
        var evidence: [String: String] = [:]
        if let recorded = recording.environment {
            if recorded.buildID != environment.buildID {
                return .init(
                    kind: "code_changed",
                    explanation: "the task's code changed: the same inputs and recorded outside values give a different result every time, and the executable differs from the one that recorded the run",
                    evidence: ["recorded_build": recorded.buildID, "current_build": environment.buildID])
            }
            if recorded.os != environment.os { evidence["os"] = "\(recorded.os) → \(environment.os)" }
            if recorded.arch != environment.arch { evidence["arch"] = "\(recorded.arch) → \(environment.arch)" }
        } else {
            evidence["recorded_build"] = "not recorded (run older than build ids)"
        }
        if let env = a.command?.env, let now = first.env {
            for k in Set(env.keys).union(now.keys).sorted() where env[k] != now[k] && k != "CLEW_OUTPUT_DIR" {
                evidence["env.\(k)"] = "\(env[k] ?? "unset") → \(now[k] ?? "unset")"
            }
        }
        return .init(
            kind: "environment",
            explanation: "the environment differed: same code, same inputs and a repeatable replay, yet a different result, so something the task reads outside its declared inputs (a file, a service, an environment variable, a library) is not what it was",
            evidence: evidence)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
