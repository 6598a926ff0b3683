import ClewCore
public import ClewLedger
public import ClewModel
import Foundation

/// Task actions, as in Airflow's task instance menu: clear (run it again with every task after it), mark
/// success, mark failed. Each is an event in the run's stream with who and why (docs/operations.md#task-actions).
extension Engine {
    /// The state a task is set to by hand.
    public enum TaskMark: String, Sendable, CaseIterable {
        case success, failed
    }

    /// What a task action needs: the run's events, its DAG, and that it is not running now.
    /// - Throws: ``EngineError`` `.notFound` (no such run or task), `.conflict` (the run is running).
    func actionTarget(dag name: String, run: String, task: String, reason: String?) throws -> (events: [Event], tasks: [String]) {
        let stream = StreamID.run(dag: name, run: run)
        let events = try ledger.events(inStream: stream)
        guard !events.isEmpty else { throw EngineError(.notFound, "no run \(run) of DAG \(name) in the ledger") }
        var tasks = registry.dag(named: name)?.spec.tasks.map(\.id) ?? []
        if tasks.isEmpty, let r = events.first(where: { $0.type == EventType.runQueued }),
            let version = (try? JSONDecoder().decode(RunQueued.self, from: r.payload))?.dagVersion
        {
            let registered = try ledger.events(inStream: StreamID.dag(name)).compactMap { try? JSONDecoder().decode(DAGRegistered.self, from: $0.payload) }
            tasks = registered.first { $0.version == version }?.tasks ?? []
        }
        guard tasks.contains(task) else {
            throw EngineError(.notFound, "DAG \(name) has no task \(task) (tasks: \(tasks.joined(separator: ", ")))")
        }
        if let reason, reason.utf8.count > 1_000 { throw EngineError(.invalidInput, "the reason has more than 1,000 bytes") }
        let ends: Set<String> = [EventType.runSucceeded, EventType.runFailed, EventType.runCancelled]
        let lastStart = events.lastIndex { $0.type == EventType.runStarted }
        let ended = events.last { ends.contains($0.type) || $0.type == EventType.runStarted }.map { ends.contains($0.type) } ?? true
        if !ended, let i = lastStart, let s = try? JSONDecoder().decode(RunStarted.self, from: events[i].payload),
            let pid = s.pid.map(Int32.init), s.host == ChunkBook.host, ChunkBook.isAlive(pid)
        {
            throw EngineError(.conflict, "run \(run) of DAG \(name) is running (process \(pid)); wait for it to end or cancel it first")
        }
        return (events, tasks)
    }

    /// Sets a task's state by hand: `task.marked_success` or `task.marked_failed` in the run's stream. A
    /// resubmit then keeps a task marked success (with no output) and runs one marked failed again.
    /// - Returns: the event's seq.
    /// - Throws: ``EngineError``: no such run or task, the run is running, or the task is already in that state.
    @discardableResult
    public func mark(dag: String, run: String, task: String, as mark: TaskMark, reason: String?, by actor: String) async throws -> UInt64 {
        let (events, _) = try actionTarget(dag: dag, run: run, task: task, reason: reason)
        var state = "not run"
        var attempt: Int?
        for e in events where e.type.hasPrefix("task.") {
            guard let t = try? JSONDecoder().decode(TaskEvent.self, from: e.payload), t.task == task else { continue }
            attempt = t.attempt ?? attempt
            switch e.type {
            case EventType.taskSucceeded, EventType.taskMarkedSuccess: state = "succeeded"
            case EventType.taskFailed, EventType.taskMarkedFailed, EventType.taskUpstreamFailed, EventType.taskBlocked: state = "failed"
            case EventType.taskCleared: state = "cleared"
            default: break
            }
        }
        let target = mark == .success ? "succeeded" : "failed"
        if state == target { throw EngineError(.conflict, "task \(task) of run \(run) is already \(target)") }
        var event = TaskEvent(task: task, attempt: attempt, reason: "marked \(target) by \(actor)\(reason.map { ": \($0)" } ?? "")")
        event.by = actor
        let type = mark == .success ? EventType.taskMarkedSuccess : EventType.taskMarkedFailed
        let stream = StreamID.run(dag: dag, run: run)
        let range = try await recorder.append(
            [NewEvent(type: type, stream: stream, actor: actor, timestampMicros: Recorder.nowMicros(), payload: event.payloadData)],
            expecting: [StreamExpectation(stream: stream, lastSeq: events.last?.seq ?? 0)])
        return range.lowerBound
    }

    /// Records `task.cleared` (the task and every task after it, with who and why) and returns the tasks
    /// to run again; ``resubmit(dag:run:params:rerun:)`` with them runs them.
    /// - Throws: ``EngineError``: no such run or task, or the run is running.
    public func recordClear(dag name: String, run: String, task: String, reason: String?, by actor: String) async throws -> [String] {
        let (events, tasks) = try actionTarget(dag: name, run: run, task: task, reason: reason)
        var again: Set<String> = [task]
        if let spec = registry.dag(named: name)?.spec {
            var grew = true
            while grew {
                grew = false
                for t in spec.tasks where !again.contains(t.id) && t.upstream.contains(where: again.contains) {
                    again.insert(t.id)
                    grew = true
                }
            }
        }
        let cleared = tasks.filter(again.contains)
        var event = TaskEvent(task: task, reason: "cleared by \(actor)\(reason.map { ": \($0)" } ?? "")")
        event.cleared = cleared
        event.by = actor
        let stream = StreamID.run(dag: name, run: run)
        _ = try await recorder.append(
            [NewEvent(type: EventType.taskCleared, stream: stream, actor: actor, timestampMicros: Recorder.nowMicros(), payload: event.payloadData)],
            expecting: [StreamExpectation(stream: stream, lastSeq: events.last?.seq ?? 0)])
        return cleared
    }

    /// Clears a task and runs it again with every task after it (a resubmit of the run), now.
    public func clear(dag name: String, run: String, task: String, reason: String?, by actor: String, params: [String: String] = [:]) async throws -> RunOutcome {
        let cleared = try await recordClear(dag: name, run: run, task: task, reason: reason, by: actor)
        return try await resubmit(dag: name, run: run, params: params, rerun: Set(cleared))
    }
}
