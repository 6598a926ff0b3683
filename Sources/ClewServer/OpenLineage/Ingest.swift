import ClewCore
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
    /// The `openlineage.received` payload: the digest and the event's canonical JSON.
    var received: Data

    /// Parses and validates; the error names the field (prefixed with the event's index in a batch).
    static func check(_ tree: JSONTree, schema: OpenLineageSchema, index: Int?) throws -> CheckedEvent {
        do { try schema.validate(tree) } catch let v as SchemaViolation {
            let at = index.map { "events[\($0)]" } ?? ""
            let path = v.path.hasPrefix("$") ? at + v.path.dropFirst() : at + "." + v.path
            throw APIError(.badRequest, "invalid OpenLineage event: \(path.isEmpty ? "$" : path) \(v.message)")
        }
        let bytes = tree.canonicalBytes
        let digest = Array(SHA256.hash(data: bytes)).hex
        // The `openlineage.received` payload, assembled from the bytes already written (no second pass).
        var payload = Data(#"{"digest":"\#(digest)","event":"#.utf8)
        payload.append(contentsOf: bytes)
        payload.append(UInt8(ascii: "}"))
        return CheckedEvent(tree: tree, digest: digest, received: payload)
    }
}

/// What ingest did with one event of a request.
struct EventOutcome: Codable, Sendable {
    /// The event's index in the request (0 for a single event).
    var index: Int
    /// `applied` (it changed runs, tasks or chunks), `duplicate` (already in the ledger: a client's retry,
    /// acknowledged and not stored again) or `ignored` (stored whole, but it changes nothing; `reason` says why).
    var status: String
    var reason: String?
    var dag: String?
    var run: String?
    var task: String?
    var attempt: Int?
}

/// What an ingest request did.
struct IngestResult: Codable, Sendable {
    /// Events stored now (applied or ignored): every one is kept whole as `openlineage.received`.
    var accepted: Int
    /// Events that changed runs, tasks or chunks.
    var applied: Int
    /// Events stored but not applied (late, or after their run or attempt ended); see `events`.
    var ignored: Int
    /// Events already in the ledger (a client's retry), acknowledged without appending.
    var duplicates: Int
    /// Native events appended for them.
    var appended: Int
    /// Seq of the last event appended (durable when this is returned).
    var lastSeq: UInt64?
    /// One outcome per event of the request, in order.
    var events: [EventOutcome]
}

extension IngestResult {
    /// The response body, built directly (a batch answers one outcome per event; JSONEncoder took a
    /// visible share of ingest in a profile).
    var json: JSON.Value {
        let list: [JSON.Value] = events.map { e in
            var fields: [(String, JSON.Value)] = [("index", .int(Int64(e.index))), ("status", .string(e.status))]
            if let r = e.reason { fields.append(("reason", .string(r))) }
            if let d = e.dag { fields.append(("dag", .string(d))) }
            if let r = e.run { fields.append(("run", .string(r))) }
            if let t = e.task { fields.append(("task", .string(t))) }
            if let a = e.attempt { fields.append(("attempt", .int(Int64(a)))) }
            return .object(fields)
        }
        return .object([
            ("accepted", .int(Int64(accepted))), ("applied", .int(Int64(applied))), ("ignored", .int(Int64(ignored))),
            ("duplicates", .int(Int64(duplicates))), ("appended", .int(Int64(appended))),
            ("lastSeq", lastSeq.map { .int(Int64($0)) } ?? .null), ("events", .array(list)),
        ])
    }
}

