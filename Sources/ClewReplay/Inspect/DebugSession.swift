import ClewModel
import ClewEngine
import ClewProjections
import Foundation

/// The state and commands of `clew debug`: a cursor over a ``Timeline`` that moves forward and backward,
/// by step or task, jumps, runs to breakpoints (conditions over task and variables), shows watches and
/// traces where a value came from. Terminal-free: each command line in, text out, so it is driven the
/// same way by a person, a script or a test.
public final class DebugSession {
    public let timeline: Timeline
    public private(set) var position = 0
    public private(set) var breakpoints: [Expression] = []
    public private(set) var watches: [Expression] = []
    var parsed: [String: JSONTree] = [:]  // value cache by digest

    public init(_ timeline: Timeline) { self.timeline = timeline }

    public static let help = """
        n [K] / next [K]      forward K steps (1)          p [K] / prev [K]   back K steps
        nt / next-task        first step of the next task   pt / prev-task     of the previous task
        j N / jump N          to step N of the run (1-based), or jump TASK[#ATTEMPT]:STEP
        b COND / break COND   breakpoint, e.g. b task == "clean" && rows < 10
        c / continue          forward to the next step where a breakpoint holds;  rc: backward
        breaks                list breakpoints;             delete N           remove breakpoint N
        w EXPR / watch EXPR   show EXPR at every stop;      unwatch N
        vars / scope          variables in scope, their values and where each came from
        print EXPR / x EXPR   evaluate an expression here
        where NAME / from NAME    where did this value come from (followed upstream)
        info / l              where we are;                 help;  q / quit
        """

    /// Runs one command line and returns what to print.
    public func handle(_ line: String) -> String {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        let (command, argument) = trimmed.firstIndex(of: " ").map {
            (String(trimmed[..<$0]), String(trimmed[$0...]).trimmingCharacters(in: .whitespaces))
        } ?? (trimmed, "")
        guard timeline.count > 0 || ["help", "q", "quit", "info", ""].contains(command) else {
            return "the run recorded no steps"
        }
        switch command {
        case "", "info", "l": return show()
        case "help", "h", "?": return Self.help
        case "n", "next", "s", "step": return move(by: Int(argument) ?? 1)
        case "p", "prev", "back": return move(by: -(Int(argument) ?? 1))
        case "nt", "next-task": return moveTask(forward: true)
        case "pt", "prev-task": return moveTask(forward: false)
        case "j", "jump": return jump(argument)
        case "b", "break":
            do {
                let e = try Expression(parsing: argument)
                breakpoints.append(e)
                return "breakpoint \(breakpoints.count): \(argument)"
            } catch { return "\(error)" }
        case "breaks": return breakpoints.isEmpty ? "no breakpoints" : breakpoints.enumerated().map { "\($0 + 1): \($1)" }.joined(separator: "\n")
        case "delete", "d":
            guard let n = Int(argument), n >= 1, n <= breakpoints.count else { return "no breakpoint \(argument)" }
            breakpoints.remove(at: n - 1)
            return "deleted breakpoint \(n)"
        case "c", "continue": return runToBreakpoint(forward: true)
        case "rc", "reverse-continue": return runToBreakpoint(forward: false)
        case "w", "watch":
            do {
                watches.append(try Expression(parsing: argument))
                return "watch \(watches.count): \(argument) = \(evaluate(watches.last!, at: position).text)"
            } catch { return "\(error)" }
        case "unwatch":
            guard let n = Int(argument), n >= 1, n <= watches.count else { return "no watch \(argument)" }
            watches.remove(at: n - 1)
            return "removed watch \(n)"
        case "vars", "scope": return scopeText()
        case "print", "x":
            do { return "\(argument) = \(evaluate(try Expression(parsing: argument), at: position).text)" } catch { return "\(error)" }
        case "where", "from":
            guard let p = timeline.position(position) else { return "" }
            return timeline.provenance(of: argument, at: p).enumerated().map { "\($0 == 0 ? "" : "  ← ")\($1)" }.joined(separator: "\n")
        default:
            return "unknown command '\(command)' (help lists them)"
        }
    }

    /// Moves to global position `i` (clamped) and describes it.
    public func go(to i: Int) -> String {
        position = max(0, min(timeline.count - 1, i))
        return show()
    }

    func move(by k: Int) -> String {
        let target = position + k
        if target < 0 { position = 0; return "at the first step\n" + show() }
        if target >= timeline.count { position = timeline.count - 1; return "at the last step\n" + show() }
        return go(to: target)
    }

