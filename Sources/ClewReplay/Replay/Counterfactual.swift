import ClewCore
import ClewEngine
import ClewLedger
public import ClewModel
import ClewProjections
public import Foundation

/// What to change in a counterfactual replay: params, and outputs of tasks (which then do not run).
public struct Overrides: Sendable {
    public var params: [String: String] = [:]
    /// `TASK.output=JSON`: the task is not run; its children get this value.
    public var outputs: [String: RecordedValue] = [:]

    public init() {}

    /// Parses `--set` arguments: `NAME=VALUE` sets a param; `TASK.output=JSON` sets a task's output (text
    /// that is not JSON is taken as a string).
    /// - Throws: ``ReplayError`` naming an argument without `=`, or a `TASK.output` for a task the DAG lacks.
    public init(parsing items: [String], dag: DAGSpec) throws {
        for item in items {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ReplayError("--set \(item): expected NAME=VALUE (a param) or TASK.output=JSON")
            }
            let name = String(item[..<eq])
            let value = String(item[item.index(after: eq)...])
            if name.hasSuffix(".output") {
                let task = String(name.dropLast(".output".count))
                guard dag.tasks.contains(where: { $0.id == task }) else {
                    throw ReplayError(.notFound, "--set \(item): DAG \(dag.name) has no task \(task)")
                }
                outputs[task] = RecordedValue(text: value, type: "override")
            } else {
                params[name] = value
            }
        }
    }

    public var isEmpty: Bool { params.isEmpty && outputs.isEmpty }

    /// The overrides as `name → value text`, for the branch run's `run.queued`.
    var described: [String: String] {
        var out = params
        for (task, v) in outputs { out["\(task).output"] = v.text }
        return out
    }
}

/// One value of a task in two runs.
public struct ValueChange: Sendable, Codable, Hashable {
    public var task: String
    /// `output`, `state`, or a variable's name.
    public var name: String
    public var original: String?
    public var branch: String?
    public var changed: Bool
}

/// A branch run and how its values differ from the original's.
public struct BranchReport: Sendable, Codable {
    public var original: String
    public var branch: String
    public var originalStatus: String
    public var branchStatus: String
    public var overrides: [String: String]
    public var dagVersion: String
    public var values: [ValueChange]
    public var changed: Int
    public var unchanged: Int

    enum CodingKeys: String, CodingKey {
        case original, branch, overrides, values, changed, unchanged
        case originalStatus = "original_status"
        case branchStatus = "branch_status"
        case dagVersion = "dag_version"
    }
}

extension Replayer {
    /// Counterfactual replay: runs the DAG as registered now (today's code) as a new run, a branch of
    /// `recording` (`run.queued` names it in `branch_of`), reading the chunks the original read and getting
    /// its recorded time and side-effect results, with `overrides` applied; then diffs the two runs value by
    /// value. The original is never altered; the branch publishes no chunks.
    /// - Parameter runID: the branch run's id; by default `<original>.branch-<n>`.
    public func branch(_ recording: RecordedRun, overrides: Overrides, runID: String? = nil, dataDirectory: URL? = nil) async throws -> BranchReport {
        guard let dag = registry.dag(named: recording.key.dag) else {
            throw ReplayError(.notFound, "DAG \(recording.key.dag) is not known to this executable or pipeline directory; a branch runs today's code")
        }
        var params = recording.params
        for (k, v) in overrides.params { params[k] = v }
        if let missing = params.first(where: { $0.value == "[REDACTED]" })?.key {
            throw ReplayError("param \(missing) of run \(recording.key) was recorded redacted; give it with --set \(missing)=…")
        }
        var id = runID ?? ""
        if id.isEmpty {
            var n = 1
            repeat {
                id = "\(recording.key.run).branch-\(n)"
                n += 1
            } while try !ledger.seqs(inStream: RunKey(dag: dag.name, run: id).stream, limit: 1).isEmpty
        }
        var chunks: [String: [ConsumedChunk]] = [:]
        var steps: [String: [FedStep]] = [:]
        var triggered: [String: RecordedValue] = [:]
        for a in recording.attempts {
            chunks[a.task] = a.chunks.map { c in
                ConsumedChunk(dataset: c.dataset, key: c.key, location: AttemptRunner.locate(c, ledgerDirectory: ledger.directory).location, digest: c.digest, lease: "branch")
            }
            steps[a.task, default: []] += a.steps.filter { $0.kind != StepKind.variable }.map { FedStep(kind: $0.kind, name: $0.name, value: $0.value) }
            if dag.spec.tasks.first(where: { $0.id == a.task })?.kind == .trigger, let o = a.output { triggered[a.task] = o }
        }
        var feed = BranchFeed(originalRunID: recording.key.run, chunks: chunks, steps: steps, triggered: triggered)
        for task in Set(recording.attempts.map(\.task)) {
            let all = recording.attempts.filter { $0.task == task }
            if all.allSatisfy({ $0.seed == nil }), case .blocked(let reason)? = all.last?.outcome { feed.blocked[task] = reason }
        }
        let engine = Engine(
            ledger: ledger, registry: registry,
            options: Engine.Options(dataDirectory: dataDirectory ?? ledger.directory.appendingPathComponent("data")))
        let outcome = try await engine.runBranch(
            dag, of: recording.key.run, runID: id, params: params, partition: recording.partition, feed: feed,
            given: overrides.outputs, chosen: [:], overrides: overrides.described)
        let branch = try RecordedRun.load(RunKey(dag: dag.name, run: outcome.runID), from: ledger)
        let values = Self.diff(recording, branch)
        let changed = values.filter(\.changed).count
        return BranchReport(
            original: recording.key.description, branch: branch.key.description, originalStatus: recording.status,
            branchStatus: branch.status, overrides: overrides.described, dagVersion: dag.version, values: values,
            changed: changed, unchanged: values.count - changed)
    }

    /// Task by task: state, output and the last value of each variable, in both runs.
    public static func diff(_ a: RecordedRun, _ b: RecordedRun) -> [ValueChange] {
        func values(_ r: RecordedRun) -> [String: [String: String]] {
            var out: [String: [String: String]] = [:]
            for (task, why) in r.decisions { out[task, default: [:]]["state"] = why.split(separator: ":").first.map(String.init) }
            for at in r.attempts {
                var v: [String: String] = ["state": at.outcome.word]
                for s in at.steps where s.kind == StepKind.variable { v[s.name] = s.value.text }
                if let o = at.output { v["output"] = o.text }
                out[at.task] = v  // the last attempt wins
            }
            return out
        }
        let va = values(a)
        let vb = values(b)
        var out: [ValueChange] = []
        let order = (a.attempts.map(\.task) + b.attempts.map(\.task) + a.decisions.keys.sorted() + b.decisions.keys.sorted())
        var seen = Set<String>()
        for task in order where seen.insert(task).inserted {
            let x = va[task] ?? [:]
            let y = vb[task] ?? [:]
            let names = Set(x.keys).union(y.keys).sorted { l, r in
                (l == "state" ? 0 : l == "output" ? 2 : 1, l) < (r == "state" ? 0 : r == "output" ? 2 : 1, r)
            }
            for n in names {
                out.append(ValueChange(task: task, name: n, original: x[n], branch: y[n], changed: x[n] != y[n]))
            }
        }
        return out
    }
}
