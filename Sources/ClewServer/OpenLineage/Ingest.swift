import ClewLedger
import ClewModel
import ClewProjections
import Crypto
import Foundation
import HTTPTypes

/// One event of a request, parsed and checked against the spec (done outside the ingester's lock).
struct CheckedEvent: Sendable {
    var tree: JSONTree
    /// SHA-256 of the event's canonical JSON (sorted keys): what makes a retried event a duplicate.
    var digest: String
    var body: String

    /// Parses and validates; the error names the field (prefixed with the event's index in a batch).
    static func check(_ tree: JSONTree, schema: OpenLineageSchema, index: Int?) throws -> CheckedEvent {
        do { try schema.validate(tree) } catch let v as SchemaViolation {
            let at = index.map { "events[\($0)]" } ?? ""
            let path = v.path.hasPrefix("$") ? at + v.path.dropFirst() : at + "." + v.path
            throw APIError(.badRequest, "invalid OpenLineage event: \(path.isEmpty ? "$" : path) \(v.message)")
        }
        let body = tree.text
        let digest = SHA256.hash(data: Data(body.utf8)).map { String(format: "%02x", $0) }.joined()
        return CheckedEvent(tree: tree, digest: digest, body: body)
    }
}

/// What an ingest request did.
struct IngestResult: Codable, Sendable {
    /// Events appended now.
    var accepted: Int
    /// Events already in the ledger (a client's retry), acknowledged without appending.
    var duplicates: Int
    /// Native events appended for them.
    var appended: Int
    /// Seq of the last event appended (durable when this is returned).
    var lastSeq: UInt64?
}

