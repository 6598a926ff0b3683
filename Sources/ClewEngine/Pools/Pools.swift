import ClewCore
public import ClewLedger
public import ClewModel
import Foundation
import Synchronization

/// A pool: a named number of slots.
public struct Pool: Sendable, Codable, Hashable {
    public var name: String
    public var slots: Int
    public var description: String?
    public var setBy: String
    public var setAt: String
    public var seq: UInt64
}

/// One set or delete of a pool.
public struct PoolChange: Sendable, Codable, Hashable {
    public var seq: UInt64
    public var time: String
    public var action: String
    public var by: String
    public var slots: Int?
    public var reason: String?
}

/// One claim on a pool's slots, as the pool's stream tells it.
public struct PoolClaim: Sendable, Codable, Hashable {
    public var holder: String
    public var slots: Int
    public var priority: Int
    public var dag: String?
    public var run: String?
    public var task: String?
    public var attempt: Int?
    public var host: String?
    public var pid: Int?
    /// The seq of its `pool.waiting` (its place among equal priorities), or of its `pool.acquired`.
    public var since: UInt64
    public var sinceTime: String
}

/// Who holds a pool's slots and who waits for them, now.
public struct PoolOccupancy: Sendable, Codable, Hashable {
    public var pool: String
    /// nil when the pool is not set.
    public var slots: Int?
    public var holders: [PoolClaim]
    /// In the order they get slots: higher priority first, then who waited first.
    public var waiting: [PoolClaim]
    /// Claims that no longer count: their process is gone from this host, or their run ended.
    public var stale: [PoolClaim]
    public var used: Int { holders.reduce(0) { $0 + $1.slots } }
    /// The last seq of the pool's stream that was read.
    public var lastSeq: UInt64
}

/// Pools: named slot limits shared by every run, process and host of a ledger (docs/operations.md#pools).
///
/// A task that declares a pool takes `pool_slots` of it for each attempt: it records `pool.waiting`
/// (and `task.queued` in its run) when the slots are not free, and `pool.acquired` only if the pool's
/// stream has not changed since it read it (an append conditional on the stream), so no two processes
/// or hosts take the same slot. Waiting attempts get slots by priority weight, then in the order they
/// started waiting; one that does not fit lets a smaller one behind it go first. A claim whose process
/// is gone from this host, or whose run has ended, does not count, so a killed process frees its slots.
public final class PoolStore: Sendable {
    private let log: SettingsLog<Pool, PoolChange>
    let ledger: Ledger
    /// Claims this process makes, live while it holds them.
    let own = Mutex(Set<String>())
    static let host = ProcessInfo.processInfo.hostName

    public init(ledger: Ledger) {
        self.ledger = ledger
        log = SettingsLog(ledger: ledger, stream: StreamID.pools) { event, time in
            guard let c = try? JSONDecoder().decode(PoolChanged.self, from: event.payload) else { return nil }
            switch event.type {
            case EventType.poolSet:
                let pool = Pool(name: c.pool, slots: c.slots ?? 0, description: c.description, setBy: event.actor, setAt: time, seq: event.seq)
                return (c.pool, pool, PoolChange(seq: event.seq, time: time, action: "set", by: event.actor, slots: c.slots, reason: c.reason))
            case EventType.poolDeleted:
                return (c.pool, nil, PoolChange(seq: event.seq, time: time, action: "deleted", by: event.actor, reason: c.reason))
            default: return nil
            }
        }
    }

    public func list() throws -> [Pool] { try log.all().values.sorted { $0.name < $1.name } }
    public func get(_ name: String) throws -> Pool? { try log.get(name) }
    public func history(_ name: String) throws -> [PoolChange] { try log.history(name) }

    /// Sets a pool's size (1-100,000 slots). Fewer slots than are held take effect as holders finish.
    /// - Throws: ``VariableError`` naming what is wrong; nothing is recorded then.
    @discardableResult
    public func set(_ name: String, slots: Int, description: String? = nil, reason: String? = nil, by actor: String) async throws -> Pool {
        try VariableStore.check(key: name, what: "pool name")
        guard (1...100_000).contains(slots) else { throw VariableError("pool '\(name)': slots must be 1-100000, not \(slots)") }
        for (what, text) in [("description", description), ("reason", reason)] {
            if let text, text.utf8.count > 1_000 { throw VariableError("pool '\(name)': the \(what) has more than 1,000 bytes") }
        }
        try await log.append(type: EventType.poolSet, actor: actor, PoolChanged(pool: name, slots: slots, description: description, reason: reason))
        guard let pool = try get(name) else { throw VariableError(.internal, "pool '\(name)' was appended but not found") }
        return pool
    }

