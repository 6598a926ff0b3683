import ClewLedger
import ClewModel
public import ClewProjections
import Foundation

/// A condition on a recorded value: `NAME=VALUE`, `NAME>=X`, `NAME<=X`, `NAME>X`, `NAME<X`, `NAME=X..Y`,
/// `NAME^=PREFIX`, or a bare `NAME` (any value).
public struct ValueCondition: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var match: ValueMatch
    public let description: String

    /// Parses a condition.
    /// - Throws: ``ForensicsError`` naming the condition and what is wrong with it.
    public init(parsing text: String) throws {
        description = text
        let ops = ["^=", ">=", "<=", "=", ">", "<"]
        guard let (op, range) = ops.lazy.compactMap({ op in text.range(of: op).map { (op, $0) } }).min(by: { $0.1.lowerBound < $1.1.lowerBound }) else {
            guard !text.isEmpty else { throw ForensicsError("an empty condition; write NAME=VALUE, NAME>=X, NAME=X..Y or NAME^=PREFIX") }
            name = text
            match = .any
            return
        }
        // At the earliest operator position, prefer the two-character operator.
        let at = range.lowerBound
        let twoChar = ops.prefix(3).first { text[at...].hasPrefix($0) }
        let chosen = twoChar ?? op
        name = String(text[..<at])
        let value = String(text[text.index(at, offsetBy: chosen.count)...])
        guard !name.isEmpty else { throw ForensicsError("condition \(text) has no name before \(chosen)") }
        func number(_ s: String) throws -> Double {
            guard let d = Double(s) else { throw ForensicsError("condition \(text): \(s.isEmpty ? "a number is missing" : "\(s) is not a number")") }
            return d
        }
        switch chosen {
        case "^=": match = .prefix(value)
        case ">=": match = .range(min: try number(value), max: nil)
        case "<=": match = .range(min: nil, max: try number(value))
        case ">": match = .range(min: try number(value).nextUp, max: nil)
        case "<": match = .range(min: nil, max: try number(value).nextDown)
        default:
            if let dots = value.range(of: "..") {
                let lo = String(value[..<dots.lowerBound]), hi = String(value[dots.upperBound...])
                match = .range(min: lo.isEmpty ? nil : try number(lo), max: hi.isEmpty ? nil : try number(hi))
            } else if let d = Double(value) {
                match = .equals(.number(d))
            } else if value == "true" || value == "false" {
                match = .equals(.bool(value == "true"))
            } else {
                let unquoted = value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") ? String(value.dropFirst().dropLast()) : value
                match = .equals(.string(unquoted))
            }
        }
    }
}

/// What a task search looks for.
public struct TaskQuery: Sendable {
    /// The task's name (`TASK` or `DAG/TASK`).
    public var task: String?
    public var dag: String?
    /// A condition on the task's output (`output` or `output.FIELD` by default; any name is taken as a field).
    public var output: ValueCondition?
    /// A condition on a value the task read (a parent's output).
    public var input: ValueCondition?
    /// A condition on a variable the task recorded.
    public var variable: ValueCondition?
    public var asOf: UInt64?
    public var limit = 100

    public init(task: String? = nil, dag: String? = nil, output: ValueCondition? = nil, input: ValueCondition? = nil, variable: ValueCondition? = nil, asOf: UInt64? = nil, limit: Int = 100) {
        self.task = task
        self.dag = dag
        self.output = output
        self.input = input
        self.variable = variable
        self.asOf = asOf
        self.limit = limit
    }
}

/// A task attempt a search found, with what matched.
public struct TaskHit: Sendable, Hashable, Codable {
    public var dag: String
    public var run: String
    public var task: String
    public var attempt: Int
    /// The task's state in its run (from the runs view).
    public var state: String?
    /// What matched: `output.total = 12.5`, `input (from read_batch) = …`, `factor = 0.0001`, or `task`.
    public var matched: String
    public var seq: UInt64
}

