public import ClewLedger
public import ClewModel
import Foundation

/// A query of the runs view.
public struct RunQuery: Sendable {
    public var dag: String?
    public var state: String?
    /// Queued at or after (microseconds since the epoch).
    public var sinceMicros: Int64?
    /// Queued before.
    public var untilMicros: Int64?
    public var limit = 50
    public var asOf: UInt64?
    /// One of the producer's own ids for the run (Airflow's `run_id`), matched exactly.
    public var externalID: String?
    public init(
        dag: String? = nil, state: String? = nil, sinceMicros: Int64? = nil, untilMicros: Int64? = nil, limit: Int = 50,
        asOf: UInt64? = nil, externalID: String? = nil
    ) {
        self.externalID = externalID
        self.dag = dag
        self.state = state
        self.sinceMicros = sinceMicros
        self.untilMicros = untilMicros
        self.limit = limit
        self.asOf = asOf
    }
}

/// A run with its tasks (in launch order).
public struct RunDetail: Sendable, Codable {
    public var run: RunRecord
    public var tasks: [TaskRecord]
}

/// A run of chunk keys in one set: `first`…`last`, `count` chunks.
public struct KeyRange: Sendable, Codable, Equatable {
    public var first: String
    public var last: String
    public var count: UInt64
}

/// The chunks of a dataset in one set (a status, `stale` or `missing`), as key ranges.
public struct ChunkGroup: Sendable, Codable, Equatable {
    public var set: String
    public var count: UInt64
    public var ranges: [KeyRange]
    /// More ranges exist than were listed.
    public var truncated: Bool
}

/// A dataset's status: its summary and every set, with the missing, failed, invalid, stale and
/// in-progress chunks listed as key ranges.
public struct ChunkStatusReport: Sendable, Codable {
    public var dataset: DatasetSummary
    public var groups: [ChunkGroup]
}

/// Which way to follow lineage.
public enum LineageDirection: String, Sendable, Codable {
    /// Where it came from (backward edges).
    case up
    /// What it reached (forward edges).
    case down
}

extension Views {
    // MARK: --as-of

