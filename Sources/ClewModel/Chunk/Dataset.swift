public import Foundation

/// A dataset and how it is split into chunks.
public struct DatasetSpec: Sendable, Hashable, Codable {
    public enum Partitioning: Sendable, Hashable, Codable {
        /// Chunks are time windows of `seconds`, keyed by their UTC start (`2026-11-21T10:00:00Z`).
        case time(seconds: Int64)
        /// Chunks are numbered 1, 2, 3 … with no gaps.
        case sequence
        /// Chunks are named by free-form keys (shards, categories).
        case key
    }

    public var name: String
    public var partitioning: Partitioning
    /// Whether a chunk must carry passing expectations to count as validated.
    public var requiresValidation: Bool

    public init(name: String, partitioning: Partitioning = .key, requiresValidation: Bool = false) {
        self.name = name
        self.partitioning = partitioning
        self.requiresValidation = requiresValidation
    }
}

/// What the payload of a `chunk.status_changed` event carries (docs/event-schema.md).
public struct ChunkChange: Sendable, Hashable, Codable {
    public var dataset: String
    public var chunk: String
    public var from: ChunkStatus?
    public var to: ChunkStatus
    /// The DAG of `run` (run ids are unique only within a DAG). Absent in ledgers written before it was added.
    public var dag: String?
    public var run: String?
    public var task: String?
    public var attempt: Int?
    /// The producing run's partition, to check a consumer reads the partition it expects.
    public var partition: String?
    /// Where the chunk's bytes are: an absolute path, or `value:<digest>` for a chunk held as a value.
    public var location: String?
    /// SHA-256 of the bytes at `location` (a file's bytes; for a directory, of its sorted listing of digests).
    public var digest: String?
    public var bytes: Int64?
    /// Whether expectations evaluated on the chunk passed (nil: none were evaluated).
    public var validated: Bool?
    public var expectations: [String]?
    public var reason: String?

    public init(dataset: String, chunk: String, from: ChunkStatus?, to: ChunkStatus) {
        self.dataset = dataset
        self.chunk = chunk
        self.from = from
        self.to = to
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dataset, chunk, from, to, dag, run, task, attempt, partition, location, digest, bytes, validated, expectations, reason
    }
}

extension ChunkChange {
    /// The `chunk.status_changed` payload: what `JSON.canonical(self)` gives (keys sorted, absent fields
    /// left out), written directly: the encoder took a twentieth of OpenLineage ingest in a profile.
    public var canonicalJSON: Data {
        var members: [(String, JSON.Value)] = []
        if let attempt { members.append(("attempt", .int(Int64(attempt)))) }
        if let bytes { members.append(("bytes", .int(bytes))) }
        members.append(("chunk", .string(chunk)))
        if let dag { members.append(("dag", .string(dag))) }
        members.append(("dataset", .string(dataset)))
        if let digest { members.append(("digest", .string(digest))) }
        if let expectations { members.append(("expectations", .array(expectations.map { .string($0) }))) }
        if let from { members.append(("from", .string(from.rawValue))) }
        if let location { members.append(("location", .string(location))) }
        if let partition { members.append(("partition", .string(partition))) }
        if let reason { members.append(("reason", .string(reason))) }
        if let run { members.append(("run", .string(run))) }
        if let task { members.append(("task", .string(task))) }
        members.append(("to", .string(to.rawValue)))
        if let validated { members.append(("validated", .bool(validated))) }
        return JSON.Value.object(members).data
    }
}

/// A reader lease on a chunk (`chunk.lease_acquired` / `chunk.lease_released`).
public struct ChunkLease: Sendable, Hashable, Codable {
    public var dataset: String
    public var chunk: String
    public var lease: String
    /// The DAG of `run`; absent in ledgers written before it was added.
    public var dag: String?
    public var run: String
    public var task: String
    public var pid: Int32
    public var host: String

    public init(dataset: String, chunk: String, lease: String, run: String, task: String, pid: Int32, host: String) {
        self.dataset = dataset
        self.chunk = chunk
        self.lease = lease
        self.run = run
        self.task = task
        self.pid = pid
        self.host = host
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dataset, chunk, lease, dag, run, task, pid, host
    }
}

/// One chunk as its events leave it.
public struct ChunkState: Sendable, Hashable {
    public var key: String
    public var status: ChunkStatus
    /// Seq of the event that set the status.
    public var since: UInt64
    /// The last change that carried production facts (location, digest, validation).
    public var produced: ChunkChange?
    public var leases: [String: ChunkLease] = [:]
    /// Transitions the life cycle does not allow, with their seqs (the engine never writes them).
    public var anomalies: [String] = []
}

