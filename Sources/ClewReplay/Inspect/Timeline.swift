import ClewEngine
public import ClewModel
import ClewProjections
import Foundation

/// Every step of a recorded run on one line, for inspection and debugging: position `i` (0-based, in
/// recorded order across attempts) maps to an attempt and a step in O(log attempts), and the variables in
/// scope at any position are found by binary search in per-name write lists, so jumping anywhere in a
/// run of a million steps costs microseconds, not a scan.
public struct Timeline: Sendable {
    public let run: RecordedRun
    /// First position of each attempt (attempts without steps get an empty range).
    let starts: [Int]
    /// Per attempt: variable name → indices (into the attempt's steps) where it was written, ascending.
    let writes: [[String: [Int32]]]
    public let count: Int

    public init(_ run: RecordedRun) {
        self.run = run
        var starts: [Int] = []
        var writes: [[String: [Int32]]] = []
        var n = 0
        for a in run.attempts {
            starts.append(n)
            var w: [String: [Int32]] = [:]
            for (i, s) in a.steps.enumerated() { w[s.name, default: []].append(Int32(i)) }
            writes.append(w)
            n += a.steps.count
        }
        self.starts = starts
        self.writes = writes
        self.count = n
    }

    /// A position: the attempt (index into `run.attempts`) and the step (index into its steps).
    public struct Position: Sendable, Hashable {
        public var index: Int
        public var attempt: Int
        public var step: Int
    }

    /// The position of global step `i` (0-based), or nil when out of range.
    public func position(_ i: Int) -> Position? {
        guard i >= 0, i < count else { return nil }
        var lo = 0
        var hi = starts.count - 1
        while lo < hi {  // last attempt whose start <= i and that has steps
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= i { lo = mid } else { hi = mid - 1 }
        }
        while run.attempts[lo].steps.isEmpty || starts[lo] + run.attempts[lo].steps.count <= i { lo -= 1 }
        return Position(index: i, attempt: lo, step: i - starts[lo])
    }

    /// The global index of step number `step` (1-based, as recorded) of a task's attempt.
    public func index(task: String, attempt: Int? = nil, step: Int) -> Int? {
        guard let a = run.attempts.lastIndex(where: { $0.task == task && (attempt == nil || $0.attempt == attempt) }) else { return nil }
        guard let s = run.attempts[a].steps.firstIndex(where: { $0.step == step }) else { return nil }
        return starts[a] + s
    }

    /// First position of attempt `a` (even if it has no steps: its first step would be there).
    public func start(ofAttempt a: Int) -> Int { starts[a] }

    public func step(at p: Position) -> RecordedStep { run.attempts[p.attempt].steps[p.step] }
    public func attempt(at p: Position) -> RecordedAttempt { run.attempts[p.attempt] }

