public import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
public import Foundation

/// `clew bench replay`: a run recording `steps` variables (over `tasks` tasks, each also reading the time
/// and a side effect) is executed by the engine, then replayed; the replay must not be slower than the
/// original (`replay_ratio = replay_s / original_s`, goal ≤ 1). Then the recording is loaded for
/// inspection and the debugger jumps to random steps (`step_jump_ms`, goal < 5 ms on 1,000,000 steps),
/// each jump computing the variables in scope and their values.
public enum ReplayBenchmark {
    public struct Result: Codable, Sendable {
        public var steps: Int
        public var tasks: Int
        public var repetitions: Int
        public var originalSeconds: Double
        public var replaySeconds: Double
        public var replayRatio: Double
        public var loadSeconds: Double
        public var stepJumpMillisP50: Double
        public var stepJumpMillisP99: Double
        public var jumps: Int
        public var verdict: String

        enum CodingKeys: String, CodingKey {
            case steps, tasks, repetitions, jumps, verdict
            case originalSeconds = "original_s"
            case replaySeconds = "replay_s"
            case replayRatio = "replay_ratio"
            case loadSeconds = "load_s"
            case stepJumpMillisP50 = "step_jump_ms"
            case stepJumpMillisP99 = "step_jump_ms_p99"
        }
    }

    /// `tasks` independent tasks, each recording `perTask` steps: running sums under a few names, the time
    /// once and one side effect, so the replay has every kind of step to feed back and compare.
    public static func dag(tasks: Int, perTask: Int) -> DAG {
        DAG("bench_replay", maxActiveTasks: 2) {
            for t in 0..<tasks {
                Op("work_\(t)") { ctx in
                    let started = try ctx.now()
                    let base = try await ctx.sideEffect("fetch base") { Int(started.timeIntervalSince1970) % 1000 }
                    var sum = base
                    for i in 0..<(perTask - 2) {
                        sum &+= i &* 7 % 1013
                        switch i % 4 {
                        case 0: try ctx.record("i", i)
                        case 1: try ctx.record("sum", sum)
                        case 2: try ctx.record("rows", i % 97)
                        default: try ctx.record("label", "row-\(i % 11)")
                        }
                    }
                    return sum
                }
            }
        }
    }

    public static func run(
        steps: Int, tasks: Int, repetitions: Int, jumps: Int = 1_000, in directory: URL, progress: (String) -> Void = { _ in }
    ) async throws -> Result {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let dag = dag(tasks: tasks, perTask: max(3, steps / tasks))
        var originals: [Double] = []
        var replays: [Double] = []
        var verdict = "identical"
        var last: (Ledger, RunKey)?
        for r in 0..<repetitions {
            progress("original run \(r + 1)/\(repetitions)")
            let ledger = try Ledger.create(at: directory.appendingPathComponent("ledger-\(r)"))
            let engine = Engine(ledger: ledger, registry: DAGRegistry([dag]), options: Engine.Options(dataDirectory: directory.appendingPathComponent("data-\(r)")))
            try await engine.register(dag)
            var clock = ContinuousClock.now
            let outcome = try await engine.run(dag)
            originals.append((ContinuousClock.now - clock).seconds)
            progress("replay \(r + 1)/\(repetitions)")
            clock = ContinuousClock.now
            let key = RunKey(dag: dag.name, run: outcome.runID)
            let recording = try RecordedRun.load(key, from: ledger)
            var options = ReplayOptions()
            options.workDirectory = directory.appendingPathComponent("replay-\(r)")
            let report = try await Replayer(ledger: ledger, registry: DAGRegistry([dag])).replay(recording, options: options)
            replays.append((ContinuousClock.now - clock).seconds)
            if !report.isIdentical { verdict = "diverged: \(report.divergence.map { "\($0.task) \($0.variable)" } ?? "")" }
            if let previous = last { previous.0.close() }
            last = (ledger, key)
        }
        guard let (ledger, key) = last else { throw ReplayError("no repetitions") }
        defer { ledger.close() }
        progress("loading the recording for the debugger")
        let clock = ContinuousClock.now
        let session = DebugSession(Timeline(try RecordedRun.load(key, from: ledger)))
        let load = (ContinuousClock.now - clock).seconds
        var rng = SplitMix64(seed: 42)
        var times: [Double] = []
        for _ in 0..<jumps {
            let target = Int(rng.next(below: UInt64(session.timeline.count)))
            let t = ContinuousClock.now
            _ = session.go(to: target)
            if let p = session.timeline.position(target) { _ = session.timeline.scope(at: p).map { $0.value?.text.count ?? 0 } }
            times.append((ContinuousClock.now - t).seconds * 1000)
        }
        times.sort()
        let original = LedgerBenchmark.median(originals)
        let replay = LedgerBenchmark.median(replays)
        return Result(
            steps: session.timeline.count, tasks: tasks, repetitions: repetitions, originalSeconds: original, replaySeconds: replay,
            replayRatio: replay / original, loadSeconds: load, stepJumpMillisP50: times[times.count / 2],
            stepJumpMillisP99: times[min(times.count - 1, times.count * 99 / 100)], jumps: jumps, verdict: verdict)
    }
}