extension ChunkStatus {
    /// Statuses a change may come from, for each target status (nil: the chunk is new).
    public func canBecome(_ next: ChunkStatus) -> Bool {
        switch (self, next) {
        case (.pending, .producing), (.pending, .failed): return true
        case (.producing, .ready), (.producing, .failed), (.producing, .invalid): return true
        case (.ready, .consuming), (.consumed, .consuming), (.consuming, .consuming): return true
        case (.consuming, .consumed), (.consuming, .ready): return true
        case (.failed, .resubmitted), (.invalid, .resubmitted), (.producing, .resubmitted): return true
        case (.resubmitted, .producing), (.failed, .producing), (.invalid, .producing): return true
        case (.ready, .producing), (.consumed, .producing): return true  // re-produced by a later run
        case (.ready, .invalid), (.consumed, .invalid): return true  // found bad later
        default: return false
        }
    }

    /// Whether a change from this status to `next` breaks the life cycle: a status repeated is fine (a
    /// change that only adds facts), except `consuming`, which counts readers and must be allowed.
    public func isAnomalous(_ next: ChunkStatus) -> Bool {
        (self != next || next == .consuming) && !canBecome(next)
    }

    /// Whether a consumer may read the chunk in this status.
    public var isReadable: Bool { self == .ready || self == .consuming || self == .consumed }
}

/// The chunks of one dataset, folded from its stream (`dataset/<name>`): a pure function of the events.
public struct DatasetState: Sendable {
    public let name: String
    public private(set) var chunks: [String: ChunkState] = [:]
    /// Seq of the last event folded.
    public private(set) var lastSeq: UInt64 = 0

    public init(name: String) { self.name = name }

    /// Folds one event of the dataset's stream; events of other types are ignored.
    public mutating func apply(seq: UInt64, type: String, payload: Data) {
        lastSeq = max(lastSeq, seq)
        let decoder = JSONDecoder()
        switch type {
        case EventType.chunkStatusChanged:
            guard let change = try? decoder.decode(ChunkChange.self, from: payload) else { return }
            var state = chunks[change.chunk] ?? ChunkState(key: change.chunk, status: .pending, since: seq)
            if chunks[change.chunk] != nil, state.status.isAnomalous(change.to) {
                state.anomalies.append("seq \(seq): \(state.status.rawValue) -> \(change.to.rawValue)")
            }
            state.status = change.to
            state.since = seq
            if change.location != nil || change.validated != nil || change.to == .producing {
                state.produced = change
            }
            chunks[change.chunk] = state
        case EventType.chunkLeaseAcquired:
            guard let lease = try? decoder.decode(ChunkLease.self, from: payload) else { return }
            chunks[lease.chunk, default: ChunkState(key: lease.chunk, status: .pending, since: seq)].leases[lease.lease] = lease
        case EventType.chunkLeaseReleased:
            guard let lease = try? decoder.decode(ChunkLease.self, from: payload) else { return }
            chunks[lease.chunk]?.leases[lease.lease] = nil
        default:
            break
        }
    }
}

/// What the payload of a `dataset.described` event carries (stream `dataset/<name>`): a dataset's columns
/// and, for a dataset some job wrote, which input columns each of its columns comes from. Recorded when a
/// producer (an OpenLineage `schema` or `columnLineage` facet) says something new about them.
public struct DatasetDescription: Sendable, Hashable, Codable {
    /// One column.
    public struct Field: Sendable, Hashable, Codable {
        public var name: String
        public var type: String?
        public var description: String?

        public init(name: String, type: String? = nil, description: String? = nil) {
            self.name = name
            self.type = type
            self.description = description
        }
    }

    /// An input column a column is derived from.
    public struct Source: Sendable, Hashable, Codable {
        public var dataset: String
        public var field: String
        /// How (`IDENTITY`, `FILTER: rows with a negative amount are dropped`, …), when the producer says.
        public var transformation: String?

        public init(dataset: String, field: String, transformation: String? = nil) {
            self.dataset = dataset
            self.field = field
            self.transformation = transformation
        }
    }

    public var dataset: String
    /// The columns, in the producer's order (nil: unchanged, only lineage is new).
    public var fields: [Field]?
    /// Column → the input columns it is derived from.
    public var columnLineage: [String: [Source]]?
    /// Who said so: `openlineage:<job namespace>/<job>`.
    public var source: String?

    public init(dataset: String, fields: [Field]? = nil, columnLineage: [String: [Source]]? = nil, source: String? = nil) {
        self.dataset = dataset
        self.fields = fields
        self.columnLineage = columnLineage
        self.source = source
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dataset, fields, source
        case columnLineage = "column_lineage"
    }
}