    /// The last write of `name` in the attempt at or before `p`.
    public func lastWrite(_ name: String, at p: Position) -> RecordedStep? {
        guard let list = writes[p.attempt][name] else { return nil }
        var lo = 0
        var hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(list[mid]) <= p.step { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : run.attempts[p.attempt].steps[Int(list[lo - 1])]
    }

    /// Every write of `name` in the attempt, in order.
    public func writes(of name: String, attempt a: Int) -> [RecordedStep] {
        (writes[a][name] ?? []).map { run.attempts[a].steps[Int($0)] }
    }

    /// A variable in scope, its value and where it came from.
    public struct Binding: Sendable {
        /// `input.<task>`, `chunk.<dataset>`, `param.<name>`, or the variable's name.
        public var name: String
        public var value: RecordedValue?
        /// In words: `step 3 of clean#1`, `output of extract#2 (seq 88)`, `param`, `chunk file …`.
        public var origin: String
        public var seq: UInt64?
    }

    /// The variables in scope at `p`: params, the attempt's inputs (parents' outputs and chunks), and
    /// the last write of each variable up to and including the step.
    public func scope(at p: Position) -> [Binding] {
        let a = run.attempts[p.attempt]
        var out: [Binding] = []
        for (k, v) in run.params.sorted(by: { $0.key < $1.key }) {
            out.append(Binding(name: "param.\(k)", value: RecordedValue(text: v), origin: "run param", seq: run.seqs.lowerBound))
        }
        for u in a.upstream { out.append(inputBinding(u)) }
        for c in a.chunks {
            out.append(Binding(
                name: "chunk.\(c.dataset)", value: RecordedValue(text: c.key), origin: "chunk \(c.key) at \(c.location ?? "?") (sha256 \(c.digest?.prefix(12) ?? "?"))",
                seq: c.seq))
        }
        for (name, list) in writes[p.attempt].sorted(by: { $0.key < $1.key }) {
            guard let first = list.first, Int(first) <= p.step, let s = lastWrite(name, at: p) else { continue }
            out.append(Binding(name: name, value: s.value, origin: "step \(s.step) of \(a.id)\(s.kind == StepKind.variable ? "" : " (\(s.kind))")", seq: s.seq))
        }
        return out
    }

    func inputBinding(_ u: RecordedInput) -> Binding {
        let producer = run.producer(of: u.fromTask, digest: u.digest).map { run.attempts[$0] }
        let origin = producer.map { p in "output of \(p.id)" + (p.outputSeq.map { " (seq \($0))" } ?? "") } ?? "output of \(u.fromTask) (from the record)"
        return Binding(name: "input.\(u.fromTask)", value: producer?.output, origin: origin, seq: producer?.outputSeq)
    }

    /// Where a value came from, followed upstream by content: a variable's write, then the input or output
    /// with the same digest in a parent attempt, and so on (at most `limit` links).
    public func provenance(of name: String, at p: Position, limit: Int = 12) -> [String] {
        var chain: [String] = []
        var digest: String?
        var attemptIndex = p.attempt
        if let s = lastWrite(name, at: p) {
            chain.append("\(name) = \(Timeline.short(s.value.text)) written at step \(s.step) of \(run.attempts[p.attempt].id) (seq \(s.seq))")
            digest = s.value.digest
        } else if let b = scope(at: p).first(where: { $0.name == name }) {
            chain.append("\(name) = \(Timeline.short(b.value?.text ?? "?")): \(b.origin)")
            digest = b.value?.digest
            if name.hasPrefix("input.") {
                let task = String(name.dropFirst(6))
                if let d = digest, let i = run.producer(of: task, digest: d) { attemptIndex = i }
            }
        } else {
            return ["\(name) is not in scope at step \(p.step + 1) of \(run.attempts[p.attempt].id)"]
        }
        // Follow the same content upstream: a parent's output or variable with this digest.
        while let d = digest, chain.count < limit {
            let a = run.attempts[attemptIndex]
            if let s = a.steps.first(where: { $0.value.digest == d }), !chain.last!.contains("step \(s.step) of \(a.id)") {
                chain.append("same value as \(s.name) at step \(s.step) of \(a.id) (seq \(s.seq))")
            }
            guard let u = a.upstream.first(where: { $0.digest == d }),
                let i = run.producer(of: u.fromTask, digest: d)
            else {
                if a.output?.digest == d, attemptIndex != p.attempt { chain.append("the output of \(a.id)") }
                break
            }
            chain.append("consumed by \(a.id) as the output of \(run.attempts[i].id) (seq \(run.attempts[i].outputSeq ?? 0))")
            attemptIndex = i
        }
        return chain
    }

    static func short(_ s: String, _ n: Int = 80) -> String { s.count <= n ? s : String(s.prefix(n - 1)) + "…" }

    /// A JSON value drawn as an indented tree (objects and arrays one member per line), at most `lines` lines.
    public static func tree(_ json: String, indent: String = "  ", lines: Int = 40) -> [String] {
        guard let t = try? JSONDecoder().decode(JSONTree.self, from: Data(json.utf8)) else { return [json] }
        var out: [String] = []
        func walk(_ t: JSONTree, _ label: String, _ depth: Int) {
            guard out.count < lines else { return }
            let pad = String(repeating: indent, count: depth)
            switch t {
            case .object(let o) where !o.isEmpty:
                out.append("\(pad)\(label){\(o.count) keys}")
                for (k, v) in o.sorted(by: { $0.key < $1.key }) { walk(v, "\(k): ", depth + 1) }
            case .array(let a) where !a.isEmpty && a.contains(where: { if case .object = $0 { return true }; if case .array = $0 { return true }; return false }):
                out.append("\(pad)\(label)[\(a.count) items]")
                for (i, v) in a.enumerated() { walk(v, "[\(i)] ", depth + 1) }
            default:
                out.append("\(pad)\(label)\(short(t.text, 100))")
            }
        }
        walk(t, "", 0)
        if out.count >= lines { out.append("…") }
        return out
    }
}
