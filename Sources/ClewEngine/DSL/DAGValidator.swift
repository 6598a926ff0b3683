public import ClewCore
import ClewModel

/// One problem in a DAG definition, with where it is.
public struct DAGProblem: Sendable, Hashable, CustomStringConvertible {
    public var dag: String
    /// `file:line` or a Swift `file:line`.
    public var origin: String
    public var message: String

    public var description: String { origin.isEmpty ? "dag \(dag): \(message)" : "\(origin): dag \(dag): \(message)" }
}

/// A DAG definition that cannot run, with every problem found.
public struct DAGValidationError: ClewError {
    public var problems: [DAGProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
    public var category: ErrorCategory { .invalidInput }
}

enum DAGValidator {
    static func isIdentifier(_ s: String, max: Int = 100) -> Bool {
        !s.isEmpty && s.utf8.count <= max
            && s.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "_-.".unicodeScalars.contains($0) }
    }

    static func problems(in spec: DAGSpec) -> [DAGProblem] {
        var out: [DAGProblem] = []
        func add(_ message: String, line: Int? = nil) {
            let origin: String
            if let line, let file = spec.origin.split(separator: ":").first { origin = "\(file):\(line)" } else { origin = spec.origin }
            out.append(DAGProblem(dag: spec.name, origin: origin, message: message))
        }
        if !isIdentifier(spec.name) { add("the DAG name '\(spec.name)' must be 1-100 letters, digits, '_', '-' or '.'") }
        if spec.tasks.isEmpty { add("it has no tasks") }
        if spec.maxActiveTasks < 1 { add("max_active_tasks must be at least 1") }
        if let s = spec.slaMillis, s <= 0 { add("sla must be positive") }
        if let a = spec.alerts {
            for p in a.problems { add(p) }
            if a.webhooks.isEmpty && a.emails.isEmpty { add("alerts name no webhook and no e-mail address") }
        }
        var seen: [String: Int?] = [:]
        for task in spec.tasks {
            if !isIdentifier(task.id) { add("task id '\(task.id)' must be 1-100 letters, digits, '_', '-' or '.'", line: task.line) }
            if seen[task.id] != nil { add("task '\(task.id)' is declared twice", line: task.line) }
            seen[task.id] = task.line
            if task.retries < 0 || task.retries > 100 { add("task '\(task.id)': retries must be 0-100", line: task.line) }
            if let t = task.timeoutMillis, t <= 0 { add("task '\(task.id)': timeout must be positive", line: task.line) }
            if let s = task.slaMillis, s <= 0 { add("task '\(task.id)': sla must be positive", line: task.line) }
            if let p = task.pool, (try? VariableStore.check(key: p, what: "pool name")) == nil {
                add("task '\(task.id)': pool '\(p)' must start with a letter or _ and hold only ASCII letters, digits, _ . -", line: task.line)
            }
            if let n = task.poolSlots, !(1...100_000).contains(n) { add("task '\(task.id)': pool_slots must be 1-100000", line: task.line) }
            if let w = task.priorityWeight, !(-1_000_000...1_000_000).contains(w) {
                add("task '\(task.id)': priority_weight must be within ±1,000,000", line: task.line)
            }

            if task.kind == .command, task.command?.argv.first?.isEmpty ?? true {
                add("task '\(task.id)': the command is empty", line: task.line)
            }
            if task.kind == .trigger, !isIdentifier(task.trigger?.dag ?? "") {
                add("task '\(task.id)': trigger names no DAG", line: task.line)
            }
        }
        let datasetNames = Set(spec.datasets.map(\.name))
        for task in spec.tasks {
            for parent in task.upstream where seen[parent] == nil {
                add("task '\(task.id)' depends on unknown task '\(parent)'", line: task.line)
            }
            if task.upstream.contains(task.id) { add("task '\(task.id)' depends on itself", line: task.line) }
            for ref in task.consumes + task.produces {
                if !isIdentifier(ref.dataset, max: 200) { add("task '\(task.id)': dataset name '\(ref.dataset)' is not valid", line: task.line) }
                if !spec.datasets.isEmpty, !datasetNames.contains(ref.dataset) {
                    add("task '\(task.id)' uses dataset '\(ref.dataset)', which the DAG does not declare", line: task.line)
                }
            }
        }
        if out.isEmpty, topologicalOrder(spec) == nil {
            add("the tasks form a cycle: \(cycle(in: spec).joined(separator: " -> "))")
        }
        return out
    }

    /// Kahn's algorithm; nil when there is a cycle.
    static func topologicalOrder(_ spec: DAGSpec) -> [TaskSpec]? {
        let index = Dictionary(spec.tasks.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        var indegree = spec.tasks.map { $0.upstream.count }
        var children = Array(repeating: [Int](), count: spec.tasks.count)
        for (i, t) in spec.tasks.enumerated() {
            for p in t.upstream {
                guard let pi = index[p] else { return nil }
                children[pi].append(i)
            }
        }
        var ready = indegree.indices.filter { indegree[$0] == 0 }
        var out: [TaskSpec] = []
        var head = 0
        while head < ready.count {
            let i = ready[head]
            head += 1
            out.append(spec.tasks[i])
            for c in children[i] {
                indegree[c] -= 1
                if indegree[c] == 0 { ready.append(c) }
            }
        }
        return out.count == spec.tasks.count ? out : nil
    }

    /// One cycle, for the error message.
    static func cycle(in spec: DAGSpec) -> [String] {
        let byID = Dictionary(spec.tasks.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        func visit(_ id: String) -> [String]? {
            if state[id] == 2 { return nil }
            if state[id] == 1, let start = path.firstIndex(of: id) { return Array(path[start...]) + [id] }
            state[id] = 1
            path.append(id)
            for p in byID[id]?.upstream ?? [] {
                if let c = visit(p) { return c }
            }
            path.removeLast()
            state[id] = 2
            return nil
        }
        for t in spec.tasks {
            if let c = visit(t.id) { return c.reversed() }
        }
        return []
    }
}
