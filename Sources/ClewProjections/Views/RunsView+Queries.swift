import ClewLedger
import ClewModel
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

extension Views {
    // MARK: runs

    /// Runs, newest first, by DAG, state and queued time.
    ///
    /// As of a seq, each run is taken from the view when its record says it was not changed after that
    /// seq (`lastSeq`), skipped when it did not exist yet (`firstSeq`), and only otherwise folded from
    /// its own stream up to the seq: the runs in flight at that seq, not the whole log.
    public func runs(_ q: RunQuery) throws -> [RunRecord] {
        let useState = q.asOf == nil ? q.state : nil
        return try read(.runs) { store, txn in
            if let asOf = q.asOf, q.dag == nil { return try runs(q, asOf: asOf, store, txn) }
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
                guard var record = try RecordCache<RunRecord>.read(RunsProjection.runKey(key), table: "runs", txn, store) else {
                    throw ViewError(.inconsistent, view: "runs", "view runs indexes run \(key) but has no record of it")
                }
                if let asOf = q.asOf, record.lastSeq > asOf {
                    guard record.firstSeq <= asOf, let then = try foldRun(key, through: asOf)?.run else { return true }
                    record = then
                }
                if (q.state == nil || record.state == q.state) && (q.externalID == nil || record.externalIDs?.contains(q.externalID!) == true) {
                    records.append(record)
                }
                return records.count < q.limit
            }
            return records
        }
    }

    /// Runs as of `asOf`, newest first, from `by_epoch`: the newest run of each epoch that began by `asOf`
    /// is kept in order, and the newest of all is taken and replaced by the next of its epoch, so the
    /// cost is two seeks per epoch and one per run returned, plus the runs of `asOf`'s own epoch that
    /// began after it.
    private func runs(_ q: RunQuery, asOf: UInt64, _ store: ViewStore, _ txn: Transaction) throws -> [RunRecord] {
        let db = store.table("by_epoch")
        // The next key (its `by_time` part) of each epoch, in ascending order: the newest is last.
        var heads: [(time: [UInt8], epoch: UInt64, firstSeq: UInt64)] = []
        func advance(_ epoch: UInt64, below: [UInt8]?) throws {
            let prefix = KeyBuilder().u64(epoch).bytes
            try ViewTxn.last(txn, db, prefix: prefix, below: below.map { prefix + $0 }, view: "runs", table: "by_epoch") { k, v in
                guard v.count == 8 else {
                    throw ViewError(.corrupt, view: "runs", "view runs, table by_epoch: an entry holds \(v.count) bytes, not a seq")
                }
                let time = Array(k[prefix.count...])
                var lo = 0
                var hi = heads.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if heads[mid].time.lexicographicallyPrecedes(time) { lo = mid + 1 } else { hi = mid }
                }
                heads.insert((time, epoch, v.bigEndianUInt64Value), at: lo)
            }
        }
        let until = q.untilMicros.map { KeyBuilder().i64($0).bytes }
        // Every epoch that began at or before `asOf` (keys start with the epoch's first seq).
        var from: UInt64 = 0
        while true {
            var epoch: UInt64?
            try ViewTxn.scan(txn, db, prefix: [], from: KeyBuilder().u64(from).bytes, view: "runs", table: "by_epoch") { k, _ in
                if k.count >= 8 { epoch = k.bigEndianUInt64Value }
                return false
            }
            guard let e = epoch, e <= asOf else { break }
            try advance(e, below: until)
            if e == .max { break }
            from = e + 1
        }
        var out: [RunRecord] = []
        while out.count < q.limit, let head = heads.popLast() {
            let (time, key) = head.time.withUnsafeBytes { raw in
                var r = KeyReader(raw)
                return (r.i64(), RunKey(dag: r.string(), run: r.string()))
            }
            if let s = q.sinceMicros, time < s { break }
            try advance(head.epoch, below: head.time)
            if head.firstSeq > asOf { continue }  // began after the seq (in its epoch)
            guard var record = try RecordCache<RunRecord>.read(RunsProjection.runKey(key), table: "runs", txn, store) else {
                throw ViewError(.inconsistent, view: "runs", "view runs indexes run \(key) but has no record of it")
            }
            if record.firstSeq > asOf { continue }
            if record.lastSeq > asOf {
                guard let then = try foldRun(key, through: asOf)?.run else { continue }
                record = then
            }
            if (q.state == nil || record.state == q.state) && (q.externalID == nil || record.externalIDs?.contains(q.externalID!) == true) {
                out.append(record)
            }
        }
        return out
    }

    /// A run and its tasks (nil if the log has no such run as of `asOf`).
    public func run(_ key: RunKey, asOf: UInt64? = nil) throws -> RunDetail? {
        let detail: RunDetail? = try read(.runs) { store, txn in
            guard let run = try RecordCache<RunRecord>.read(RunsProjection.runKey(key), table: "runs", txn, store) else {
                // The view says no run: the log must agree (a lost or mangled key would say so wrongly).
                let checkpoint = try store.readMeta(txn)?.checkpoint ?? 0
                if let first = try ledger.seqs(inStream: key.stream, limit: 1).first, first <= checkpoint {
                    throw ViewError(.inconsistent, view: "runs", "view runs has no record of run \(key), which the log has at seq \(first)")
                }
                // Not folded yet (appended since): the log answers.
                if let asOf { return try foldRun(key, through: asOf) }
                return nil
            }
            // As of a seq: the record when nothing changed it since, else the run's stream folded to it.
            if let asOf, run.lastSeq > asOf { return run.firstSeq <= asOf ? try foldRun(key, through: asOf) : nil }
            var tasks: [TaskRecord] = []
            let prefix = KeyBuilder().string(key.dag).string(key.run).bytes
            try ViewTxn.scan(txn, store.table("tasks"), prefix: prefix, view: "runs", table: "tasks") { _, v in
                tasks.append(try RecordCache<TaskRecord>.decode(v, table: "tasks", view: "runs"))
                return true
            }
            return RunDetail(run: run, tasks: tasks)
        }
        return detail.map { RunDetail(run: $0.run, tasks: Self.launchOrder($0.tasks)) }
    }

    static func launchOrder(_ tasks: [TaskRecord]) -> [TaskRecord] {
        tasks.sorted { ($0.firstSeq, $0.task) < ($1.firstSeq, $1.task) }
    }

    /// Folds one run's stream through `seq` with the runs fold (reading only its events up to `seq`).
    func foldRun(_ key: RunKey, through seq: UInt64) throws -> RunDetail? {
        var sink = MemoryRunsSink()
        let seqs = try ledger.seqs(inStream: key.stream).prefix { $0 <= seq }
        guard let last = seqs.last else { return nil }
        for event in try ledger.events(inStream: key.stream, limit: seqs.count) where event.seq <= last {
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
}
