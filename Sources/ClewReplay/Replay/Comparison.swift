import ClewEngine
import ClewModel
import Foundation

/// Event-by-event comparison of a recorded attempt with its replay, in the order the engine emits them:
/// `task.started` (seed), `value.consumed` (parents' outputs, then chunk files), `variable.recorded`
/// steps, `expectation.evaluated`, `value.produced`, a command's files and exit code, and the outcome
/// (`task.succeeded`/`task.failed`/`task.skipped`, error text and branch choice). Timestamps, durations
/// and lease ids are not compared: they are not the task's doing.
enum Comparison {
    struct Mismatch: Sendable {
        var event: String
        var step: Int?
        var variable: String
        var expected: String?
        var actual: String?
        var seq: UInt64?
        var isChunk = false
        var location: String?
    }

    static func compare(
        recorded a: RecordedAttempt, replayed r: AttemptResult, inputs: [String: RecordedValue], paths: (replay: String, original: String)
    ) -> (count: Int, mismatch: Mismatch?) {
        var count = 0
        func done(_ m: Mismatch) -> (Int, Mismatch?) { (count, m) }
        if a.seed != nil { count += 1 }
        for u in a.upstream {
            count += 1
            if inputs[u.fromTask]?.digest != u.digest {
                return done(Mismatch(event: EventType.valueConsumed, variable: u.fromTask, expected: u.digest, actual: inputs[u.fromTask]?.digest, seq: u.seq))
            }
        }
        for (i, c) in a.chunks.enumerated() {
            count += 1
            let check = i < r.chunkChecks.count ? r.chunkChecks[i] : nil
            if check?.digest != c.digest {
                return done(Mismatch(
                    event: EventType.valueConsumed, variable: "\(c.dataset)/\(c.key)", expected: c.digest, actual: check?.digest, seq: c.seq,
                    isChunk: true, location: c.location))
            }
        }
        let unfinished = a.outcome == .unfinished
        for i in 0..<max(a.steps.count, r.steps.count) {
            if unfinished && i >= a.steps.count { break }
            count += 1
            let e = i < a.steps.count ? a.steps[i] : nil
            let g = i < r.steps.count ? r.steps[i] : nil
            if e?.name != g?.name || e?.kind != g?.kind || e?.value.digest != g?.value.digest {
                let name = e?.name == g?.name || g == nil ? (e?.name ?? "") : e == nil ? g!.name : "\(e!.name) (replay recorded \(g!.name))"
                return done(Mismatch(
                    event: EventType.variableRecorded, step: e?.step ?? g?.step, variable: name, expected: e?.value.text, actual: g?.value.text,
                    seq: e?.seq))
            }
        }
        if let stop = r.stopped {
            count += 1
            return done(Mismatch(event: EventType.variableRecorded, step: r.steps.count + 1, variable: "outside call", expected: nil, actual: stop))
        }
        if unfinished { return (count, nil) }
        for i in 0..<max(a.expectations.count, r.expectations.count) {
            count += 1
            let e = i < a.expectations.count ? a.expectations[i] : nil
            let g = i < r.expectations.count ? r.expectations[i] : nil
            if e?.name != g?.name || e?.passed != g?.passed || e?.message != g?.message {
                return done(Mismatch(
                    event: EventType.expectationEvaluated, variable: e?.name ?? g?.name ?? "",
                    expected: e.map { expectationJSON($0.name, $0.passed, $0.message) }, actual: g.map { expectationJSON($0.name, $0.passed, $0.message) }))
            }
        }
        if a.output != nil || r.output != nil {
            count += 1
            if a.output?.digest != r.output?.digest {
                return done(Mismatch(event: EventType.valueProduced, variable: "output", expected: a.output?.text, actual: r.output?.text, seq: a.outputSeq))
            }
        }
        let end = a.outcome == .succeeded ? EventType.taskSucceeded : EventType.taskFailed
        if let c = a.command {
            count += 1
            let files = r.files ?? [:]
            if c.files != files {
                return done(Mismatch(event: end, variable: "files", expected: json(c.files), actual: json(files), seq: a.endSeq))
            }
            if c.exitCode != r.exitCode {
                return done(Mismatch(event: end, variable: "exit_code", expected: c.exitCode.map(String.init), actual: r.exitCode.map(String.init), seq: a.endSeq))
            }
        }
        count += 1
        let replayedDetail = r.outcome.detail?.replacingOccurrences(of: paths.replay, with: paths.original)
        if a.outcome.word != r.outcome.word || a.outcome.detail != replayedDetail || (a.branch ?? []) != (r.branch ?? []) {
            return done(Mismatch(
                event: end, variable: a.branch != nil || r.branch != nil ? "branch" : "outcome",
                expected: outcomeJSON(a.outcome.word, a.outcome.detail, a.branch),
                actual: outcomeJSON(r.outcome.word, replayedDetail, r.branch), seq: a.endSeq))
        }
        return (count, nil)
    }

    /// Where two replays of one attempt differ, in words, or nil when they agree.
    static func firstDifference(_ x: AttemptResult, _ y: AttemptResult) -> String? {
        for i in 0..<max(x.steps.count, y.steps.count) {
            let a = i < x.steps.count ? x.steps[i] : nil
            let b = i < y.steps.count ? y.steps[i] : nil
            if a?.name != b?.name || a?.value.digest != b?.value.digest {
                return "step \(a?.step ?? b?.step ?? i + 1) '\(a?.name ?? b?.name ?? "?")' (\(a?.value.text.prefix(60) ?? "none") vs \(b?.value.text.prefix(60) ?? "none"))"
            }
        }
        if x.expectations != y.expectations { return "the expectations" }
        if x.output?.digest != y.output?.digest { return "the output (\(x.output?.text.prefix(60) ?? "none") vs \(y.output?.text.prefix(60) ?? "none"))" }
        if x.files != y.files { return "the files written" }
        if x.outcome != y.outcome { return "the outcome (\(x.outcome.word) vs \(y.outcome.word))" }
        return nil
    }

    static func json(_ m: [String: String]) -> String { JSON.Value.strings(m).text }

    static func expectationJSON(_ name: String, _ passed: Bool, _ message: String) -> String {
        JSON.Value.object([("name", .string(name)), ("passed", .bool(passed)), ("message", .string(message))]).text
    }

    static func outcomeJSON(_ word: String, _ detail: String?, _ branch: [String]?) -> String {
        var o: [(String, JSON.Value)] = [("state", .string(word))]
        if let detail { o.append(("error", .string(detail))) }
        if let branch { o.append(("branch", .array(branch.map { .string($0) }))) }
        return JSON.Value.object(o).text
    }
}
