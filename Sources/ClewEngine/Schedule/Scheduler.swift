import ClewCore
import ClewLedger
public import ClewModel
import Foundation
import Logging

/// Runs scheduled DAGs: one run per partition (interval between firings), catch-up of missed partitions,
/// and backfills of a date range. A partition counts as done once a `scheduled__`/`backfill__` run exists
/// for it, so a restarted scheduler neither repeats nor skips partitions.
public final class Scheduler: Sendable {
    public let engine: Engine
    /// The DAGs it schedules (nil: every scheduled DAG in the engine's registry).
    public let only: Set<String>?

    public init(engine: Engine, only: Set<String>? = nil) {
        self.engine = engine
        self.only = only
    }

    /// The scheduled DAGs this scheduler runs.
    public var scheduledDAGs: [DAG] {
        engine.registry.all.filter { $0.spec.schedule != nil && (only?.contains($0.name) ?? true) }
    }

    /// Partitions of `dag` that are due at `now` and have no scheduled or backfill run yet.
    public func duePartitions(of dag: DAG, now: Int64) throws -> [Partition] {
        guard let schedule = dag.spec.schedule else { return [] }
        let done = try donePartitions(dag.name)
        let start = dag.spec.startMicros ?? (schedule.latestPartition(endingBy: now, notBefore: now - 400 * 86_400_000_000)?.start ?? now)
        let all = schedule.partitions(from: start, endingBy: now).map { Partition(start: $0.start, end: $0.end) }
        let pending = all.filter { !done.contains($0.key) }
        if dag.spec.catchup { return pending }
        guard let latest = all.last, !done.contains(latest.key) else { return [] }
        return [latest]
    }

    /// Runs every due partition of every scheduled DAG, oldest first; returns the outcomes.
    public func tick(now: Int64) async throws -> [RunOutcome] {
        var outcomes: [RunOutcome] = []
        for dag in scheduledDAGs {
            for partition in try duePartitions(of: dag, now: now) {
                if Task.isCancelled { return outcomes }
                do {
                    outcomes.append(try await engine.run(dag, partition: partition, trigger: "scheduled"))
                } catch let error as EngineError where error.category == .conflict {
                    // Another scheduler (another process or host) created this partition's run first.
                    engine.options.logger.info("partition taken by another scheduler", metadata: ["dag": "\(dag.name)", "partition": "\(partition.key)", "why": "\(error)"])
                }
            }
        }
        return outcomes
    }

    /// Runs due DAGs until the task is cancelled, sleeping until the next firing (at most `poll`).
    /// Each round first finishes scheduled runs left unfinished by another scheduler
    /// (``resumeInterrupted(onRun:onProblem:)``): call it only in the process that leads.
    /// Each round also records the SLA misses of unfinished runs whose process stopped or runs on another
    /// host (``SLA/checkUnfinished(_:dags:)``), and tells `onMiss` of each.
    public func run(
        poll: Duration = .seconds(30), onRun: @Sendable (RunOutcome) -> Void = { _ in }, onProblem: @Sendable (String) -> Void = { _ in },
        onMiss: @Sendable (SLAMissed) -> Void = { _ in }
    ) async throws {
        var told = Set<String>()
        while !Task.isCancelled {
            // A run this process left is never unfinished here: each round's runs end within it.
            var problems: [String] = []
            _ = try await resumeInterrupted(onRun: onRun) { problems.append($0) }
            for p in problems where told.insert(p).inserted { onProblem(p) }
            do {
                for miss in try await checkSLAs() { onMiss(miss) }
            } catch {
                onProblem("could not check SLAs: \(error)")
            }

            for outcome in try await tick(now: Recorder.nowMicros()) { onRun(outcome) }
            let now = Recorder.nowMicros()
            let next = scheduledDAGs.compactMap { $0.spec.schedule?.next(after: now) }.min()
            var wait = poll
            if let next { wait = min(poll, .microseconds(max(next - now, 0) + 1000)) }
            do { try await Task.sleep(for: wait) } catch { return }
        }
    }