    /// Deletes a pool; attempts waiting for it fail, naming it.
    public func delete(_ name: String, reason: String? = nil, by actor: String) async throws {
        guard try get(name) != nil else { throw VariableError(.notFound, "no pool '\(name)' is set") }
        try await log.append(type: EventType.poolDeleted, actor: actor, PoolChanged(pool: name, reason: reason))
    }

    /// Who holds and who waits for `name`'s slots now, from its stream.
    public func occupancy(_ name: String) throws -> PoolOccupancy {
        let events = try ledger.events(inStream: StreamID.pool(name))
        return try occupancy(name, events: events, slots: get(name)?.slots)
    }

    func occupancy(_ name: String, events: [Event], slots: Int?) throws -> PoolOccupancy {
        var waiting: [String: PoolClaim] = [:]
        var holding: [String: PoolClaim] = [:]
        for e in events {
            guard let p = try? JSONDecoder().decode(PoolSlotEvent.self, from: e.payload) else { continue }
            let claim = PoolClaim(
                holder: p.holder, slots: p.slots ?? 1, priority: p.priority ?? 1, dag: p.dag, run: p.run, task: p.task, attempt: p.attempt,
                host: p.host, pid: p.pid, since: e.seq, sinceTime: ISO8601.string(micros: e.timestampMicros))
            switch e.type {
            case EventType.poolWaiting: waiting[p.holder] = claim
            case EventType.poolAcquired:
                holding[p.holder] = claim
                waiting[p.holder] = nil
            case EventType.poolReleased:
                holding[p.holder] = nil
                waiting[p.holder] = nil
            default: break
            }
        }
        var stale: [PoolClaim] = []
        var ended: [String: Bool] = [:]
        func live(_ c: PoolClaim) throws -> Bool {
            if own.withLock({ $0.contains(c.holder) }) { return true }
            if c.host == Self.host, let pid = c.pid {
                if pid == Int(getpid()) || !ChunkBook.isAlive(Int32(pid)) { return false }
            }
            guard let dag = c.dag, let run = c.run else { return true }
            let key = "\(dag)/\(run)"
            if ended[key] == nil {
                let stream = StreamID.run(dag: dag, run: run)
                let last = try ledger.seqs(inStream: stream).last.flatMap { try ledger.event(at: $0) }
                ended[key] = [EventType.runSucceeded, EventType.runFailed, EventType.runCancelled].contains(last?.type ?? "")
            }
            return !(ended[key] ?? false)
        }
        var holders: [PoolClaim] = []
        for c in holding.values.sorted(by: { $0.since < $1.since }) {
            if try live(c) { holders.append(c) } else { stale.append(c) }
        }
        var queue: [PoolClaim] = []
        for c in waiting.values {
            if try live(c) { queue.append(c) } else { stale.append(c) }
        }
        queue.sort(by: Self.precedes)
        return PoolOccupancy(pool: name, slots: slots, holders: holders, waiting: queue, stale: stale, lastSeq: events.last?.seq ?? 0)
    }

    /// Whether `a` gets slots before `b`: higher priority, then who waited first.
    static func precedes(_ a: PoolClaim, _ b: PoolClaim) -> Bool {
        a.priority != b.priority ? a.priority > b.priority : a.since < b.since
    }

    /// Whether `claim` may take its slots now: going down the queue in order (with `claim` in its place),
    /// each waiter that fits in what is free takes its slots; one that does not fit is passed over.
    static func mayAcquire(_ claim: PoolClaim, _ o: PoolOccupancy) -> Bool {
        guard let size = o.slots else { return false }
        var free = size - o.used
        var queue = o.waiting.filter { $0.holder != claim.holder }
        let place = queue.firstIndex { Self.precedes(claim, $0) } ?? queue.count
        queue.insert(claim, at: place)
        for w in queue where w.slots <= free {
            if w.holder == claim.holder { return true }
            free -= w.slots
        }
        return false
    }
}
