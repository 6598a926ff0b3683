import ClewCore
import ClewLedger
import ClewModel
import Foundation
import Logging
import Synchronization

/// Pool slots around each attempt of a task that declares a pool (``PoolStore``).
extension RunExecution {
    enum PoolGate {
        /// No pool (or a counterfactual replay, which takes none).
        case none
        case acquired(holder: String, pool: String)
        case failed(String)
        case cancelled
    }

    /// Waits until the attempt may take its slots, then takes them: `pool.waiting` and `task.queued`
    /// first when it must wait, `pool.acquired` only if the pool's stream is as it was read.
    func takePool(_ spec: TaskSpec, attempt: Int) async -> PoolGate {
        guard let name = spec.pool, branch == nil else { return .none }
        let pools = engine.pools
        let stream = StreamID.pool(name)
        let slots = max(1, spec.poolSlots ?? 1)
        var claim = PoolClaim(
            holder: "\(dag.name)/\(runID)/\(spec.id)#\(attempt)", slots: slots, priority: spec.priorityWeight ?? 1, dag: dag.name, run: runID,
            task: spec.id, attempt: attempt, host: PoolStore.host, pid: Int(getpid()), since: .max, sinceTime: "")
        func event(_ type: String, waited: Int64? = nil, reason: String? = nil) -> NewEvent {
            recorder.event(
                type, stream: stream,
                PoolSlotEvent(
                    pool: name, holder: claim.holder, slots: slots, priority: claim.priority, dag: dag.name, run: runID, task: spec.id, attempt: attempt,
                    host: claim.host, pid: claim.pid, waitedMillis: waited, reason: reason))
        }
        pools.own.withLock { _ = $0.insert(claim.holder) }
        let started = ContinuousClock.now
        var queued = false
        var wakeups = engine.ledger.changeSignals(every: .milliseconds(500)).makeAsyncIterator()
        func giveUp(_ gate: PoolGate, _ why: String) async -> PoolGate {
            if queued { try? await recorder.append([event(EventType.poolReleased, reason: why)], expecting: []) }
            pools.own.withLock { _ = $0.remove(claim.holder) }
            return gate
        }
        while true {
            if Task.isCancelled { return await giveUp(.cancelled, "cancelled while waiting") }
            do {
                _ = try await engine.ledger.pull()
                guard let pool = try pools.get(name) else {
                    return await giveUp(.failed("pool '\(name)' is not set (clew pools set \(name) --slots N)"), "the pool is not set")
                }
                guard slots <= pool.slots else {
                    return await giveUp(.failed("task \(spec.id) takes \(slots) slots of pool '\(name)', which has \(pool.slots)"), "the pool is too small")
                }
                var taken = false
                var detail = ""
                let range = try await recorder.append {
                    let events = try engine.ledger.events(inStream: stream)
                    let o = try pools.occupancy(name, events: events, slots: pool.slots)
                    let expect = [StreamExpectation(stream: stream, lastSeq: o.lastSeq)]
                    if PoolStore.mayAcquire(claim, o) {
                        taken = true
                        return ([event(EventType.poolAcquired, waited: queued ? (ContinuousClock.now - started).milliseconds : 0)], expect)
                    }
                    guard !queued else { return ([], []) }
                    detail = "pool \(name): \(o.used) of \(pool.slots) slots in use, \(o.waiting.count) waiting"
                    return ([event(EventType.poolWaiting), recorder.event(EventType.taskQueued, stream: self.stream, TaskEvent(task: spec.id, attempt: attempt, reason: detail))], expect)
                }
                if taken { return .acquired(holder: claim.holder, pool: name) }
                if !queued, !range.isEmpty {
                    queued = true
                    claim.since = range.lowerBound
                }
            } catch let error as LedgerError where error.code == .conflict && error.stream == stream {
                continue  // another claim came first: read the pool again
            } catch {
                return await giveUp(.failed("could not take a slot of pool '\(name)': \(error)"), "error")
            }
            _ = await wakeups.next()
        }
    }

    /// Gives the slots back (durable before it returns, so a waiter elsewhere can take them).
    func releasePool(_ gate: PoolGate, reason: String) async {
        guard case .acquired(let holder, let name) = gate else { return }
        let release = recorder.event(EventType.poolReleased, stream: StreamID.pool(name), PoolSlotEvent(pool: name, holder: holder, reason: reason))
        do { try await recorder.append([release], expecting: []) } catch {
            engine.options.logger.error("could not release a pool slot", metadata: ["pool": "\(name)", "holder": "\(holder)", "why": "\(error)"])
        }
        engine.pools.own.withLock { _ = $0.remove(holder) }
    }

    /// Releases what an earlier execution of this run still holds or waits for in its pools (a resubmit).
    func releasePools(reason: String) async throws {
        for name in Set(tasks.compactMap(\.pool)) {
            let o = try engine.pools.occupancy(name)
            for c in o.holders + o.waiting where c.run == runID && c.dag == dag.name {
                recorder.emit(EventType.poolReleased, stream: StreamID.pool(name), PoolSlotEvent(pool: name, holder: c.holder, reason: reason))
            }
        }
    }
}