extension Forensics {
    /// Tasks across all runs by name, and by input, output or variable value (equality, numeric range,
    /// string prefix), newest first within a value. Conditions combine (all must hold for the same attempt).
    public func searchTasks(_ q: TaskQuery) throws -> [TaskHit] {
        guard q.task != nil || q.output != nil || q.input != nil || q.variable != nil else {
            throw ForensicsError("a task search needs --task, --output, --input or --var")
        }
        let (dagFilter, taskFilter): (String?, String?) = {
            guard let t = q.task else { return (q.dag, nil) }
            if let slash = t.firstIndex(of: "/") { return (String(t[..<slash]), String(t[t.index(after: slash)...])) }
            return (q.dag, t)
        }()
        func keep(_ h: ValueHit) -> Bool {
            (dagFilter == nil || h.dag == dagFilter) && (taskFilter == nil || h.task == taskFilter)
        }
        // Each condition gives a set of attempts; the answer is their intersection.
        var sets: [[AttemptRef: TaskHit]] = []
        let wide = max(q.limit * 50, 10_000)
        if let c = q.variable {
            var s: [AttemptRef: TaskHit] = [:]
            for h in try views.values(name: c.name, match: c.match, asOf: q.asOf, limit: wide) where keep(h) && h.name != "output" {
                s[AttemptRef(dag: h.dag, run: h.run, task: h.task, attempt: h.attempt)] = TaskHit(
                    dag: h.dag, run: h.run, task: h.task, attempt: h.attempt, state: nil, matched: "\(h.name) = \(h.value ?? "?")\(h.step.map { " (step \($0))" } ?? "")", seq: h.seq)
            }
            sets.append(s)
        }
        if let c = q.output {
            var s: [AttemptRef: TaskHit] = [:]
            let name = c.name == "output" || c.name.hasPrefix("output.") ? c.name : "output.\(c.name)"
            for h in try views.values(name: name, match: c.match, asOf: q.asOf, limit: wide) where keep(h) {
                s[AttemptRef(dag: h.dag, run: h.run, task: h.task, attempt: h.attempt)] = TaskHit(
                    dag: h.dag, run: h.run, task: h.task, attempt: h.attempt, state: nil, matched: "\(h.name) = \(h.value ?? "?")", seq: h.seq)
            }
            sets.append(s)
        }
        if let c = q.input {
            // Values that match as some task's output, then the tasks that read those bytes.
            var s: [AttemptRef: TaskHit] = [:]
            let name = c.name == "output" || c.name.hasPrefix("output.") ? c.name : (c.name == "input" ? "output" : "output.\(c.name)")
            var producers: [String: [ValueHit]] = [:]
            let decoder = JSONDecoder()
            for h in try views.values(name: name, match: c.match, asOf: q.asOf, limit: wide) {
                if let d = h.digest { producers[d, default: []].append(h); continue }
                // A field of a record output: the digest is the whole output's, in its event.
                if let e = try ledger.event(at: h.seq), let v = try? decoder.decode(ValueEvent.self, from: e.payload) {
                    producers[v.digest, default: []].append(h)
                }
            }
            for (digest, made) in producers {
                for h in try views.values(name: nil, match: .digest(digest), asOf: q.asOf, limit: wide) where h.name == "input" && keep(h) {
                    // The parent it was read from, as the value.consumed event says.
                    let parent = try ledger.event(at: h.seq).flatMap { try? decoder.decode(ValueConsumed.self, from: $0.payload).fromTask }
                    let value = (made.first { $0.task == parent && $0.run == h.run } ?? made[0]).value ?? "?"
                    let from = parent.map { " from \($0)" } ?? ""
                    s[AttemptRef(dag: h.dag, run: h.run, task: h.task, attempt: h.attempt)] = TaskHit(
                        dag: h.dag, run: h.run, task: h.task, attempt: h.attempt, state: nil,
                        matched: "read \(name) = \(value)\(from)", seq: h.seq)
                }
            }
            sets.append(s)
        }
        if sets.isEmpty, let taskFilter {
            // By name only: the task's attempts, from the lineage graph (attempt → task membership).
            var s: [AttemptRef: TaskHit] = [:]
            let dags = try dagFilter.map { [$0] } ?? views.lineageNodes(prefix: "task:", limit: 100_000).compactMap { node -> String? in
                let rest = node.dropFirst(5)
                guard let slash = rest.lastIndex(of: "/"), rest[rest.index(after: slash)...] == taskFilter else { return nil }
                return String(rest[..<slash])
            }
            for dag in dags {
                for e in try views.lineage(node: LineageNode.task(dag: dag, task: taskFilter), direction: .up, depth: 1, asOf: q.asOf) where e.kind == "part_of" {
                    guard let a = AttemptRef(node: e.from) else { continue }
                    s[a] = TaskHit(dag: a.dag, run: a.run, task: a.task, attempt: a.attempt, state: nil, matched: "task", seq: e.firstSeq)
                }
            }
            sets.append(s)
        }
        var result = sets[0]
        for other in sets.dropFirst() {
            result = result.filter { other[$0.key] != nil }
        }
        var hits = result.values.sorted { ($0.seq, $0.task) > ($1.seq, $1.task) }
        if hits.count > q.limit { hits.removeLast(hits.count - q.limit) }
        // Task states from the runs view.
        var details: [RunKey: RunDetail?] = [:]
        for i in hits.indices {
            let key = RunKey(dag: hits[i].dag, run: hits[i].run)
            if details[key] == nil { details[key] = .some(try views.run(key, asOf: q.asOf)) }
            hits[i].state = details[key]??.tasks.first { $0.task == hits[i].task }?.state
        }
        return hits
    }
}
