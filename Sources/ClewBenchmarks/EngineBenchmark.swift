public import ClewEngine
import ClewLedger
import ClewModel
public import Foundation

/// `clew bench engine`: how fast the engine runs a DAG of trivial tasks, against the ledger's own batched
/// append rate for the same number of events, measured in the same run.
public enum EngineBenchmark {
    public struct Result: Codable, Sendable {
        public var tasks: Int
        public var concurrency: Int
        public var repetitions: Int
        public var tasksPerSecond: Double
        public var eventsPerTask: Double
        public var appendEventsPerSecond: Double
        public var engineRatio: Double
        public var runSeconds: Double

        enum CodingKeys: String, CodingKey {
            case tasks, concurrency, repetitions, tasksPerSecond = "tasks_per_s", eventsPerTask = "events_per_task"
            case appendEventsPerSecond = "ledger_append_eps", engineRatio = "engine_ratio", runSeconds = "run_seconds_median"
        }
    }

    /// A DAG of `tasks` trivial tasks: `width` independent chains.
    public static func dag(tasks: Int, width: Int = 100) -> DAG {
        let perChain = max(1, tasks / width)
        return DAG("bench_trivial", maxActiveTasks: 16) {
            for i in 0..<tasks {
                let chainPosition = i % perChain
                if chainPosition == 0 {
                    Op("t\(i)") { _ in }
                } else {
                    Op("t\(i)", after: "t\(i - 1)") { _ in }
                }
            }
        }
    }

    /// Runs the benchmark in `directory` (created and removed).
    public static func run(
        tasks: Int, concurrency: Int, repetitions: Int, in directory: URL, progress: (String) -> Void = { _ in }
    ) async throws -> Result {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let dag = dag(tasks: tasks)
        var runSeconds: [Double] = []
        var appendRates: [Double] = []
        var eventsPerTask = 0.0
        for r in 0..<repetitions {
            progress("engine run \(r + 1)/\(repetitions)")
            let engineDir = directory.appendingPathComponent("engine-\(r)")
            let ledger = try Ledger.create(at: engineDir)
            var options = Engine.Options(dataDirectory: directory.appendingPathComponent("data-\(r)"))
            options.concurrency = concurrency
            let engine = Engine(ledger: ledger, registry: DAGRegistry([dag]), options: options)
            try await engine.register(dag)
            let before = try ledger.lastSeq
            let clock = ContinuousClock.now
            let outcome = try await engine.run(dag)
            let elapsed = ContinuousClock.now - clock
            guard outcome.status == .succeeded else { throw EngineError("benchmark run failed: \(outcome.errors.first?.value ?? "?")") }
            let events = try ledger.events(before + 1...ledger.lastSeq)
            eventsPerTask = Double(events.count) / Double(tasks)
            runSeconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            ledger.close()

            // The physical limit for the same bytes: the ledger's batched append of the very same events.
            progress("ledger append \(r + 1)/\(repetitions)")
            let raw = try Ledger.create(at: directory.appendingPathComponent("append-\(r)"))
            let drafts = events.map(\.draft)
            let appendClock = ContinuousClock.now
            var i = 0
            while i < drafts.count {
                try await raw.append(contentsOf: Array(drafts[i..<min(i + 1000, drafts.count)]))
                i += 1000
            }
            let appendElapsed = ContinuousClock.now - appendClock
            appendRates.append(Double(drafts.count) / (Double(appendElapsed.components.seconds) + Double(appendElapsed.components.attoseconds) / 1e18))
            raw.close()
        }
        let median = LedgerBenchmark.median
        let seconds = median(runSeconds)
        let tps = Double(tasks) / seconds
        let eps = median(appendRates)
        return Result(
            tasks: tasks, concurrency: concurrency, repetitions: repetitions, tasksPerSecond: tps, eventsPerTask: eventsPerTask,
            appendEventsPerSecond: eps, engineRatio: tps * eventsPerTask / eps, runSeconds: seconds)
    }
}