/// OpenLineage ingest: maps run events into the same native events the engine writes, so OpenLineage
/// runs appear in the runs, chunks and lineage views and answer the same forensic queries.
///
/// - A job with a `parent` run facet is a task of the parent's run: DAG = the parent job's name, task =
///   the job's name without the `<parent>.` prefix. A job without one is a run of its own DAG; if it
///   reads or writes datasets it is also a task of that run.
/// - Each OpenLineage run id is one attempt. A START (or RUNNING) for an attempt that already ended, with a
///   later eventTime, is a re-run that reused the id (Airflow does this when a logical date is run again):
///   a new attempt, and the run is reopened (`run.resubmitted`, `run.started`). Any other event for an
///   ended attempt or run is late: stored, not applied, and the response says so.
/// - Events may arrive in any order: a COMPLETE before its START starts and ends the attempt at once, a
///   child before its parent creates the run.
/// - START → `task.started` (and `run.queued`/`run.started` for a run not seen yet); COMPLETE →
///   `task.succeeded`; FAIL → `task.failed` with the errorMessage facet; ABORT → `task.failed` (cancelled).
///   At the root: `run.started`, `run.succeeded`, `run.failed`, `run.cancelled`. Every such event carries
///   the producer's `eventTime` as `time_us`, which the runs view uses for times and durations (the
///   envelope keeps the arrival time, so the log stays in time order).
/// - Airflow's own ids (`run_id`, try number) are kept: `external_id` on the run, `try_number` on attempts.
/// - A dataset is `<namespace>:<name>`. Its chunks are the partitions of its `subset` facet (identifier,
///   or the dimensions as `k=v,…`), the locations of a location subset, else its version facet's
///   version, else one chunk per written version (`<writer run id>.<attempt>`), so a failed write never
///   hides the last good version. Outputs go producing → ready (failed on FAIL); inputs are
///   `value.consumed` of the latest ready version; an input never seen before is recorded as ready
///   (observed).
/// - The jobs' inputs and outputs are recorded as the DAG's definition (`dag.registered`, origin
///   `openlineage:<namespace>`), once per request for each DAG that changed.
/// - Each accepted event is kept whole as `openlineage.received` in stream `openlineage/<runId>` with its
///   digest: a retried event (same digest) is acknowledged and not applied twice, also when the copies
///   arrive concurrently (digests are reserved before the append is awaited).
actor OpenLineageIngest {
    let ledger: Ledger
    let schema: OpenLineageSchema

    /// Digests in the ledger or reserved by a request in flight, per OpenLineage run id (loaded from its
    /// stream on first touch).
    private var digests: [String: Set<String>] = [:]
    /// What each native run is, as far as ingest needs it (loaded from the run's stream on first touch).
    private var runs: [RunKey: RunMemo] = [:]
    /// Chunk statuses per dataset (folded from the dataset's stream on first touch), and the latest ready
    /// version of each unpartitioned dataset.
    private var chunkStatus: [String: [String: ChunkStatus]] = [:]
    private var latestReady: [String: String] = [:]
    /// The version of an unpartitioned dataset a run is writing now (dataset → chunk, run).
    private var beingWritten: [String: (chunk: String, run: RunKey)] = [:]
    /// DAG definitions built from the jobs seen.
    private var definitions: [String: DAGSpec] = [:]
    /// Each definition's canonical JSON and version, encoded once per change (encoding a DAGSpec is the
    /// costliest step of mapping a new run).
    private var encodedDefinitions: [String: (spec: DAGSpec, json: Data, version: String)] = [:]
    /// What each dataset's last `dataset.described` said (loaded with the dataset's chunks).
    private var descriptions: [String: DatasetDescription] = [:]

    struct AttemptState {
        var task: String
        var attempt: Int
        var startedAt: Int64
        /// Producer time of the attempt's end, nil while it runs.
        var endedAt: Int64?
        var endState: String?
        var consumed: Set<String> = []
        /// Steps recorded (data-quality metrics as variables), and whether the job's SQL was recorded.
        var steps = 0
        var sqlRecorded = false
    }

    /// A native run: whether it was queued and started, whether it ended, and its attempts by OpenLineage
    /// run id.
    struct RunMemo {
        var queued = false
        var started = false
        var endedAt: Int64?
        var endState: String?
        var attempts: [String: AttemptState] = [:]
        var counts: [String: Int] = [:]
        var externalIDs: Set<String> = []
    }

    /// How many OpenLineage runs' digests, and how many native runs' memos, stay cached. Past it, every
    /// entry no request in flight holds is dropped and read back from the log when next touched (as
    /// after a restart). Unbounded, a server's memory grew with every run it ever saw: 158 MiB for 56,000
    /// runs in tools/load.sh.
    let cacheLimit: Int
    /// OpenLineage runs and native runs whose cached state includes what a request still awaiting its
    /// append changed: never dropped (the log does not have it yet).
    private var pinnedOpenLineageRuns: [String: Int] = [:]
    private var pinnedRuns: [RunKey: Int] = [:]
    /// Native runs touched by the request being mapped (between its start and its append).
    private var touchedRuns: Set<RunKey> = []

    init(ledger: Ledger, schema: OpenLineageSchema, cacheLimit: Int = 10_000) {
        self.ledger = ledger
        self.schema = schema
        self.cacheLimit = max(1, cacheLimit)
    }

    /// Cached entries (for tests: the bound holds).
    var cachedCounts: (openLineageRuns: Int, runs: Int) { (digests.count, runs.count) }

    private func pin(_ olRuns: [String], _ keys: Set<RunKey>, by delta: Int) {
        for r in olRuns {
            let n = (pinnedOpenLineageRuns[r] ?? 0) + delta
            pinnedOpenLineageRuns[r] = n > 0 ? n : nil
        }
        for k in keys {
            let n = (pinnedRuns[k] ?? 0) + delta
            pinnedRuns[k] = n > 0 ? n : nil
        }
    }

    /// Drops what no request in flight holds, once a cache is past its bound.
    private func trimCaches() {
        if digests.count > cacheLimit {
            digests = digests.filter { pinnedOpenLineageRuns[$0.key] != nil }
        }
        if runs.count > cacheLimit {
            runs = runs.filter { pinnedRuns[$0.key] != nil }
        }
    }

    /// Applies checked events and appends them, with `audit`, in one batch (all or nothing); returns once
    /// the batch is durable.
    func ingest(_ events: [CheckedEvent], audit: NewEvent?) async throws -> IngestResult {
        var drafts: [NewEvent] = []
        var result = IngestResult(accepted: 0, applied: 0, ignored: 0, duplicates: 0, appended: 0, lastSeq: nil, events: [])
        var reserved: [(String, String)] = []
        var changedDAGs: [String] = []
        let arrival = TokenStore.now()
        // Mapping below runs without a suspension, so touchedRuns collects this request's runs alone.
        touchedRuns = []
        var pinned: (olRuns: [String], runs: Set<RunKey>) = ([], [])
        defer {
            pin(pinned.olRuns, pinned.runs, by: -1)
            trimCaches()
        }
        do {
            for (index, e) in events.enumerated() {
                let olRun = (e.tree["run"]?["runId"]?.string ?? e.tree["dataset"]?["name"]?.string ?? e.tree["job"]?["name"]?.string ?? "events").lowercased()
                let stream = "openlineage/\(olRun)"
                if try isDuplicate(e.digest, olRun: olRun, stream: stream) {
                    result.duplicates += 1
                    result.events.append(EventOutcome(index: index, status: "duplicate", reason: "already recorded (same canonical digest)"))
                    continue
                }
                // Reserved before the append is awaited: a concurrent copy of this event (a client's retry
                // racing the original) sees it and is a duplicate.
                digests[olRun, default: []].insert(e.digest)
                reserved.append((olRun, e.digest))
                drafts.append(NewEvent(
                    type: EventType.openLineageReceived, stream: stream, actor: "openlineage",
                    timestampMicros: arrival, payload: e.received))
                var outcome = EventOutcome(index: index, status: "applied")
                if e.tree["run"] != nil, e.tree["job"] != nil {
                    let time = Self.micros(e.tree["eventTime"]?.string) ?? arrival
                    try map(e.tree, time: time, stamp: arrival, into: &drafts, outcome: &outcome, changedDAGs: &changedDAGs)
                } else {
                    try mapStatic(e.tree, stamp: arrival, into: &drafts, outcome: &outcome, changedDAGs: &changedDAGs)
                }
                result.accepted += 1
                if outcome.status == "applied" { result.applied += 1 } else { result.ignored += 1 }
                result.events.append(outcome)
            }
            // Definitions once per request, ahead of the runs that name them.
            let definitionEvents = changedDAGs.compactMap { dag -> NewEvent? in
                guard let spec = definitions[dag] else { return nil }
                let (json, version) = encoded(dag, spec)
                let payload = #"{"dag":\#(JSON.quote(dag)),"version":"\#(version)","definition":\#(String(decoding: json, as: UTF8.self))}"#
                return NewEvent(type: EventType.dagRegistered, stream: StreamID.dag(dag), actor: "openlineage", timestampMicros: arrival, payload: Data(payload.utf8))
            }
            drafts.insert(contentsOf: definitionEvents, at: 0)
            if result.accepted > 0, let audit { drafts.append(audit) }
            pinned = (reserved.map(\.0), touchedRuns)
            pin(pinned.olRuns, pinned.runs, by: 1)
            if !drafts.isEmpty {
                let range = try await ledger.append(contentsOf: drafts)
                result.lastSeq = range.upperBound - 1
                result.appended = drafts.count
            }
        } catch {
            // The ledger is the truth: drop what this request reserved and every cached fold (a concurrent
            // request may have changed them since), so the next request reads them back from the log.
            for (run, digest) in reserved { digests[run]?.remove(digest) }
            runs = [:]
            chunkStatus = [:]
            latestReady = [:]
            beingWritten = [:]
            definitions = [:]
            encodedDefinitions = [:]
            descriptions = [:]
            throw error
        }
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

    /// The run's memo, folded from its stream the first time it is touched.
    private func memo(_ key: RunKey) throws -> RunMemo {
        touchedRuns.insert(key)
        if let m = runs[key] { return m }
        var m = RunMemo()
        var byAttempt: [String: String] = [:]  // "task\0attempt" → OpenLineage run id
        for event in try ledger.events(inStream: StreamID.run(dag: key.dag, run: key.run)) {
            guard let tree = try? JSONTree.parse(event.payload) else { continue }
            let at = tree["time_us"].flatMap { if case .number(let n) = $0 { Int64(n) } else { nil } } ?? event.timestampMicros
            switch event.type {
            case EventType.runQueued:
                m.queued = true
                if let x = tree["external_id"]?.string { m.externalIDs.insert(x) }
            case EventType.runLabelled:
                if let x = tree["external_id"]?.string { m.externalIDs.insert(x) }
            case EventType.runStarted, EventType.runResubmitted:
                if let x = tree["external_id"]?.string { m.externalIDs.insert(x) }
                m.queued = true
                m.started = event.type == EventType.runStarted
                m.endedAt = nil
                m.endState = nil
            case EventType.runSucceeded, EventType.runFailed, EventType.runCancelled:
                m.endedAt = at
                m.endState = String(event.type.dropFirst(4))
            case EventType.taskStarted:
                guard let task = tree["task"]?.string, case .number(let n)? = tree["attempt"] else { continue }
                m.counts[task] = max(m.counts[task] ?? 0, Int(n))
                if let ol = tree["openlineage_run"]?.string {
                    m.attempts[ol] = AttemptState(task: task, attempt: Int(n), startedAt: at)
                    byAttempt["\(task)\u{0}\(Int(n))"] = ol
                }
            case EventType.taskSucceeded, EventType.taskFailed:
                guard let task = tree["task"]?.string, case .number(let n)? = tree["attempt"],
                      let ol = byAttempt["\(task)\u{0}\(Int(n))"] else { continue }
                m.attempts[ol]?.endedAt = at
                m.attempts[ol]?.endState = event.type == EventType.taskSucceeded ? "succeeded" : "failed"
            case EventType.valueConsumed:
                guard let task = tree["task"]?.string, case .number(let n)? = tree["attempt"],
                      let ol = byAttempt["\(task)\u{0}\(Int(n))"], let d = tree["dataset"]?.string, let c = tree["chunk"]?.string else { continue }
                m.attempts[ol]?.consumed.insert("\(d)/\(c)")
            case EventType.variableRecorded:
                guard let task = tree["task"]?.string, case .number(let n)? = tree["attempt"], case .number(let step)? = tree["step"],
                      let ol = byAttempt["\(task)\u{0}\(Int(n))"] else { continue }
                let known = m.attempts[ol]?.steps ?? 0
                m.attempts[ol]?.steps = max(known, Int(step))
            default: break
            }
        }
        runs[key] = m
        return m
    }

    // MARK: Mapping

    private func map(
        _ e: JSONTree, time: Int64, stamp: Int64, into drafts: inout [NewEvent], outcome: inout EventOutcome, changedDAGs: inout [String]
    ) throws {
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
        // A job nested deeper than a task (Airflow 3's per-query jobs `dag.task.query.1`) belongs to the root
        // run its parent facet names: it is a task of that run, named by its path below the root job.
        let top = parent?["root"]?["job"]?["name"]?.string != nil ? parent?["root"] : parent
        if let parentJob = top?["job"]?["name"]?.string, let parentRun = top?["run"]?["runId"]?.string {
            dag = Self.sanitize(parentJob)
            runID = parentRun.lowercased()
            task = Self.sanitize(job.hasPrefix(parentJob + ".") ? String(job.dropFirst(parentJob.count + 1)) : job)
        } else {
            dag = Self.sanitize(job)
            runID = olRun
            if !inputs.isEmpty || !outputs.isEmpty { task = dag }
        }
        let key = RunKey(dag: dag, run: runID)
        let stream = StreamID.run(dag: dag, run: runID)
        var memo = try memo(key)
        runs[key] = nil  // held here alone while it changes (no copy of its tables per event); put back below
        if task == nil, memo.attempts[olRun] != nil { task = dag }
        outcome.dag = dag
        outcome.run = runID
        outcome.task = task
        let before = drafts.count
        func emit<P: ProducerTimed>(_ type: String, _ payload: P) {
            var payload = payload
            payload.timeMicros = time
            drafts.append(NewEvent(type: type, stream: stream, actor: "openlineage", timestampMicros: stamp, payload: payload.payloadData))
        }
        func ignore(_ why: String) {
            outcome.status = "ignored"
            outcome.reason = why
        }
        let isStart = eventType == "START" || eventType == "RUNNING"
        let isEnd = ["COMPLETE", "FAIL", "ABORT"].contains(eventType)
        let externalID = Self.externalID(facets)

        if let task, try define(
            dag: dag, namespace: top?["job"]?["namespace"]?.string ?? namespace, task: task, inputs: inputs, outputs: outputs,
            schedule: facets?["airflow"]?["dag"]?["schedule_interval"]?.string ?? facets?["airflowDagRun"]?["dag"]?["schedule_interval"]?.string
                ?? facets?["airflow"]?["dag"]?["timetable_summary"]?.string)
        {
            if !changedDAGs.contains(dag) { changedDAGs.append(dag) }
        }

        if !memo.queued {
            var queued = RunQueued(dag: dag, run: runID, params: [:], trigger: "openlineage")
            if let spec = definitions[dag] { queued.dagVersion = encoded(dag, spec).version }
            if let nominal = facets?["nominalTime"], let start = nominal["nominalStartTime"]?.string {
                queued.intervalStart = start
                queued.intervalEnd = nominal["nominalEndTime"]?.string
            }
            if let externalID {
                queued.externalID = externalID
                memo.externalIDs.insert(externalID)
            }
            queued.openlineage = .object([
                "namespace": .string(top?["job"]?["namespace"]?.string ?? namespace), "job": .string(top?["job"]?["name"]?.string ?? job),
                "producer": .string(e["producer"]?.string ?? ""),
            ])
            emit(EventType.runQueued, queued)
            memo.queued = true
        }
        // A run that ended is reopened by a later start of itself or of any of its tasks (a re-run).
        if let ended = memo.endedAt, isStart, time > ended {
            emit(
                EventType.runResubmitted,
                RunResubmitted(previousStatus: memo.endState ?? "ended", reason: "OpenLineage \(eventType) of \(job) after the run ended"))
            memo.endedAt = nil
            memo.endState = nil
            memo.started = false
        }
        if !memo.started, memo.endedAt == nil, eventType != "OTHER" {
            emit(EventType.runStarted, RunStarted(host: "openlineage", producer: e["producer"]?.string ?? ""))
            memo.started = true
        }
        // A producer may give one run several ids (Airflow 3 names each `dags test` of a logical date anew
        // while reusing the OpenLineage run id): each is recorded once, and each finds the run.
        if let externalID, !memo.externalIDs.contains(externalID) {
            emit(EventType.runLabelled, RunLabelled(externalID: externalID))
            memo.externalIDs.insert(externalID)
        }

        if let task {
            var state: AttemptState
            var fresh = false
            if let known = memo.attempts[olRun], let ended = known.endedAt {
                if isStart, time > ended {
                    fresh = true  // the id was reused by a re-run: a new attempt
                } else {
                    ignore("attempt \(known.attempt) of \(task) already ended (\(known.endState ?? "ended")); a \(eventType) \(isStart ? "with an earlier eventTime is late" : "after its end changes nothing")")
                }
                state = known
            } else if let known = memo.attempts[olRun] {
                state = known
            } else {
                fresh = true
                state = AttemptState(task: task, attempt: 0, startedAt: time)
            }
            if fresh {
                let n = (memo.counts[task] ?? 0) + 1
                memo.counts[task] = n
                state = AttemptState(task: task, attempt: n, startedAt: time)
                var started = TaskEvent(task: task, attempt: n, openlineageRun: olRun, tryNumber: Self.tryNumber(facets).map(Int.init), startUnknown: isStart ? nil : true)
                if let sql = e["job"]?["facets"]?["sql"]?["query"]?.string {
                    started.sql = sql
                    state.sqlRecorded = true
                }
                emit(EventType.taskStarted, started)
                if n > 1, memo.attempts[olRun] != nil { outcome.reason = "a new attempt: the run id was reused after attempt \(n - 1) ended (a re-run)" }
            }
            outcome.attempt = state.attempt
            if outcome.status == "applied" {
                steps(facets?["clew_steps"], state: &state) { event, large in
                    // A value over the inline limit is stored once in `value/<digest>`, as the engine does.
                    if let large, (try? ledger.seqs(inStream: StreamID.value(large.digest), limit: 1).isEmpty) ?? true,
                        !drafts.contains(where: { $0.stream == StreamID.value(large.digest) })
                    {
                        drafts.append(
                            NewEvent(
                                type: EventType.valueStored, stream: StreamID.value(large.digest), actor: "openlineage", timestampMicros: stamp,
                                payload: ValueStored(digest: large.digest, valueType: large.type, value: try? JSONFragment(text: large.text)).payloadData))
                    }
                    emit(EventType.variableRecorded, event)
                }
                for input in inputs {
                    let name = Self.datasetName(input)
                    let chunks = try Self.chunks(of: input, facetKey: "inputFacets", condition: "inputCondition")
                        ?? [readVersion(of: name, by: key) ?? "observed"]
                    for chunk in chunks where !state.consumed.contains("\(name)/\(chunk)") {
                        if try status(name, chunk) == nil {
                            var change = ChunkChange(dataset: name, chunk: chunk, from: nil, to: .ready)
                            change.reason = "observed as an input of an OpenLineage run"
                            try emitChange(change, time: stamp, into: &drafts)
                        }
                        emit(EventType.valueConsumed, ValueConsumed(task: task, attempt: state.attempt, dataset: name, chunk: chunk))
                        state.consumed.insert("\(name)/\(chunk)")
                    }
                }
                for output in outputs {
                    let name = Self.datasetName(output)
                    let versioned = Self.chunks(of: output, facetKey: "outputFacets", condition: "outputCondition")
                    let chunks = versioned ?? ["\(olRun).\(state.attempt)"]
                    if versioned == nil, isStart { beingWritten[name] = (chunks[0], key) }
                    let bytes = output["outputFacets"]?["outputStatistics"]?["size"].flatMap { if case .number(let n) = $0 { return Int64(n) } else { return nil } }
                    for chunk in chunks {
                        func change(_ to: ChunkStatus) throws {
                            var c = ChunkChange(dataset: name, chunk: chunk, from: try status(name, chunk), to: to)
                            c.dag = dag
                            c.run = runID
                            c.task = task
                            c.attempt = state.attempt
                            if to == .ready { c.bytes = bytes }
                            if to == .failed { c.reason = "OpenLineage \(eventType) of \(job)" }
                            try emitChange(c, time: stamp, into: &drafts)
                        }
                        if try status(name, chunk) != .producing { try change(.producing) }
                        switch eventType {
                        case "COMPLETE": try change(.ready)
                        case "FAIL", "ABORT": try change(.failed)
                        default: break
                        }
                    }
                }
                for d in inputs + outputs { try describe(d, by: "\(namespace)/\(job)", stamp: stamp, into: &drafts) }
                if isEnd {
                    quality(
                        inputs: inputs, outputs: outputs, state: &state, onMetric: { emit(EventType.variableRecorded, $0) },
                        onAssertion: { emit(EventType.expectationEvaluated, $0) })
                }
                var ended = TaskEvent(task: task, attempt: state.attempt, durationMillis: Int(max(0, time - state.startedAt) / 1000))
                // The job's SQL, once per attempt, on the first task event that carries it.
                if !state.sqlRecorded, let sql = e["job"]?["facets"]?["sql"]?["query"]?.string, isEnd {
                    ended.sql = sql
                    state.sqlRecorded = true
                }
                switch eventType {
                case "COMPLETE":
                    emit(EventType.taskSucceeded, ended)
                    state.endedAt = time
                    state.endState = "succeeded"
                case "FAIL":
                    ended.error = facets?["errorMessage"]?["message"]?.string ?? "failed (OpenLineage FAIL event)"
                    emit(EventType.taskFailed, ended)
                    state.endedAt = time
                    state.endState = "failed"
                case "ABORT":
                    ended.sql = nil
                    ended.error = "aborted (OpenLineage ABORT event)"
                    ended.cancelled = true
                    emit(EventType.taskFailed, ended)
                    state.endedAt = time
                    state.endState = "cancelled"
                default: break
                }
            }
            memo.attempts[olRun] = state
        }
        if parent == nil, outcome.status == "applied", isEnd {
            if let ended = memo.endedAt {
                if task == nil { ignore("run \(runID) of \(dag) already ended (\(memo.endState ?? "ended") at \(ended)); a \(eventType) after that changes nothing") }
            } else {
                switch eventType {
                case "COMPLETE": emit(EventType.runSucceeded, RunEnded())
                case "FAIL": emit(EventType.runFailed, RunEnded(error: facets?["errorMessage"]?["message"]?.string ?? "failed"))
                default: emit(EventType.runCancelled, RunEnded())
                }
                memo.endedAt = time
                memo.endState = eventType == "COMPLETE" ? "succeeded" : eventType == "FAIL" ? "failed" : "cancelled"
            }
        }
        if outcome.status == "applied", drafts.count == before {
            ignore(eventType == "OTHER" ? "an OTHER event carries facets only" : "nothing new: the run and attempt are already in this state")
        }
        runs[key] = memo
    }

    /// The `clew_steps` run facet that Clew's Python package sends from a traced function in an Airflow
    /// task (docs/python.md): each step (`name`, `kind` variable/now/side_effect, `value` any JSON,
    /// optional `source` file:line and `count`) becomes the attempt's next `variable.recorded`.
    private func steps(_ facet: JSONTree?, state: inout AttemptState, onStep: (ValueEvent, RecordedValue?) -> Void) {
        func step(_ name: String, _ kind: String, _ v: RecordedValue) -> (ValueEvent, RecordedValue?) {
            state.steps += 1
            let inline = v.text.utf8.count <= 512
            var event = ValueEvent(
                task: state.task, attempt: state.attempt, step: state.steps, name: name, kind: kind, digest: v.digest,
                valueType: v.type, value: inline ? try? JSONFragment(text: v.text) : nil)
            if !inline { event.bytes = v.text.utf8.count }
            return (event, inline ? nil : v)
        }
        // The traced call itself (file, function, arguments), first: what `clew replay-call` runs again.
        if let call = facet?["call"], let function = call["function"]?.string {
            let (event, large) = step(function, "call", RecordedValue(text: call.text, name: function, type: "python_call"))
            onStep(event, large)
        }
        for s in facet?["steps"]?.array ?? [] {
            guard let name = s["name"]?.string, !name.isEmpty, let value = s["value"] else { continue }
            let kind = s["kind"]?.string ?? "variable"
            guard ["variable", "now", "side_effect"].contains(kind) else { continue }
            var (event, large) = step(name, kind, RecordedValue(text: value.text, name: name, type: "python"))
            event.source = s["source"]?.string
            if case .number(let n)? = s["count"], n >= 1, n < 1e15 { event.count = Int(n) }
            onStep(event, large)
        }
    }

    /// Data-quality facets of an attempt's datasets, when it ends: each assertion (`dataQualityAssertions`,
    /// e.g. a dbt test) becomes `expectation.evaluated`, and each metric (`dataQualityMetrics`: row count,
    /// bytes, per-column nulls, distinct values, sum, min, max; `outputStatistics`) a numeric
    /// `variable.recorded` named `<dataset>.<metric>` or `<dataset>.<column>.<metric>`, so `clew culprit`
    /// finds failed assertions and out-of-range metrics across runs, and `clew search` finds them.
    private func quality(
        inputs: [JSONTree], outputs: [JSONTree], state: inout AttemptState, onMetric: (ValueEvent) -> Void,
        onAssertion: (ExpectationEvaluated) -> Void
    ) {
        func number(_ t: JSONTree?) -> Double? { if case .number(let n)? = t { n } else { nil } }
        func record(_ name: String, _ value: Double) {
            guard value.isFinite, let v = try? RecordedValue(value, name: name) else { return }
            state.steps += 1
            onMetric(
                ValueEvent(
                    task: state.task, attempt: state.attempt, step: state.steps, name: name, kind: "metric", digest: v.digest,
                    valueType: "number", value: try? JSONFragment(text: v.text)))
        }
        for d in inputs + outputs {
            let name = Self.datasetName(d)
            let facets = [d["inputFacets"], d["outputFacets"], d["facets"]]
            for f in facets {
                for a in f?["dataQualityAssertions"]?["assertions"]?.array ?? [] {
                    guard let assertion = a["assertion"]?.string, case .bool(let passed)? = a["success"] else { continue }
                    let column = a["column"]?.string.map { " on \($0)" } ?? ""
                    onAssertion(
                        ExpectationEvaluated(
                            task: state.task, attempt: state.attempt, name: "\(name): \(assertion)\(column)", passed: passed,
                            message: passed ? "" : "data-quality assertion failed (OpenLineage dataQualityAssertions)"))
                }
                if let m = f?["dataQualityMetrics"] {
                    for key in ["rowCount", "bytes", "fileCount"] { if let n = number(m[key]) { record("\(name).\(key)", n) } }
                    if case .object(let columns)? = m["columnMetrics"] {
                        for (column, cm) in columns.sorted(by: { $0.key < $1.key }) {
                            for key in ["nullCount", "distinctCount", "sum", "count", "min", "max"] {
                                if let n = number(cm[key]) { record("\(name).\(column).\(key)", n) }
                            }
                        }
                    }
                }
                if let o = f?["outputStatistics"] {
                    if let n = number(o["rowCount"]) { record("\(name).rowCount", n) }
                    if let n = number(o["size"]) { record("\(name).bytes", n) }
                }
            }
        }
    }

    /// A DatasetEvent (a dataset's schema or column lineage, outside any run) or a JobEvent (a job's
    /// inputs and outputs, outside any run: static lineage). Both change no run; they describe datasets and
    /// grow the job's DAG definition.
    private func mapStatic(
        _ e: JSONTree, stamp: Int64, into drafts: inout [NewEvent], outcome: inout EventOutcome, changedDAGs: inout [String]
    ) throws {
        let before = drafts.count
        if let dataset = e["dataset"] {
            try describe(dataset, by: e["producer"]?.string ?? "openlineage", stamp: stamp, into: &drafts)
        } else if let job = e["job"]?["name"]?.string, let namespace = e["job"]?["namespace"]?.string {
            let inputs = e["inputs"]?.array ?? []
            let outputs = e["outputs"]?.array ?? []
            let dag = Self.sanitize(job)
            outcome.dag = dag
            outcome.task = dag
            if try define(dag: dag, namespace: namespace, task: dag, inputs: inputs, outputs: outputs), !changedDAGs.contains(dag) {
                changedDAGs.append(dag)
            }
            for d in inputs + outputs { try describe(d, by: "\(namespace)/\(job)", stamp: stamp, into: &drafts) }
        }
        if drafts.count == before && !changedDAGs.contains(outcome.dag ?? "\u{0}") {
            outcome.status = "ignored"
            outcome.reason = "nothing new: the datasets and job are already described so"
        }
    }

    /// Records what a dataset's `schema` and `columnLineage` facets say, when it is new.
    private func describe(_ d: JSONTree, by source: String, stamp: Int64, into drafts: inout [NewEvent]) throws {
        let name = Self.datasetName(d)
        let facets = d["facets"]
        var fields: [DatasetDescription.Field]?
        if case .array(let list)? = facets?["schema"]?["fields"] {
            fields = list.compactMap { f in
                f["name"]?.string.map { DatasetDescription.Field(name: $0, type: f["type"]?.string, description: f["description"]?.string) }
            }
        }
        var lineage: [String: [DatasetDescription.Source]]?
        if case .object(let columns)? = facets?["columnLineage"]?["fields"] {
            lineage = [:]
            for (column, spec) in columns {
                let fallback = spec["transformationType"]?.string.map { type in
                    spec["transformationDescription"]?.string.map { "\(type): \($0)" } ?? type
                }
                lineage![column] = spec["inputFields"]?.array.compactMap { input -> DatasetDescription.Source? in
                    guard let field = input["field"]?.string else { return nil }
                    let t = input["transformations"]?.array.first.flatMap { t -> String? in
                        guard let type = t["type"]?.string else { return nil }
                        return [type, t["subtype"]?.string, t["description"]?.string].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
                    }
                    return DatasetDescription.Source(dataset: Self.datasetName(input), field: field, transformation: t ?? fallback)
                }
            }
        }
        guard fields != nil || lineage != nil else { return }
        try loadDataset(name)
        var known = descriptions[name] ?? DatasetDescription(dataset: name)
        var change = DatasetDescription(dataset: name, source: "openlineage:\(source)")
        if let fields, fields != known.fields {
            change.fields = fields
            known.fields = fields
        }
        if let lineage {
            let new = lineage.filter { known.columnLineage?[$0.key] != $0.value }
            if !new.isEmpty {
                change.columnLineage = new
                known.columnLineage = (known.columnLineage ?? [:]).merging(new) { _, n in n }
            }
        }
        guard change.fields != nil || change.columnLineage != nil else { return }
        descriptions[name] = known
        drafts.append(NewEvent(
            type: EventType.datasetDescribed, stream: StreamID.dataset(name), actor: "openlineage", timestampMicros: stamp,
            payload: try JSON.canonical(change)))
    }

    /// The producer's own id of the run: Airflow's `run_id` from its `airflow` or `airflowDagRun` facet.
    static func externalID(_ facets: JSONTree?) -> String? {
        facets?["airflow"]?["dagRun"]?["run_id"]?.string ?? facets?["airflowDagRun"]?["dagRun"]?["run_id"]?.string
            ?? facets?["airflow"]?["taskInstance"]?["run_id"]?.string
    }

    /// Airflow's try number of a task instance, when its facet gives one.
    static func tryNumber(_ facets: JSONTree?) -> Int64? {
        guard case .number(let n)? = facets?["airflow"]?["taskInstance"]?["try_number"] else { return nil }
        return Int64(n)
    }

    private func encoded(_ dag: String, _ spec: DAGSpec) -> (json: Data, version: String) {
        if let e = encodedDefinitions[dag], e.spec == spec { return (e.json, e.version) }
        let json = spec.canonicalJSON
        let version = String(ContentDigest.sha256(json).prefix(16))
        encodedDefinitions[dag] = (spec, json, version)
        return (json, version)
    }

    /// Grows the DAG's definition with the task and the datasets it reads and writes; true when it
    /// changed (the request then records it once, as `dag.registered`).
    private func define(
        dag: String, namespace: String, task: String, inputs: [JSONTree], outputs: [JSONTree], schedule: String? = nil
    ) throws -> Bool {
        if definitions[dag] == nil {
            if let last = try ledger.events(inStream: StreamID.dag(dag)).last,
               let registered = try? JSONDecoder().decode(DAGRegistered.self, from: last.payload), let spec = registered.definition {
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
        // Airflow's schedule as its DAG declares it (`@daily`, a cron line), when Clew can read it.
        if let schedule, let parsed = try? ScheduleSpec(parsing: schedule) { spec.schedule = parsed }
        guard spec != before else { return false }
        definitions[dag] = spec
        return true
    }

    private func emitChange(_ change: ChunkChange, time: Int64, into drafts: inout [NewEvent]) throws {
        drafts.append(NewEvent(type: EventType.chunkStatusChanged, stream: StreamID.dataset(change.dataset), actor: "openlineage", timestampMicros: time, payload: change.canonicalJSON))
        chunkStatus[change.dataset, default: [:]][change.chunk] = change.to
        if change.to == .ready { latestReady[change.dataset] = change.chunk }
    }

    private func status(_ dataset: String, _ chunk: String) throws -> ChunkStatus? {
        try loadDataset(dataset)
        return chunkStatus[dataset]?[chunk]
    }

    /// The version a reader of an unpartitioned dataset reads: the one its own run is writing (dbt-ol
    /// reports every model's START before any COMPLETE), else the one that became ready last.
    private func readVersion(of dataset: String, by run: RunKey) throws -> String? {
        try loadDataset(dataset)
        if let w = beingWritten[dataset], w.run == run, chunkStatus[dataset]?[w.chunk] == .producing || chunkStatus[dataset]?[w.chunk] == .ready {
            return w.chunk
        }
        return latestReady[dataset]
    }

    private func loadDataset(_ dataset: String) throws {
        guard chunkStatus[dataset] == nil else { return }
        var state = DatasetState(name: dataset)
        var described = DatasetDescription(dataset: dataset)
        for event in try ledger.events(inStream: StreamID.dataset(dataset)) {
            state.apply(seq: event.seq, type: event.type, payload: event.payload)
            if event.type == EventType.datasetDescribed, let d = try? JSONDecoder().decode(DatasetDescription.self, from: event.payload) {
                if let f = d.fields { described.fields = f }
                if let l = d.columnLineage { described.columnLineage = (described.columnLineage ?? [:]).merging(l) { _, new in new } }
            }
        }
        descriptions[dataset] = described
        chunkStatus[dataset] = state.chunks.mapValues(\.status)
        if let last = state.chunks.values.filter({ $0.status == .ready }).max(by: { $0.since < $1.since }) { latestReady[dataset] = last.key }
    }

    // MARK: Names

    /// The native dataset name of an OpenLineage dataset: `<namespace>:<name>`.
    static func datasetName(_ d: JSONTree) -> String {
        "\(d["namespace"]?.string ?? "default"):\(d["name"]?.string ?? "?")"
    }

    /// The chunk keys an input or output names: its partitions or locations, else its version; nil for a
    /// dataset with neither (the caller keys it by the write).
    static func chunks(of d: JSONTree, facetKey: String, condition: String) -> [String]? {
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
                if !keys.isEmpty { return keys }
            case "location":
                let keys = cond["locations"]?.array.compactMap(\.string) ?? []
                if !keys.isEmpty { return keys }
            default: break
            }
        }
        if let version = d["facets"]?["version"]?["datasetVersion"]?.string, !version.isEmpty { return [version] }
        return nil
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
