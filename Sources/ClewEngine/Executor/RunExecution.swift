import ClewCore
import ClewLedger
import ClewModel
import Foundation
import Logging
import Synchronization

/// One run of one DAG: the scheduling loop (structured concurrency up to the concurrency limit), attempts
/// with retries, timeouts and backoff, failure propagation, chunks and the five questions.
///
/// A *branch* run (a counterfactual replay) runs the same way but reads what its original read: the chunks
/// it was admitted, its recorded time and side-effect results, its random seeds; it asks no questions,
/// takes no leases and publishes no chunks.
package final class RunExecution: Sendable {
    let engine: Engine
    let dag: DAG
    let runID: String
    let stream: String
    let params: [String: String]
    let partition: Partition?
    let tasks: [TaskSpec]
    let index: [String: Int]
    let children: [[Int]]
    let parents: [[Int]]
    let branch: BranchFeed?
    var recorder: Recorder { engine.recorder }

    package init(engine: Engine, dag: DAG, runID: String, params: [String: String], partition: Partition?, branch: BranchFeed? = nil) {
        self.branch = branch
        self.engine = engine
        self.dag = dag
        self.runID = runID
        self.stream = StreamID.run(dag: dag.name, run: runID)
        self.params = params
        self.partition = partition
        self.tasks = dag.spec.tasks
        let index = Dictionary(dag.spec.tasks.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.index = index
        var children = Array(repeating: [Int](), count: dag.spec.tasks.count)
        var parents = Array(repeating: [Int](), count: dag.spec.tasks.count)
        for (i, t) in dag.spec.tasks.enumerated() {
            for p in t.upstream {
                if let pi = index[p] {
                    children[pi].append(i)
                    parents[i].append(pi)
                }
            }
        }
        self.children = children
        self.parents = parents
    }

    func emit<P: EventPayload>(_ type: String, _ payload: P) {
        recorder.emit(type, stream: stream, payload)
    }

    // MARK: - The scheduling loop

    /// What one task's attempts ended with.
    struct TaskResult: Sendable {
        var state: TaskState
        var output: RecordedValue?
        var chosen: [String]?
        var error: String?
    }

    func execute(resume: ResumeState?) async throws -> RunOutcome {
        let limit = max(1, engine.options.concurrency ?? dag.spec.maxActiveTasks)
        var started = RunStarted(dag: dag.name, run: runID, pid: Int(getpid()), host: ChunkBook.host, maxActiveTasks: limit)
        RunEnvironment.current.describe(&started)
        emit(EventType.runStarted, started)
        try await recorder.flush()
        // Wakes at each SLA deadline to record what missed it (a counterfactual replay has no SLA).
        let slaWatch: Task<Void, Never>? = SLA.has(dag.spec) && branch == nil ? Task { await self.watchSLA() } : nil
        defer { slaWatch?.cancel() }

        let n = tasks.count
        var states = Array(repeating: TaskState.pending, count: n)
        var outputs: [Int: RecordedValue] = [:]
        var chosen: [Int: [String]] = [:]
        var errors: [String: String] = [:]
        var firstAttempt = Array(repeating: 1, count: n)
        if let resume {
            for (id, output) in resume.outputs { if let i = index[id] { outputs[i] = output } }
            for (id, c) in resume.chosen { if let i = index[id] { chosen[i] = c } }
            for (id, a) in resume.lastAttempt { if let i = index[id] { firstAttempt[i] = a + 1 } }
            for id in resume.succeeded { if let i = index[id] { states[i] = .succeeded } }
        }
        var remaining = (0..<n).map { i in parents[i].filter { !states[$0].isTerminal }.count }
        var queue: [Int] = []
        var head = 0
        var order = 0

        // Decides a task whose parents have all ended, propagating skips and failures without recursion.
        func settle(_ start: [Int]) {
            var work = start
            while let c = work.popLast() {
                guard states[c] == .pending else { continue }
                switch decide(c, states: states, chosen: chosen) {
                case .run:
                    queue.append(c)
                case .skip(let reason):
                    states[c] = .skipped
                    emit(EventType.taskSkipped, TaskEvent(task: tasks[c].id, reason: reason))
                    work.append(contentsOf: release(c))
                case .upstreamFailed(let failed):
                    states[c] = .upstreamFailed
                    emit(EventType.taskUpstreamFailed, TaskEvent(task: tasks[c].id, upstream: failed))
                    work.append(contentsOf: release(c))
                }
            }
        }
        func release(_ i: Int) -> [Int] {
            var ready: [Int] = []
            for c in children[i] {
                remaining[c] -= 1
                if remaining[c] == 0 { ready.append(c) }
            }
            return ready.reversed()
        }

        settle((0..<n).filter { states[$0] == .pending && remaining[$0] == 0 }.reversed())
        var cancelled = false
        await withTaskGroup(of: (Int, TaskResult).self) { group in
            var running = 0
            func launch() {
                while running < limit, head < queue.count, !cancelled {
                    let i = queue[head]
                    head += 1
                    order += 1
                    let inputs = Dictionary(
                        parents[i].compactMap { p in outputs[p].map { (tasks[p].id, $0) } }, uniquingKeysWith: { a, _ in a })
                    emit(EventType.taskScheduled, TaskEvent(task: tasks[i].id, attempt: firstAttempt[i], order: order, slot: running + 1))
                    let attempt = firstAttempt[i]
                    group.addTask { (i, await self.runTask(i, firstAttempt: attempt, inputs: inputs)) }
                    running += 1
                }
            }
            launch()
            while let (i, result) = await group.next() {
                running -= 1
                states[i] = result.state
                if let o = result.output { outputs[i] = o }
                if let c = result.chosen { chosen[i] = c }
                if let e = result.error { errors[tasks[i].id] = e }
                if Task.isCancelled || result.state == .cancelled { cancelled = true }
                if cancelled { continue }  // what has not started stays not run (listed in run.cancelled)
                settle(release(i))
                launch()
            }
        }
        if Task.isCancelled { cancelled = true }

        let notRun = (0..<n).filter { states[$0] == .pending }.map { tasks[$0].id }
        let failed = (0..<n).filter { states[$0].isFailure }.map { tasks[$0].id }
        let status: RunOutcome.Status = cancelled || (!notRun.isEmpty && failed.isEmpty) ? .cancelled : failed.isEmpty ? .succeeded : .failed
        let counts = Dictionary(grouping: states, by: \.rawValue).mapValues(\.count)
        let end = RunEnded(run: runID, tasks: counts, failedTasks: failed.isEmpty ? nil : failed, notRun: notRun.isEmpty ? nil : notRun)
        emit(status == .succeeded ? EventType.runSucceeded : status == .failed ? EventType.runFailed : EventType.runCancelled, end)
        try await recorder.flush()
        if let slaWatch {
            slaWatch.cancel()
            // What ended late after the last deadline the watch woke for.
            do { try await SLA.record(engine, spec: dag.spec, run: runID, seenBy: "run") } catch {
                engine.options.logger.warning("could not check the SLAs of the run", metadata: ["run": "\(runID)", "why": "\(error)"])
            }
        }
        var outcome = RunOutcome(dag: dag.name, runID: runID, stream: stream, status: status, tasks: [:], outputs: [:], errors: errors)
        for i in 0..<n {
            outcome.tasks[tasks[i].id] = states[i] == .pending ? .cancelled : states[i]
            if let o = outputs[i] { outcome.outputs[tasks[i].id] = o }
        }
        return outcome
    }

    /// Sleeps until each SLA deadline of the run (counted from its first start) and records what missed it.
    func watchSLA() async {
        let first = try? engine.ledger.events(inStream: stream).first { $0.type == EventType.runStarted }
        guard let start = first?.timestampMicros else { return }
        for deadline in SLA.deadlines(dag.spec, start: start) {
            let wait = deadline - Recorder.nowMicros()
            if wait > 0 {
                do { try await Task.sleep(for: .microseconds(wait + 1_000)) } catch { return }
            }
            if Task.isCancelled { return }
            do { try await SLA.record(engine, spec: dag.spec, run: runID, seenBy: "run") } catch {
                engine.options.logger.warning("could not record an SLA miss", metadata: ["run": "\(runID)", "why": "\(error)"])
            }
        }
    }

    enum Decision { case run, skip(String), upstreamFailed([String]) }

    func decide(_ c: Int, states: [TaskState], chosen: [Int: [String]]) -> Decision {
        let id = tasks[c].id
        var failed: [String] = []
        var skipped: [String] = []
        var succeeded = 0
        for p in parents[c] {
            switch states[p] {
            case .succeeded:
                if let choice = chosen[p], tasks[p].kind == .branch || tasks[p].command?.isBranch == true, !choice.contains(id) {
                    skipped.append("\(tasks[p].id) (branch chose \(choice.isEmpty ? "nothing" : choice.joined(separator: ",")))")
                } else {
                    succeeded += 1
                }
            case .skipped: skipped.append(tasks[p].id)
            default: failed.append(tasks[p].id)
            }
        }
        switch tasks[c].rule {
        case .allSuccess:
            if !failed.isEmpty { return .upstreamFailed(failed) }
            if !skipped.isEmpty { return .skip("upstream skipped: \(skipped.joined(separator: ", "))") }
            return .run
        case .noneFailed:
            if !failed.isEmpty { return .upstreamFailed(failed) }
            if succeeded == 0 && !parents[c].isEmpty { return .skip("every upstream task was skipped") }
            return .run
        case .oneSuccess:
            if succeeded > 0 || parents[c].isEmpty { return .run }
            if !failed.isEmpty { return .upstreamFailed(failed) }
            return .skip("no upstream task succeeded")
        case .allDone:
            return .run
        }
    }

    // MARK: - Attempts

    enum AttemptResult {
        case succeeded(RecordedValue?, chosen: [String]?)
        case failed(String)
        case blocked(String)
        case skipped(String)
        case cancelled
        /// The worker running it lost its lease (died, or was cut off): queued again as a new attempt.
        case lost(String)
    }
}