    func moveTask(forward: Bool) -> String {
        guard let p = timeline.position(position) else { return show() }
        var a = p.attempt
        while true {
            a += forward ? 1 : -1
            guard a >= 0, a < timeline.run.attempts.count else { return forward ? "no later task with steps\n" + show() : "no earlier task with steps\n" + show() }
            if !timeline.run.attempts[a].steps.isEmpty { return go(to: timeline.start(ofAttempt: a)) }
        }
    }

    func jump(_ argument: String) -> String {
        if let n = Int(argument) {
            guard n >= 1, n <= timeline.count else { return "step \(n) is outside 1…\(timeline.count)" }
            return go(to: n - 1)
        }
        // TASK[#ATTEMPT]:STEP
        guard let colon = argument.lastIndex(of: ":"), let step = Int(argument[argument.index(after: colon)...]) else {
            return "jump N, or jump TASK[#ATTEMPT]:STEP"
        }
        let target = String(argument[..<colon])
        let parts = target.split(separator: "#")
        guard let i = timeline.index(task: String(parts[0]), attempt: parts.count > 1 ? Int(parts[1]) : nil, step: step) else {
            return "no step \(step) of \(target) in this run"
        }
        return go(to: i)
    }

    func runToBreakpoint(forward: Bool) -> String {
        guard !breakpoints.isEmpty else { return "no breakpoints (b COND adds one)" }
        var i = position
        while true {
            i += forward ? 1 : -1
            guard i >= 0, i < timeline.count else {
                return forward ? "no breakpoint holds after this step; still at step \(position + 1)" : "no breakpoint holds before this step; still at step \(position + 1)"
            }
            if let hit = breakpoints.firstIndex(where: { evaluate($0, at: i).truthy }) {
                return "breakpoint \(hit + 1) (\(breakpoints[hit])) holds\n" + go(to: i)
            }
        }
    }

    /// The value of `name` at global position `i`.
    func lookup(_ name: String, at i: Int) -> JSONTree? {
        guard let p = timeline.position(i) else { return nil }
        let a = timeline.attempt(at: p)
        let s = timeline.step(at: p)
        switch name {
        case "task": return .string(a.task)
        case "attempt": return .number(Double(a.attempt))
        case "step": return .number(Double(s.step))
        case "pos": return .number(Double(i + 1))
        case "name": return .string(s.name)
        case "kind": return .string(s.kind)
        case "value": return tree(s.value)
        case "state": return .string(a.outcome.word)
        case "output": return a.output.map(tree)
        default: break
        }
        if let w = timeline.lastWrite(name, at: p) { return tree(w.value) }
        if name.hasPrefix("param.") { return timeline.run.params[String(name.dropFirst(6))].map { .string($0) } }
        if name.hasPrefix("input."), let u = a.upstream.first(where: { $0.fromTask == name.dropFirst(6) }) {
            return timeline.run.producer(of: u.fromTask, digest: u.digest).flatMap { timeline.run.attempts[$0].output }.map(tree)
        }
        return nil
    }

    func tree(_ v: RecordedValue) -> JSONTree {
        if let t = parsed[v.digest] { return t }
        let t = (try? JSONDecoder().decode(JSONTree.self, from: v.json)) ?? .string(v.text)
        if parsed.count > 100_000 { parsed.removeAll() }
        parsed[v.digest] = t
        return t
    }

    func evaluate(_ e: Expression, at i: Int) -> JSONTree { e.evaluate { self.lookup($0, at: i) } }

    /// The current step, its attempt and the watches.
    public func show() -> String {
        guard let p = timeline.position(position) else { return "the run recorded no steps" }
        let a = timeline.attempt(at: p)
        let s = timeline.step(at: p)
        var lines = [
            "[\(position + 1)/\(timeline.count)] \(a.id) step \(s.step) (\(p.step + 1)/\(a.steps.count) of the attempt, \(a.outcome.word)) seq \(s.seq)",
            "  \(s.kind == StepKind.variable ? "" : "\(s.kind) ")\(s.name) = \(Timeline.short(s.value.text, 160))"
                + (s.source.map { "   at \($0)" } ?? "") + (s.count.map { " (last of \($0) runs)" } ?? ""),
        ]
        for (n, w) in watches.enumerated() { lines.append("  watch \(n + 1): \(w) = \(Timeline.short(evaluate(w, at: position).text, 120))") }
        return lines.joined(separator: "\n")
    }

    func scopeText() -> String {
        guard let p = timeline.position(position) else { return "" }
        var lines: [String] = []
        for b in timeline.scope(at: p) {
            let tree = b.value.map { Timeline.tree($0.text, lines: 12) } ?? ["?"]
            lines.append("\(b.name) = \(tree[0])   ← \(b.origin)")
            lines += tree.dropFirst().map { "    \($0)" }
        }
        return lines.isEmpty ? "nothing in scope" : lines.joined(separator: "\n")
    }
}