/// OpenLineage ingest: maps run events into the same native events the engine writes, so OpenLineage
/// runs appear in the runs, chunks and lineage views and answer the same forensic queries.
///
/// - A job with a `parent` run facet is a task of the parent's run: DAG = the parent job's name, task =
///   the job's name without the `<parent>.` prefix, one attempt per OpenLineage run id. A job without one
///   is a run of its own DAG; if it reads or writes datasets it is also a task of that run.
/// - START → `task.started` (and `run.queued`/`run.started` for a run not seen yet); COMPLETE →
///   `task.succeeded`; FAIL → `task.failed` with the errorMessage facet; ABORT → `task.failed` (cancelled).
///   At the root: `run.started`, `run.succeeded`, `run.failed`, `run.cancelled`.
/// - A dataset is `<namespace>:<name>`. Its chunks are the partitions of its `subset` facet (identifier,
///   or the dimensions as `k=v,…`), the locations of a location subset, else its version facet's
///   version, else `latest`. Outputs go producing → ready (failed on FAIL); inputs are `value.consumed`,
///   and an input chunk never seen before is recorded as ready (observed).
/// - The jobs' inputs and outputs are recorded as the DAG's definition (`dag.registered`, origin
///   `openlineage:<namespace>`), grown as new datasets appear, so dataset ↔ job lineage reads directly.
/// - Each accepted event is kept whole as `openlineage.received` in stream `openlineage/<runId>` with its
///   digest: a retried event (same digest) is acknowledged and not applied twice.
actor OpenLineageIngest {
    let ledger: Ledger
    let schema: OpenLineageSchema

    /// Digests already in the ledger, per OpenLineage run id (loaded from its stream on first touch).
    private var digests: [String: Set<String>] = [:]
    /// Native runs known to exist (queued) and to have started.
    private var queued: Set<RunKey> = []
    private var started: Set<RunKey> = []
    /// Runs this ingester queued itself: their streams hold only what it appended, so attempt counts
    /// start at zero without reading the stream back.
    private var created: Set<RunKey> = []
    /// OpenLineage run id → the native attempt it is.
    private var attempts: [String: AttemptState] = [:]
    /// Attempts per (run, task) so far.
    private var attemptCounts: [String: Int] = [:]
    /// Chunk statuses per dataset (folded from the dataset's stream on first touch).
    private var chunkStatus: [String: [String: ChunkStatus]] = [:]
    /// DAG definitions built from the jobs seen.
    private var definitions: [String: DAGSpec] = [:]

    struct AttemptState {
        var key: RunKey
        var task: String
        var attempt: Int
        var startedMicros: Int64
        var ended = false
        var consumed: Set<String> = []
    }

    init(ledger: Ledger, schema: OpenLineageSchema) {
        self.ledger = ledger
        self.schema = schema
    }

    /// Applies checked events and appends them, with `audit`, in one batch (all or nothing); returns once
    /// the batch is durable.
    func ingest(_ events: [CheckedEvent], audit: NewEvent?) async throws -> IngestResult {
        var drafts: [NewEvent] = []
        var result = IngestResult(accepted: 0, duplicates: 0, appended: 0, lastSeq: nil)
        var pendingDigests: [(String, String)] = []
        // Work on copies so a failed append leaves the caches as the ledger is.
        let arrival = TokenStore.now()
        let saved = (queued, started, created, attempts, attemptCounts, chunkStatus, definitions)
        do {
            for e in events {
                let olRun = e.tree["run"]?["runId"]?.string ?? e.tree["dataset"]?["name"]?.string ?? "events"
                let stream = "openlineage/\(olRun.lowercased())"
                if try isDuplicate(e.digest, olRun: olRun.lowercased(), stream: stream) || pendingDigests.contains(where: { $0.1 == e.digest }) {
                    result.duplicates += 1
                    continue
                }
                pendingDigests.append((olRun.lowercased(), e.digest))
                // Ledger time is arrival time (the log stays in time order for --as-of); the event's own
                // time is kept in the body and used for durations.
                let time = Self.micros(e.tree["eventTime"]?.string) ?? TokenStore.now()
                drafts.append(NewEvent(
                    type: EventType.openLineageReceived, stream: stream, actor: "openlineage",
                    timestampMicros: arrival, payload: Data(#"{"digest":"\#(e.digest)","event":\#(e.body)}"#.utf8)))
                if e.tree["run"] != nil, e.tree["job"] != nil {
                    try map(e.tree, time: time, stamp: arrival, into: &drafts)
                }
                result.accepted += 1
            }
            if result.accepted > 0, let audit { drafts.append(audit) }
            if !drafts.isEmpty {
                let range = try await ledger.append(contentsOf: drafts)
                result.lastSeq = range.upperBound - 1
                result.appended = drafts.count
            }
        } catch {
            (queued, started, created, attempts, attemptCounts, chunkStatus, definitions) = saved
            throw error
        }
        for (run, digest) in pendingDigests { digests[run, default: []].insert(digest) }
        return result
    }

    private func isDuplicate(_ digest: String, olRun: String, stream: String) throws -> Bool {
        if digests[olRun] == nil {
            var set = Set<String>()
            for event in try ledger.events(inStream: stream) where event.type == EventType.openLineageReceived {
                if let tree = try? JSONTree.parse(event.payload), let d = tree["digest"]?.string { set.insert(d) }
            }
            digests[olRun] = set
        }
        return digests[olRun]!.contains(digest)
    }

    // MARK: Mapping

    private func map(_ e: JSONTree, time: Int64, stamp: Int64, into drafts: inout [NewEvent]) throws {
        guard let olRun = e["run"]?["runId"]?.string?.lowercased(), let job = e["job"]?["name"]?.string,
              let namespace = e["job"]?["namespace"]?.string
        else { return }
        let eventType = e["eventType"]?.string ?? "OTHER"
        let facets = e["run"]?["facets"]
        let parent = facets?["parent"]
        let inputs = e["inputs"]?.array ?? []
        let outputs = e["outputs"]?.array ?? []
        let dag: String
        let runID: String
        var task: String?
        if let parentJob = parent?["job"]?["name"]?.string, let parentRun = parent?["run"]?["runId"]?.string {
            dag = Self.sanitize(parentJob)
            runID = parentRun.lowercased()
            task = Self.sanitize(job.hasPrefix(parentJob + ".") ? String(job.dropFirst(parentJob.count + 1)) : job)
        } else {
            dag = Self.sanitize(job)
            runID = olRun
            if !inputs.isEmpty || !outputs.isEmpty || attempts[olRun] != nil { task = dag }
        }
        let key = RunKey(dag: dag, run: runID)
        let stream = StreamID.run(dag: dag, run: runID)
        func emit(_ type: String, _ stream: String, _ payload: JSON.Value) {
            drafts.append(NewEvent(type: type, stream: stream, actor: "openlineage", timestampMicros: stamp, payload: payload.data))
        }

        if let task { try define(dag: dag, namespace: parent?["job"]?["namespace"]?.string ?? namespace, task: task, inputs: inputs, outputs: outputs, time: stamp, into: &drafts) }

        if !queued.contains(key) {
            if try ledger.seqs(inStream: stream, limit: 1).isEmpty {
                var fields: [(String, JSON.Value)] = [("dag", .string(dag)), ("run", .string(runID)), ("params", .object([])), ("trigger", .string("openlineage"))]
                if let v = definitions[dag]?.version { fields.append(("dag_version", .string(v))) }
                if let nominal = facets?["nominalTime"], let start = nominal["nominalStartTime"]?.string {
                    fields.append(("interval_start", .string(start)))
                    if let end = nominal["nominalEndTime"]?.string { fields.append(("interval_end", .string(end))) }
                }
                fields.append(("openlineage", .object([("namespace", .string(parent?["job"]?["namespace"]?.string ?? namespace)), ("job", .string(parent?["job"]?["name"]?.string ?? job)), ("producer", .string(e["producer"]?.string ?? ""))])))
                emit(EventType.runQueued, stream, .object(fields))
                created.insert(key)
            } else {
                started.insert(key)
            }
            queued.insert(key)
        }
        let isRoot = parent == nil
        if !started.contains(key), eventType != "OTHER" {
            emit(EventType.runStarted, stream, .object([("host", .string("openlineage")), ("producer", .string(e["producer"]?.string ?? ""))]))
            started.insert(key)
        }

        if let task {
            var state: AttemptState
            if let known = attempts[olRun] {
                state = known
            } else {
                let countKey = "\(stream)\u{0}\(task)"
                if attemptCounts[countKey] == nil { attemptCounts[countKey] = created.contains(key) ? 0 : try countAttempts(stream: stream, task: task) }
                attemptCounts[countKey]! += 1
                state = AttemptState(key: key, task: task, attempt: attemptCounts[countKey]!, startedMicros: time)
                emit(EventType.taskStarted, stream, .object([("task", .string(task)), ("attempt", .int(Int64(state.attempt))), ("openlineage_run", .string(olRun))]))
            }
            for input in inputs {
                let (dataset, chunks) = Self.chunks(of: input, facetKey: "inputFacets", condition: "inputCondition")
                for chunk in chunks where !state.consumed.contains("\(dataset)/\(chunk)") {
                    if try status(dataset, chunk) == nil {
                        var change = ChunkChange(dataset: dataset, chunk: chunk, from: nil, to: .ready)
                        change.reason = "observed as an input of an OpenLineage run"
                        try emitChange(change, time: stamp, into: &drafts)
                    }
                    emit(EventType.valueConsumed, stream, .object([("task", .string(task)), ("attempt", .int(Int64(state.attempt))), ("dataset", .string(dataset)), ("chunk", .string(chunk))]))
                    state.consumed.insert("\(dataset)/\(chunk)")
                }
            }
            if !state.ended {
                for output in outputs {
                    let (dataset, chunks) = Self.chunks(of: output, facetKey: "outputFacets", condition: "outputCondition")
                    let bytes = output["outputFacets"]?["outputStatistics"]?["size"].flatMap { if case .number(let n) = $0 { return Int64(n) } else { return nil } }
                    for chunk in chunks {
                        let current = try status(dataset, chunk)
                        func change(_ to: ChunkStatus) throws {
                            var c = ChunkChange(dataset: dataset, chunk: chunk, from: try status(dataset, chunk), to: to)
                            c.dag = dag
                            c.run = runID
                            c.task = task
                            c.attempt = state.attempt
                            if to == .ready { c.bytes = bytes }
                            if to == .failed { c.reason = "OpenLineage \(eventType) of \(job)" }
                            try emitChange(c, time: stamp, into: &drafts)
                        }
                        if current != .producing { try change(.producing) }
                        switch eventType {
                        case "COMPLETE": try change(.ready)
                        case "FAIL", "ABORT": try change(.failed)
                        default: break
                        }
                    }
                }
                let duration = Int64(max(0, time - state.startedMicros) / 1000)
                switch eventType {
                case "COMPLETE":
                    emit(EventType.taskSucceeded, stream, .object([("task", .string(task)), ("attempt", .int(Int64(state.attempt))), ("duration_ms", .int(duration))]))
                    state.ended = true
                case "FAIL":
                    let message = facets?["errorMessage"]?["message"]?.string ?? "failed (OpenLineage FAIL event)"
                    emit(EventType.taskFailed, stream, .object([("task", .string(task)), ("attempt", .int(Int64(state.attempt))), ("duration_ms", .int(duration)), ("error", .string(message))]))
                    state.ended = true
                case "ABORT":
                    emit(EventType.taskFailed, stream, .object([("task", .string(task)), ("attempt", .int(Int64(state.attempt))), ("duration_ms", .int(duration)), ("error", .string("aborted (OpenLineage ABORT event)")), ("cancelled", .bool(true))]))
                    state.ended = true
                default: break
                }
            }
            attempts[olRun] = state
        }
        if isRoot {
            switch eventType {
            case "COMPLETE": emit(EventType.runSucceeded, stream, .object([]))
            case "FAIL": emit(EventType.runFailed, stream, .object([("error", .string(facets?["errorMessage"]?["message"]?.string ?? "failed"))]))
            case "ABORT": emit(EventType.runCancelled, stream, .object([]))
            default: break
            }
        }
    }

    /// Grows the DAG's definition with the task and the datasets it reads and writes; appends
    /// `dag.registered` when it changed.
    private func define(dag: String, namespace: String, task: String, inputs: [JSONTree], outputs: [JSONTree], time: Int64, into drafts: inout [NewEvent]) throws {
        if definitions[dag] == nil {
            if let last = try ledger.events(inStream: StreamID.dag(dag)).last,
               let tree = try? JSONDecoder().decode(RegisteredDefinition.self, from: last.payload), let spec = tree.definition {
                definitions[dag] = spec
            } else {
                definitions[dag] = DAGSpec(name: dag, description: "OpenLineage jobs of \(namespace)", tasks: [], origin: "openlineage:\(namespace)")
            }
        }
        var spec = definitions[dag]!
        let before = spec
        var t = spec.tasks.first { $0.id == task } ?? TaskSpec(id: task)
        for input in inputs {
            let name = Self.datasetName(input)
            if !t.consumes.contains(where: { $0.dataset == name }) { t.consumes.append(ChunkRef(dataset: name, key: "*")) }
        }
        for output in outputs {
            let name = Self.datasetName(output)
            if !t.produces.contains(where: { $0.dataset == name }) { t.produces.append(ChunkRef(dataset: name, key: "*")) }
        }
        if let i = spec.tasks.firstIndex(where: { $0.id == task }) { spec.tasks[i] = t } else { spec.tasks.append(t) }
        guard spec != before else { return }
        definitions[dag] = spec
        let payload = #"{"dag":\#(JSON.quote(dag)),"version":"\#(spec.version)","definition":\#(String(decoding: spec.canonicalJSON, as: UTF8.self))}"#
        drafts.append(NewEvent(type: EventType.dagRegistered, stream: StreamID.dag(dag), actor: "openlineage", timestampMicros: time, payload: Data(payload.utf8)))
    }

    private struct RegisteredDefinition: Decodable {
        var definition: DAGSpec?
    }

    private func emitChange(_ change: ChunkChange, time: Int64, into drafts: inout [NewEvent]) throws {
        drafts.append(NewEvent(type: EventType.chunkStatusChanged, stream: StreamID.dataset(change.dataset), actor: "openlineage", timestampMicros: time, payload: try JSON.canonical(change)))
        chunkStatus[change.dataset, default: [:]][change.chunk] = change.to
    }

    private func status(_ dataset: String, _ chunk: String) throws -> ChunkStatus? {
        if chunkStatus[dataset] == nil {
            var state = DatasetState(name: dataset)
            for event in try ledger.events(inStream: StreamID.dataset(dataset)) {
                state.apply(seq: event.seq, type: event.type, payload: event.payload)
            }
            chunkStatus[dataset] = state.chunks.mapValues(\.status)
        }
        return chunkStatus[dataset]?[chunk]
    }

    private func countAttempts(stream: String, task: String) throws -> Int {
        var n = 0
        for event in try ledger.events(inStream: stream) where event.type == EventType.taskStarted {
            if let tree = try? JSONTree.parse(event.payload), tree["task"]?.string == task { n += 1 }
        }
        return n
    }

    // MARK: Names

    /// The native dataset name of an OpenLineage dataset: `<namespace>:<name>`.
    static func datasetName(_ d: JSONTree) -> String {
        "\(d["namespace"]?.string ?? "default"):\(d["name"]?.string ?? "?")"
    }

    /// The dataset and the chunk keys an input or output names.
    static func chunks(of d: JSONTree, facetKey: String, condition: String) -> (String, [String]) {
        let name = datasetName(d)
        if let cond = d[facetKey]?["subset"]?[condition] {
            switch cond["type"]?.string {
            case "partition":
                let keys = cond["partitions"]?.array.map { p -> String in
                    if let id = p["identifier"]?.string, !id.isEmpty { return id }
                    if case .object(let dims)? = p["dimensions"] {
                        return dims.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.string ?? $0.value.text)" }.joined(separator: ",")
                    }
                    return "partition"
                } ?? []
                if !keys.isEmpty { return (name, keys) }
            case "location":
                let keys = cond["locations"]?.array.compactMap(\.string) ?? []
                if !keys.isEmpty { return (name, keys) }
            default: break
            }
        }
        if let version = d["facets"]?["version"]?["datasetVersion"]?.string, !version.isEmpty { return (name, [version]) }
        return (name, ["latest"])
    }

    /// Job names become DAG and task names; `/` would split a stream id, so it becomes `~`.
    static func sanitize(_ s: String) -> String { s.replacingOccurrences(of: "/", with: "~") }

    /// Microseconds since the epoch of an RFC 3339 time (`2026-11-21T10:00:00.123+01:00`), parsed by hand:
    /// a formatter per call cost more than the rest of the mapping.
    static func micros(_ text: String?) -> Int64? {
        guard let text, OpenLineageSchema.isDateTime(text) else { return nil }
        let c = Array(text.utf8)
        func num(_ r: Range<Int>) -> Int64 { r.reduce(0) { $0 * 10 + Int64(c[$1] - 48) } }
        let (y, mo, d) = (num(0..<4), num(5..<7), num(8..<10))
        let (h, mi, s) = (num(11..<13), num(14..<16), num(17..<19))
        // Days from civil (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        var micros = ((days * 24 + h) * 60 + mi) * 60 * 1_000_000 + s * 1_000_000
        var i = 19
        if c[i] == 46 {
            var scale: Int64 = 100_000
            i += 1
            while i < c.count, c[i] >= 48, c[i] <= 57 {
                micros += Int64(c[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        if c[i] == 43 || c[i] == 45 {
            let offset = (num(i + 1..<i + 3) * 60 + num(i + 4..<i + 6)) * 60 * 1_000_000
            micros += c[i] == 43 ? -offset : offset
        }
        return micros
    }
}
