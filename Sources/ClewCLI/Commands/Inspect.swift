import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a recorded run's variables: attempts, steps, and at a step the variables in scope, their values and origins.",
        discussion: """
            clew inspect RUN                          attempts and their step counts
            clew inspect RUN --task T                 the steps of T's last attempt (--attempt N for another)
            clew inspect RUN --task T --step N        the variables in scope at step N: values (as trees) and origins
            clew inspect RUN --task T --step N --var V    the last write of V up to step N, and where it came from
            """)

    @Argument(help: "The run: RUN or DAG/RUN.")
    var run: String

    @Option(name: .long, help: "A task of the run.")
    var task: String?

    @Option(name: .long, help: "Which attempt of the task (default: the last).")
    var attempt: Int?

    @Option(name: .long, help: "A step number of the attempt (1-based, as recorded).")
    var step: Int?

    @Option(name: .customLong("var"), help: "A variable: its last write up to --step and its provenance.")
    var variable: String?

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if step != nil && task == nil { throw ValidationError("--step needs --task") }
        if variable != nil && step == nil { throw ValidationError("--var needs --task and --step") }
        if let step, step < 1 { throw ValidationError("--step counts from 1") }
    }

    /// Fails, naming the tasks that did run, when `task` (or that attempt of it) did not run in the recording.
    static func requireRan(_ task: String, attempt: Int?, in recording: RecordedRun, _ key: RunKey) throws {
        guard !recording.attempts.contains(where: { $0.task == task && (attempt == nil || $0.attempt == attempt) }) else { return }
        let tasks = Array(Set(recording.attempts.map(\.task))).sorted()
        throw CLIFailure(message: "task \(task)\(attempt.map { " attempt \($0)" } ?? "") did not run in \(key) (tasks that ran: \(tasks.prefix(12).joined(separator: ", ")))")
    }

    struct AttemptRow: Encodable {
        var task: String, attempt: Int, state: String, steps: Int, output: String?, error: String?
    }

    struct StepRow: Encodable {
        var step: Int, name: String, kind: String, value: String, seq: UInt64
        var source: String?
        var count: Int?
    }

    struct ScopeRow: Encodable {
        var name: String, value: String?, origin: String, seq: UInt64?
    }

    struct StepDetail: Encodable {
        var run: String, task: String, attempt: Int, step: StepRow, scope: [ScopeRow]
        var variable: String?
        var lastWrite: StepRow?
        var writes: [StepRow]?
        var provenance: [String]?

        enum CodingKeys: String, CodingKey {
            case run, task, attempt, step, scope, variable, writes, provenance
            case lastWrite = "last_write"
        }
    }

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let key = try RecordedRun.resolve(run, in: l)
            let timeline = Timeline(try RecordedRun.load(key, from: l))
            let recording = timeline.run
            guard let task else {
                let rows = recording.attempts.map {
                    AttemptRow(task: $0.task, attempt: $0.attempt, state: $0.outcome.word, steps: $0.steps.count, output: $0.output?.text, error: $0.outcome.detail)
                }
                if output.json { print(try JSONOutput.text(rows)); return }
                print("\(key) (\(recording.status)): \(recording.attempts.count) attempts, \(timeline.count) steps")
                print(Show.table(["TASK", "ATTEMPT", "STATE", "STEPS", "OUTPUT"], rows.map {
                    [$0.task, String($0.attempt), $0.state, String($0.steps), Show.clip($0.output ?? $0.error ?? "", 60)]
                }))
                for (t, why) in recording.decisions.sorted(by: { $0.key < $1.key }) { print("\(t): \(why)") }
                return
            }
            try Self.requireRan(task, attempt: attempt, in: recording, key)
            let a = recording.attempts.lastIndex { $0.task == task && (attempt == nil || $0.attempt == attempt) }!
            let at = recording.attempts[a]
            let row = { (s: RecordedStep) in
                StepRow(step: s.step, name: s.name, kind: s.kind, value: s.value.text, seq: s.seq, source: s.source, count: s.count)
            }
            guard let step else {
                if output.json { print(try JSONOutput.text(at.steps.map(row))); return }
                print("\(at.id) of \(key): \(at.outcome.word), \(at.steps.count) steps")
                if at.steps.contains(where: { $0.source != nil }) {
                    // Steps a traced task reported with their source line; a summarized loop says how often it ran.
                    print(Show.table(["STEP", "AT", "NAME", "KIND", "VALUE", "SEQ"], at.steps.map {
                        [String($0.step), $0.source ?? "", $0.name + ($0.count.map { " (last of \($0))" } ?? ""), $0.kind, Show.clip($0.value.text, 60), String($0.seq)]
                    }))
                } else {
                    print(Show.table(["STEP", "NAME", "KIND", "VALUE", "SEQ"], at.steps.map {
                        [String($0.step), $0.name, $0.kind, Show.clip($0.value.text, 70), String($0.seq)]
                    }))
                }
                return
            }
            guard let index = timeline.index(task: task, attempt: at.attempt, step: step), let p = timeline.position(index) else {
                throw CLIFailure(message: "\(at.id) has no step \(step) (it recorded \(at.steps.count) steps)")
            }
            let scope = timeline.scope(at: p).map { ScopeRow(name: $0.name, value: $0.value?.text, origin: $0.origin, seq: $0.seq) }
            var detail = StepDetail(run: key.description, task: task, attempt: at.attempt, step: row(timeline.step(at: p)), scope: scope)
            if let variable {
                detail.variable = variable
                detail.lastWrite = timeline.lastWrite(variable, at: p).map(row)
                detail.writes = timeline.writes(of: variable, attempt: p.attempt).filter { $0.step <= step }.map(row)
                detail.provenance = timeline.provenance(of: variable, at: p)
            }
            if output.json { print(try JSONOutput.text(detail)); return }
            let s = timeline.step(at: p)
            print("\(at.id) of \(key), step \(s.step): \(s.kind == StepKind.variable ? "" : "\(s.kind) ")\(s.name) = \(Show.clip(s.value.text, 120))  (seq \(s.seq))")
            print("in scope:")
            for b in timeline.scope(at: p) {
                let tree = b.value.map { Timeline.tree($0.text, lines: 16) } ?? ["?"]
                print("  \(b.name) = \(tree[0])   ← \(b.origin)")
                for line in tree.dropFirst() { print("      \(line)") }
            }
            if let variable {
                if let w = detail.lastWrite {
                    print("last write of \(variable) up to step \(step): step \(w.step) = \(Show.clip(w.value, 100)) (seq \(w.seq)); \(detail.writes?.count ?? 0) writes so far")
                } else {
                    print("\(variable) was not written by \(at.id) up to step \(step)")
                }
                for (i, line) in (detail.provenance ?? []).enumerated() { print(i == 0 ? "  \(line)" : "    ← \(line)") }
            }
        }
    }
}
