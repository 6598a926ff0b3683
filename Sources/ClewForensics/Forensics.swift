public import ClewCore
public import ClewLedger
import ClewModel
public import ClewProjections
import Foundation

/// The questions an on-call engineer or an auditor asks of a ledger, each answered from the log and its
/// views: lineage (``trace(_:)``), search, the five-question report of a chunk (``why(chunk:run:)``), the
/// earliest bad ancestor (``culprit(_:)``), the blast radius (``impact(_:)``) and audit exports.
public struct Forensics: Sendable {
    public let ledger: Ledger
    public let views: Views

    public init(ledger: Ledger, views: Views) {
        self.ledger = ledger
        self.views = views
    }

    // MARK: naming things

    /// The lineage node a user's `ID` names: a node id (`chunk:DATASET/KEY`, `value:SHA256`, `run:DAG/RUN`,
    /// `attempt:DAG/RUN/TASK/N`, `task:DAG/TASK`, `dataset:NAME`), a run (`DAG/RUN` or a run id), a chunk
    /// (`DATASET/KEY`), a dataset name, or a value digest (or a prefix of at least 8 hex digits).
    /// - Throws: ``ForensicsError`` naming what was not found, or which nodes an ambiguous id matches.
    public func node(_ text: String) throws -> String {
        let kinds = ["dataset:", "task:", "chunk:", "attempt:", "value:", "run:", "field:"]
        if kinds.contains(where: text.hasPrefix) {
            guard try views.lineageNodeExists(text) else { throw ForensicsError(.notFound, "no lineage node \(text) in the ledger") }
            return text
        }
        var candidates: [String] = []
        for key in try views.resolveRun(text) { candidates.append(LineageNode.run(dag: key.dag, run: key.run)) }
        // DATASET/KEY, where the key may itself contain slashes: try every split.
        for slash in text.indices where text[slash] == "/" {
            let node = LineageNode.chunk(dataset: String(text[..<slash]), key: String(text[text.index(after: slash)...]))
            if try views.lineageNodeExists(node) { candidates.append(node) }
        }
        if try views.lineageNodeExists(LineageNode.dataset(text)) { candidates.append(LineageNode.dataset(text)) }
        // DATASET#COLUMN: a column.
        if let hash = text.lastIndex(of: "#") {
            let node = LineageNode.field(dataset: String(text[..<hash]), field: String(text[text.index(after: hash)...]))
            if try views.lineageNodeExists(node) { candidates.append(node) }
        }
        if text.count >= 8, text.allSatisfy(\.isHexDigit) {
            candidates += try views.lineageNodes(prefix: LineageNode.value(text.lowercased()), limit: 3)
        }
        let unique = Array(Set(candidates)).sorted()
        guard let first = unique.first else {
            throw ForensicsError(.notFound, "\(text) names no run, chunk, dataset, column or value in the ledger (node ids: \(kinds.joined(separator: " ")))")
        }
        guard unique.count == 1 else {
            throw ForensicsError(.ambiguous, "\(text) is ambiguous: \(unique.joined(separator: ", ")); give the node id")
        }
        return first
    }

    /// The dataset and key of a chunk node. Dataset names may hold `/` (OpenLineage datasets such as
    /// `s3://lake:raw/orders`) and so may keys: the split is the one whose dataset is a lineage node.
    public func chunkParts(_ node: String) throws -> (dataset: String, key: String) {
        guard node.hasPrefix("chunk:") else { throw ForensicsError("\(node) is not a chunk (give DATASET/KEY)") }
        let rest = node.dropFirst(6)
        for slash in rest.indices where rest[slash] == "/" {
            let dataset = String(rest[..<slash])
            if try views.lineageNodeExists(LineageNode.dataset(dataset)) { return (dataset, String(rest[rest.index(after: slash)...])) }
        }
        throw ForensicsError(.notFound, "\(node) names no chunk of a known dataset")
    }

    // MARK: reading the log

    /// The events of a run's stream, each with its payload decoded by the event schema (events that are
    /// not of the run, or do not decode, come as `.other`).
    func runFacts(_ key: RunKey) throws -> [(event: Event, fact: Fact.RunFact)] {
        let decoder = JSONDecoder()
        return try ledger.events(inStream: key.stream).map { e in
            if case .run(_, let f) = Fact.decode(e, wanted: .run, decoder: decoder) { return (e, f) }
            return (e, .other)
        }
    }

    /// What a dataset stream says about one chunk: its status changes and reader leases, in order.
    func chunkFacts(dataset: String, chunk key: String) throws -> [(event: Event, fact: ChunkFact)] {
        let decoder = JSONDecoder()
        return try ledger.events(inStream: StreamID.dataset(dataset)).compactMap { e in
            switch Fact.decode(e, wanted: .chunks, decoder: decoder) {
            case .chunk(let c) where c.chunk == key: (e, .change(c))
            case .lease(let l, let acquired) where l.chunk == key: (e, .lease(l, acquired: acquired))
            default: nil
            }
        }
    }

    /// A chunk's event in its dataset's stream.
    enum ChunkFact {
        case change(ChunkChange)
        case lease(ChunkLease, acquired: Bool)

        var change: ChunkChange? {
            if case .change(let c) = self { return c }
            return nil
        }
    }

    /// The value a `value.produced` / `variable.recorded` payload describes: inline, or its `value.stored` event.
    func value(of v: ValueEvent) throws -> JSONTree? {
        if let inline = v.value { return inline.tree }
        return try value(digest: v.digest)
    }

    /// A stored value by digest.
    func value(digest: String) throws -> JSONTree? {
        guard let e = try ledger.events(inStream: StreamID.value(digest), limit: 1).first else { return nil }
        return try JSONDecoder().decode(ValueStored.self, from: e.payload).value?.tree
    }
}

/// An attempt named by its lineage node id `attempt:DAG/RUN/TASK/N` (run ids hold no `/`; task ids hold none).
public struct AttemptRef: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var dag: String
    public var run: String
    public var task: String
    public var attempt: Int

    public init(dag: String, run: String, task: String, attempt: Int) {
        self.dag = dag
        self.run = run
        self.task = task
        self.attempt = attempt
    }

    public init?(node: String) {
        guard node.hasPrefix("attempt:") else { return nil }
        let parts = node.dropFirst(8).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4, let n = Int(parts[parts.count - 1]) else { return nil }
        dag = String(parts[0])
        task = String(parts[parts.count - 2])
        run = parts[1..<(parts.count - 2)].joined(separator: "/")
        attempt = n
    }

    public var runKey: RunKey { RunKey(dag: dag, run: run) }
    public var node: String { LineageNode.attempt(dag: dag, run: run, task: task, attempt: attempt) }
    public var description: String { "\(dag)/\(run) \(task)#\(attempt)" }
    public static func < (a: AttemptRef, b: AttemptRef) -> Bool { (a.dag, a.run, a.task, a.attempt) < (b.dag, b.run, b.task, b.attempt) }
}

/// A question the ledger cannot answer as asked, named.
public struct ForensicsError: ClewError {
    public var description: String
    public var category: ErrorCategory
    public init(_ category: ErrorCategory = .invalidInput, _ description: String) {
        self.description = description
        self.category = category
    }
    public init(_ description: String) { self.init(.invalidInput, description) }
}

/// A time for people: ISO 8601 UTC with milliseconds.
func isoTime(_ micros: Int64) -> String { ISO8601.string(micros: micros) }