    /// Records the SLA misses of the unfinished runs of this scheduler's DAGs (scheduled or not) that
    /// their own process did not: it stopped, or it is on another host and has not yet.
    public func checkSLAs() async throws -> [SLAMissed] {
        try await SLA.checkUnfinished(engine, dags: engine.registry.all.filter { only?.contains($0.name) ?? true })
    }

    /// Finishes the scheduled runs a scheduler left unfinished when it stopped (killed, cut off, lost
    /// the lead, or stopped with Ctrl-C): runs of a scheduled partition with no end, or cancelled, are
    /// resubmitted (succeeded tasks kept, the rest run again), oldest first. A leader calls it when it
    /// takes the lead, so a partition whose run was cut short still ends up done, once.
    /// - Parameter onProblem: told of a run that could not be resumed (it is left as it is).
    public func resumeInterrupted(
        onRun: (RunOutcome) -> Void = { _ in }, onProblem: (String) -> Void = { _ in }
    ) async throws -> [RunOutcome] {
        var outcomes: [RunOutcome] = []
        let ends: Set<String> = [EventType.runSucceeded, EventType.runFailed]
        _ = try await engine.ledger.pull()  // what the previous leader recorded last, over a shared log
        for dag in scheduledDAGs {
            let base = StreamID.run(dag: dag.name, run: "")
            var unfinished: [(UInt64, String)] = []
            for (stream, _) in try engine.ledger.streams(prefix: base + "scheduled__") {
                let seqs = try engine.ledger.seqs(inStream: stream)
                guard let last = seqs.last, let event = try engine.ledger.event(at: last), !ends.contains(event.type) else { continue }
                unfinished.append((seqs.first ?? last, String(stream.dropFirst(base.count))))
            }
            for (_, run) in unfinished.sorted(by: { $0.0 < $1.0 }) {
                if Task.isCancelled { return outcomes }
                do {
                    let outcome = try await engine.resubmit(dag: dag.name, run: run)
                    onRun(outcome)
                    outcomes.append(outcome)
                } catch let error as EngineError {
                    onProblem("could not resume run \(run) of \(dag.name): \(error)")
                }
            }
        }
        return outcomes
    }

    /// Runs `dag` for every partition starting in [from, to), in order, whether or not it ran before.
    /// - Throws: ``EngineError`` when the DAG has no schedule (partitions come from it) or the range is empty.
    public func backfill(_ dag: DAG, from: Int64, to: Int64, params: [String: String] = [:], onRun: @Sendable (RunOutcome) -> Void = { _ in }) async throws -> [RunOutcome] {
        guard let schedule = dag.spec.schedule else {
            throw EngineError("DAG \(dag.name) has no schedule, so it has no partitions to backfill; give it one (e.g. schedule: \"@daily\")")
        }
        guard from < to else { throw EngineError("backfill range is empty: --from must be before --to") }
        var partitions: [Partition] = []
        var s = schedule.next(after: from - 1)
        while let start = s, start < to, let end = schedule.next(after: start) {
            partitions.append(Partition(start: start, end: end))
            if partitions.count > 10_000 { throw EngineError("backfill would create more than 10,000 runs; narrow the range") }
            s = end
        }
        guard !partitions.isEmpty else { throw EngineError("no partition of \(dag.name) (\(schedule.description)) starts in the range") }
        var outcomes: [RunOutcome] = []
        for partition in partitions {
            if Task.isCancelled { break }
            let outcome = try await engine.run(dag, params: params, partition: partition, trigger: "backfill")
            onRun(outcome)
            outcomes.append(outcome)
        }
        return outcomes
    }

    func donePartitions(_ dag: String) throws -> Set<String> {
        var done = Set<String>()
        for prefix in ["scheduled__", "backfill__"] {
            let base = StreamID.run(dag: dag, run: prefix)
            for (stream, _) in try engine.ledger.streams(prefix: base) {
                var key = String(stream.dropFirst(base.count))
                if let dot = key.lastIndex(of: "."), key[key.index(after: dot)...].allSatisfy(\.isNumber) { key = String(key[..<dot]) }
                done.insert(key)
            }
        }
        return done
    }
}