    /// The seq `text` names: a seq number (`1234`) or a UTC time (`2026-11-21T10:00:00Z`, with optional
    /// fraction, or a date): the last event recorded at or before it.
    public func seq(asOf text: String) throws -> UInt64 {
        let last = try ledger.lastSeq
        if let n = UInt64(text) {
            guard n <= last else {
                throw ViewError(.invalidInput, view: nil, "--as-of \(text): the log has \(last) events")
            }
            return n
        }
        guard let micros = Self.parseTime(text) else {
            throw ViewError(.invalidInput, view: nil, "--as-of \(text): not a seq number or a UTC time such as 2026-11-21T10:00:00Z")
        }
        // Event times follow the log up to the skew between writers (a task's time is taken before its
        // event is appended): binary search, then look ahead through the skew window for later events
        // that are still at or before the time.
        var lo: UInt64 = 0
        var hi = last
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2
            if let e = try ledger.event(at: mid), e.timestampMicros <= micros { lo = mid } else { hi = mid - 1 }
        }
        if lo < last {
            try ledger.scan((lo + 1)...last) { e in
                if e.timestampMicros <= micros { lo = e.seq }
                return e.timestampMicros <= micros + Self.clockSkewMicros
            }
        }
        return lo
    }

    /// How far out of order event times may be (writers stamp events before the append).
    static let clockSkewMicros: Int64 = 10_000_000

    static func parseTime(_ text: String) -> Int64? {
        if let m = PartitionKey.parse(text) { return m }
        // 2026-11-21T10:00:00.123456Z
        guard text.hasSuffix("Z"), let dot = text.firstIndex(of: ".") else { return nil }
        guard let base = PartitionKey.parse(String(text[..<dot]) + "Z") else { return nil }
        let fraction = text[text.index(after: dot)..<text.index(before: text.endIndex)]
        guard !fraction.isEmpty, fraction.count <= 6, fraction.allSatisfy(\.isNumber), let f = Int64(fraction) else { return nil }
        var scale: Int64 = 1
        for _ in fraction.count..<6 { scale *= 10 }
        return base + f * scale
    }

    // MARK: runs

    /// Runs, newest first, by DAG, state and queued time; as of a seq, folded from each run's stream.
    public func runs(_ q: RunQuery) throws -> [RunRecord] {
        let useState = q.asOf == nil ? q.state : nil
        // Live: index and records read in one transaction. As of a seq: candidates from the index, each
        // folded from its own stream.
        let (candidates, live): ([RunKey], [RunRecord]) = try read(.runs) { store, txn in
            var keys: [RunKey] = []
            var records: [RunRecord] = []
            let (table, prefix): (String, [UInt8]) =
                if let s = useState { ("by_state", KeyBuilder().string(s).bytes) }
                else if let d = q.dag { ("by_dag", KeyBuilder().string(d).bytes) }
                else { ("by_time", []) }
            try ViewTxn.scan(txn, store.table(table), prefix: prefix, view: "runs", table: table, reverse: true) { k, _ in
                var r = KeyReader(UnsafeRawBufferPointer(rebasing: k[prefix.count...]))
                let time = r.i64()
                let key = table == "by_dag" ? RunKey(dag: q.dag!, run: r.string()) : RunKey(dag: r.string(), run: r.string())
                if let u = q.untilMicros, time >= u { return true }
                if let s = q.sinceMicros, time < s { return false }
                if let d = q.dag, key.dag != d { return true }
                guard q.asOf == nil else {
                    keys.append(key)
                    return true
                }
                guard let record = try RecordCache<RunRecord>.read(RunsProjection.runKey(key), table: "runs", txn, store) else {
                    throw ViewError(.inconsistent, view: "runs", "view runs indexes run \(key) but has no record of it")
                }
                if (q.state == nil || record.state == q.state) && (q.externalID == nil || record.externalIDs?.contains(q.externalID!) == true) {
                    records.append(record)
                }
                return records.count < q.limit
            }
            return (keys, records)
        }
        guard let asOf = q.asOf else { return live }
        var out: [RunRecord] = []
        for key in candidates where out.count < q.limit {
            guard let record = try foldRun(key, through: asOf)?.run else { continue }
            if let s = q.state, record.state != s { continue }
            if let x = q.externalID, record.externalIDs?.contains(x) != true { continue }
            out.append(record)
        }
        return out
    }

    /// A run and its tasks (nil if the log has no such run as of `asOf`).
    public func run(_ key: RunKey, asOf: UInt64? = nil) throws -> RunDetail? {
        if let asOf { return try foldRun(key, through: asOf) }
        let detail: RunDetail? = try read(.runs) { store, txn in
            guard let run = try RecordCache<RunRecord>.read(RunsProjection.runKey(key), table: "runs", txn, store) else {
                // The view says no run: the log must agree (a lost or mangled key would say so wrongly).
                let checkpoint = try store.readMeta(txn)?.checkpoint ?? 0
                if let first = try ledger.seqs(inStream: key.stream, limit: 1).first, first <= checkpoint {
                    throw ViewError(.inconsistent, view: "runs", "view runs has no record of run \(key), which the log has at seq \(first)")
                }
                return nil
            }
            var tasks: [TaskRecord] = []
            let prefix = KeyBuilder().string(key.dag).string(key.run).bytes
            try ViewTxn.scan(txn, store.table("tasks"), prefix: prefix, view: "runs", table: "tasks") { _, v in
                tasks.append(try RecordCache<TaskRecord>.decode(Data(v), table: "tasks", view: "runs"))
                return true
            }
            return RunDetail(run: run, tasks: tasks)
        }
        return detail.map { RunDetail(run: $0.run, tasks: Self.launchOrder($0.tasks)) }
    }

    static func launchOrder(_ tasks: [TaskRecord]) -> [TaskRecord] {
        tasks.sorted { ($0.firstSeq, $0.task) < ($1.firstSeq, $1.task) }
    }

    /// Folds one run's stream through `seq` with the runs fold.
    func foldRun(_ key: RunKey, through seq: UInt64) throws -> RunDetail? {
        var sink = MemoryRunsSink()
        for event in try ledger.events(inStream: key.stream) where event.seq <= seq {
            guard case .run(let k, let f) = Fact.decode(event, wanted: [.run]) else { continue }
            try RunsFold.apply(f, k, EventHeader(seq: event.seq, timeMicros: event.timestampMicros, stream: event.stream, type: event.type), into: &sink)
        }
        guard let run = sink.runs[key] else { return nil }
        return RunDetail(run: run, tasks: Self.launchOrder(Array((sink.tasks[key] ?? [:]).values)))
    }

    /// The runs a user's `RUN` names: `DAG/RUN`, or a run id of any DAG (several when DAGs share it).
    public func resolveRun(_ text: String) throws -> [RunKey] {
        if let slash = text.firstIndex(of: "/") {
            let key = RunKey(dag: String(text[..<slash]), run: String(text[text.index(after: slash)...]))
            if try !ledger.seqs(inStream: key.stream, limit: 1).isEmpty { return [key] }
        }
        return try ledger.streams(prefix: "run/").compactMap { RunKey(stream: $0.stream) }.filter { $0.run == text }
    }

    // MARK: chunks

    /// Every dataset's summary (as of a seq: folded afresh).
    public func datasets(asOf: UInt64? = nil) throws -> [DatasetSummary] {
        try withChunks(asOf: asOf) { store, txn in
            var out: [DatasetSummary] = []
            try ViewTxn.scan(txn, store.table("datasets"), prefix: [], view: "chunks", table: "datasets") { _, v in
                out.append(try RecordCache<DatasetSummary>.decode(Data(v), table: "datasets", view: "chunks"))
                return true
            }
            return out
        }
    }

    /// A dataset's status: summary, then each non-empty set as key ranges (at most `ranges` per set).
    /// Reads the summary and the range-compressed sets only: no chunk is visited.
    public func chunkStatus(dataset: String, ranges limit: Int = 20, asOf: UInt64? = nil) throws -> ChunkStatusReport? {
        try withChunks(asOf: asOf) { store, txn in
            guard let summary = try RecordCache<DatasetSummary>.read(ChunksProjection.summaryKey(dataset), table: "datasets", txn, store) else {
                return nil
            }
            var groups: [ChunkGroup] = []
            let order = ["failed", "invalid", "stale", "missing", "producing", "consuming", "resubmitted", "pending", "ready", "consumed"]
            for set in order {
                let ranges: [ClosedRange<UInt64>]
                let natural: Bool
                switch set {
                case "missing":
                    guard summary.missing > 0, let a = summary.firstOrdinal, let b = summary.lastOrdinal else { continue }
                    let present = try ChunksProjection.readSet(dataset, ChunksProjection.presentSet, txn, store)
                    ranges = present.complement(in: a...b)
                    natural = true
                case "stale":
                    guard summary.stale > 0 else { continue }
                    ranges = try ChunksProjection.readSet(dataset, ChunksProjection.staleSet, txn, store).ranges
                    natural = false
                default:
                    guard (summary.counts[set] ?? 0) > 0 else { continue }
                    ranges = try ChunksProjection.readSet(dataset, ChunksProjection.setByte(set), txn, store).ranges
                    natural = false
                }
                var keyRanges: [KeyRange] = []
                var count: UInt64 = 0
                for r in ranges {
                    count += r.upperBound - r.lowerBound + 1
                    guard keyRanges.count < limit else { continue }
                    func key(_ o: UInt64) throws -> String {
                        if natural || o < ChunksProjection.keyOrdinalBase, let k = ChunksProjection.naturalKey(o, summary.partitioning) { return k }
                        return try RecordCache<ChunkRecord>.read(ChunksProjection.chunkKey(dataset, o), table: "chunks", txn, store)?.key ?? "#\(o)"
                    }
                    keyRanges.append(KeyRange(first: try key(r.lowerBound), last: try key(r.upperBound), count: r.upperBound - r.lowerBound + 1))
                }
                groups.append(ChunkGroup(set: set, count: count, ranges: keyRanges, truncated: ranges.count > keyRanges.count))
            }
            return ChunkStatusReport(dataset: summary, groups: groups)
        }
    }

    /// The chunks of a dataset in a status (or `stale`), in ordinal order, at most `limit`.
    public func chunks(dataset: String, status: String, limit: Int = 100, asOf: UInt64? = nil) throws -> [ChunkRecord] {
        guard status == "stale" || ChunkStatus(rawValue: status) != nil else {
            throw ViewError(.invalidInput, view: "chunks", "unknown status \(status); one of \(ChunkStatus.allCases.map(\.rawValue).joined(separator: ", ")), stale, missing")
        }
        return try withChunks(asOf: asOf) { store, txn in
            let set = status == "stale" ? ChunksProjection.staleSet : ChunksProjection.setByte(status)
            var out: [ChunkRecord] = []
            for r in try ChunksProjection.readSet(dataset, set, txn, store).ranges {
                var o = r.lowerBound
                while o <= r.upperBound, out.count < limit {
                    if let record = try RecordCache<ChunkRecord>.read(ChunksProjection.chunkKey(dataset, o), table: "chunks", txn, store) {
                        out.append(record)
                    } else {
                        throw ViewError(.inconsistent, view: "chunks", "view chunks lists chunk #\(o) of \(dataset) as \(status) but has no record of it")
                    }
                    if o == .max { break }
                    o += 1
                }
                if out.count >= limit { break }
            }
            return out
        }
    }

    /// The chunk view, live or folded afresh through `asOf` (chunk status is not versioned in place).
    private func withChunks<T>(asOf: UInt64?, _ body: (ViewStore, Transaction) throws -> T) throws -> T {
        guard let asOf else { return try read(.chunks, body) }
        return try withScratch([.chunks], through: [.chunks: asOf], progress: options.progress) { stores in
            try stores[.chunks]!.env.read { try body(stores[.chunks]!, $0) }
        }
    }

    // MARK: lineage

    /// Edges reachable from `node` following data flow (`used`, `generated`) and triggers up to `depth`
    /// steps; membership edges (`part_of`) are listed but not followed. As of a seq: edges first seen by then.
    ///
    /// Values are content-addressed, so identical bytes made in different runs are one node. Values flow
    /// only along a run's own edges, so a trace that enters a value from an attempt of one run leaves it
    /// only through attempts of that run (a value where the trace starts is followed into every run).
    public func lineage(node: String, direction: LineageDirection, depth: Int = 10, asOf: UInt64? = nil, limit: Int = 10_000) throws -> [LineageEdge] {
        try read(.lineage) { store, txn in
            let table = direction == .down ? "fwd" : "bwd"
            var out: [LineageEdge] = []
            var seenEdges: Set<LineageEdge> = []
            // Frontier entries: a node, and for a value entered from an attempt, that attempt's run prefix.
            var seen: Set<String> = [node]
            var frontier: [(String, String?)] = [(node, nil)]
            var level = 0
            while !frontier.isEmpty, level < depth, out.count < limit {
                var next: [(String, String?)] = []
                for (n, scope) in frontier {
                    let prefix = KeyBuilder().string(n).bytes
                    try ViewTxn.scan(txn, store.table(table), prefix: prefix, view: "lineage", table: table) { k, v in
                        let other = String(decoding: k[prefix.count...], as: UTF8.self)
                        let seq = v.bigEndianUInt64Value
                        let kind = EdgeKind(rawValue: v[8]) ?? .used
                        if let asOf, seq > asOf { return true }
                        if let scope, other.hasPrefix("attempt:"), !other.hasPrefix(scope) { return true }
                        let edge = direction == .down
                            ? LineageEdge(from: n, to: other, kind: kind.description, firstSeq: seq)
                            : LineageEdge(from: other, to: n, kind: kind.description, firstSeq: seq)
                        guard seenEdges.insert(edge).inserted else { return true }
                        out.append(edge)
                        if kind != .partOf {
                            let nextScope = other.hasPrefix("value:") ? Self.runScope(of: n) : nil
                            if seen.insert(nextScope.map { other + "\u{0}" + $0 } ?? other).inserted { next.append((other, nextScope)) }
                        }
                        return out.count < limit
                    }
                }
                frontier = next
                level += 1
            }
            return out
        }
    }

    /// The direct neighbours of `node` one way whose ids start with `prefix` (`task:`, `dataset:` …): a
    /// range scan of exactly those keys, so a dataset's million chunks are not read to find its jobs.
    public func lineageNeighbors(of node: String, direction: LineageDirection, prefix: String, limit: Int = 10_000) throws -> [LineageEdge] {
        try read(.lineage) { store, txn in
            let table = direction == .down ? "fwd" : "bwd"
            let base = KeyBuilder().string(node).bytes
            var out: [LineageEdge] = []
            try ViewTxn.scan(txn, store.table(table), prefix: base + Array(prefix.utf8), view: "lineage", table: table) { k, v in
                let other = String(decoding: k[base.count...], as: UTF8.self)
                let kind = (EdgeKind(rawValue: v[8]) ?? .used).description
                out.append(direction == .down
                    ? LineageEdge(from: node, to: other, kind: kind, firstSeq: v.bigEndianUInt64Value)
                    : LineageEdge(from: other, to: node, kind: kind, firstSeq: v.bigEndianUInt64Value))
                return out.count < limit
            }
            return out
        }
    }

    /// `attempt:DAG/RUN/` of an attempt node (the prefix of its run's attempts), else nil.
    static func runScope(of node: String) -> String? {
        guard node.hasPrefix("attempt:") else { return nil }
        var parts = node.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4 else { return nil }
        parts.removeLast(2)
        return parts.joined(separator: "/") + "/"
    }

    /// Whether the lineage graph has node `id`.
    public func lineageNodeExists(_ id: String) throws -> Bool {
        try read(.lineage) { store, txn in
            let key = Array(id.utf8)
            return try key.withUnsafeBytes { try txn.get(store.table("nodes"), $0) } != nil
        }
    }

    /// Lineage node ids starting with `prefix`, in order, at most `limit`.
    public func lineageNodes(prefix: String, limit: Int = 100) throws -> [String] {
        try read(.lineage) { store, txn in
            var out: [String] = []
            try ViewTxn.scan(txn, store.table("nodes"), prefix: Array(prefix.utf8), view: "lineage", table: "nodes") { k, _ in
                out.append(String(decoding: k, as: UTF8.self))
                return out.count < limit
            }
            return out
        }
    }

    /// How many nodes the lineage graph has.
    public func lineageNodeCount() throws -> Int {
        try read(.lineage) { store, txn in
            var n = 0
            try ViewTxn.scan(txn, store.table("nodes"), prefix: [], view: "lineage", table: "nodes") { _, _ in
                n += 1
                return true
            }
            return n
        }
    }

    /// The physical floor of a trace: one read transaction scanning the backward edges of `nodes` without
    /// decoding anything (benchmarks compare traces with it). Returns the entries read.
    public func lineageReadFloor(_ nodes: [String]) throws -> Int {
        try read(.lineage) { store, txn in
            var n = 0
            for node in nodes {
                try ViewTxn.scan(txn, store.table("bwd"), prefix: KeyBuilder().string(node).bytes, view: "lineage", table: "bwd") { _, _ in
                    n += 1
                    return true
                }
            }
            return n
        }
    }

    // MARK: values

    /// Recorded values by name (and task: `dag/task` or a task name), matching `match`, in log order
    /// within a value. As of a seq: values recorded by then.
    public func values(name: String?, task: String? = nil, match: ValueMatch, asOf: UInt64? = nil, limit: Int = 100) throws -> [ValueHit] {
        try read(.values) { store, txn in
            var out: [ValueHit] = []
            let table: String
            var prefix: [UInt8]
            let taskFilter = task
            if case .digest(let d) = match {
                table = "by_digest"
                prefix = KeyBuilder().string(d).bytes
            } else {
                guard let name else { throw ViewError(.invalidInput, view: "values", "a value search needs a name (or a digest)") }
                table = "by_name"
                prefix = KeyBuilder().string(name).bytes
            }
            var start: [UInt8]? = nil
            var upper: [UInt8]? = nil
            switch match {
            case .equals(let v):
                guard let e = ValuesProjection.encode(v) else {
                    throw ViewError(.invalidInput, view: "values", "only numbers, strings and booleans are indexed by value; search records by digest")
                }
                prefix += e
            case .range(let lo, let hi):
                let base = prefix + [UInt8(ascii: "n")]
                start = base + KeyBuilder().double(lo ?? -.infinity).bytes
                upper = base + KeyBuilder().double(hi ?? .infinity).bytes + [0xff]
                prefix = base
            case .prefix(let p):
                prefix += [UInt8(ascii: "s")] + Array(p.utf8.prefix(ValuesProjection.stringKeyBytes))
            case .digest, .any:
                break
            }
            try ViewTxn.scan(txn, store.table(table), prefix: prefix, from: start, view: "values", table: table) { k, v in
                if let upper, !Array(k).lexicographicallyPrecedes(upper) { return false }
                let seq = UnsafeRawBufferPointer(rebasing: k[(k.count - 8)...]).bigEndianUInt64Value
                if let asOf, seq > asOf { return true }
                let hit = ValuesProjection.decodeHit(v, seq: seq)
                if let t = taskFilter, hit.task != t, "\(hit.dag)/\(hit.task)" != t { return true }
                if case .equals(.string(let s)) = match, s.utf8.count > ValuesProjection.stringKeyBytes, hit.value != JSON.quote(s) { return true }
                out.append(hit)
                return out.count < limit
            }
            return out
        }
    }
}

/// A DAG as the ledger knows it: its last registered definition (from the engine, a pipeline file, or
/// OpenLineage producers), whether or not this executable can run it.
public struct RegisteredDAG: Sendable, Codable {
    public var name: String
    public var version: String
    /// The definition as registered (nil if its payload did not decode).
    public var definition: DAGSpec?
    /// Seq and time of the last registration.
    public var registeredSeq: UInt64
    public var registeredMicros: Int64
}

extension Views {
    /// Every DAG registered in the ledger, by name (see ``RegisteredDAG/all(in:)``).
    public func registeredDAGs() throws -> [RegisteredDAG] { try RegisteredDAG.all(in: ledger) }
}

extension RegisteredDAG {
    /// Every DAG registered in `ledger` (`dag.registered` in stream `dag/<name>`), by name: the last
    /// registration of each. Reads one event per DAG; needs no views.
    public static func all(in ledger: Ledger) throws -> [RegisteredDAG] {
        struct Payload: Decodable {
            var dag: String
            var version: String
            var definition: DAGSpec?
        }
        let decoder = JSONDecoder()
        return try ledger.streams(prefix: "dag/").compactMap { stream in
            guard let seq = try ledger.seqs(inStream: stream.stream).last, let event = try ledger.event(at: seq),
                  event.type == EventType.dagRegistered, let p = try? decoder.decode(Payload.self, from: event.payload)
            else { return nil }
            return RegisteredDAG(name: p.dag, version: p.version, definition: p.definition, registeredSeq: seq, registeredMicros: event.timestampMicros)
        }.sorted { $0.name < $1.name }
    }
}
