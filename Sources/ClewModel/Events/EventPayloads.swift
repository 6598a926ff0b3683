public import Foundation

/// The payload of one or more event types: the event schema as code.
///
/// Each conforming type declares its JSON field names once, as its `CodingKeys`; decoding a payload of
/// its event types with it is how every reader (the views, replay, forensics) reads the field, and
/// docs/event-schema.md is checked against ``fieldNames`` by a test, so the schema, the code and the
/// documentation cannot drift apart. A field is added, never renamed or retyped: readers decode fields a
/// type does not know as nothing (they stay in the stored payload bytes, which are never rewritten).
public protocol EventPayload: Codable, Sendable {
    associatedtype CodingKeys: CodingKey & CaseIterable & RawRepresentable where CodingKeys.RawValue == String
    /// The event types whose payload this is.
    static var eventTypes: [String] { get }
}

/// A payload that carries when its event happened as the producer reported it (`time_us`), apart from
/// when Clew recorded it (the envelope's timestamp).
public protocol ProducerTimed: EventPayload {
    /// Microseconds since the epoch.
    var timeMicros: Int64? { get set }
}

extension EventPayload {
    /// The payload's JSON field names.
    public static var fieldNames: [String] { CodingKeys.allCases.map(\.rawValue) }
}

/// `dag.registered`: a DAG's definition, once per version.
public struct DAGRegistered: EventPayload, Equatable {
    public static let eventTypes = [EventType.dagRegistered]
    public var dag: String
    public var version: String
    /// Where it was defined (`file:line`, `pipeline:<file>`, `openlineage:<namespace>`).
    public var origin: String?
    /// SHA-256 of the source text and scripts, when known.
    public var sourceSHA256: String?
    /// The task ids.
    public var tasks: [String]?
    public var definition: DAGSpec?
    /// A pipeline file's text and its scripts as this version ran them (secret-looking assignments
    /// redacted), each stored once as a value (`value/<sha256>`), for the dashboard's code view.
    public var sources: [SourceFile]?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dag, version, origin, sourceSHA256 = "source_sha256", tasks, definition, sources
    }

    public init(
        dag: String,
        version: String,
        origin: String? = nil,
        sourceSHA256: String? = nil,
        tasks: [String]? = nil,
        definition: DAGSpec? = nil
    ) {
        self.dag = dag
        self.version = version
        self.origin = origin
        self.sourceSHA256 = sourceSHA256
        self.tasks = tasks
        self.definition = definition
    }
}

/// `run.queued`: a run was asked for.
public struct RunQueued: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.runQueued]
    public var dag: String?
    public var run: String?
    public var dagVersion: String?
    /// Parameters, secrets redacted.
    public var params: [String: String]?
    /// manual, scheduled, backfill, `dag:<dag>/<run>`, branch, openlineage.
    public var trigger: String?
    public var partition: String?
    public var intervalStart: String?
    public var intervalEnd: String?
    /// A branch run: the run it branches from, and what it overrides.
    public var branchOf: String?
    public var overrides: JSONTree?
    /// The producer's own id of the run (Airflow's `run_id`).
    public var externalID: String?
    /// OpenLineage runs: `namespace`, `job`, `producer`.
    public var openlineage: JSONTree?
    /// When it happened as its producer reported it (OpenLineage `eventTime`), in microseconds.
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dag, run, dagVersion = "dag_version", params, trigger, partition, intervalStart = "interval_start"
        case intervalEnd = "interval_end", branchOf = "branch_of", overrides, externalID = "external_id", openlineage
        case timeMicros = "time_us"
    }

    public init(
        dag: String? = nil,
        run: String? = nil,
        dagVersion: String? = nil,
        params: [String: String]? = nil,
        trigger: String? = nil,
        partition: String? = nil,
        intervalStart: String? = nil,
        intervalEnd: String? = nil,
        branchOf: String? = nil,
        overrides: JSONTree? = nil,
        externalID: String? = nil,
        openlineage: JSONTree? = nil,
        timeMicros: Int64? = nil
    ) {
        self.dag = dag
        self.run = run
        self.dagVersion = dagVersion
        self.params = params
        self.trigger = trigger
        self.partition = partition
        self.intervalStart = intervalStart
        self.intervalEnd = intervalEnd
        self.branchOf = branchOf
        self.overrides = overrides
        self.externalID = externalID
        self.openlineage = openlineage
        self.timeMicros = timeMicros
    }
}

/// `run.started`: a process took the run (or a producer said it started).
public struct RunStarted: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.runStarted]
    public var dag: String?
    public var run: String?
    public var pid: Int?
    public var host: String?
    public var maxActiveTasks: Int?
    /// The executable's GNU build id (or `sha256:` of it), its OS and architecture (for replay).
    public var buildID: String?
    public var os: String?
    public var arch: String?
    /// OpenLineage runs: the producer URI.
    public var producer: String?
    public var externalID: String?
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dag, run, pid, host, maxActiveTasks = "max_active_tasks", buildID = "build_id", os, arch, producer
        case externalID = "external_id", timeMicros = "time_us"
    }

    public init(
        dag: String? = nil,
        run: String? = nil,
        pid: Int? = nil,
        host: String? = nil,
        maxActiveTasks: Int? = nil,
        buildID: String? = nil,
        os: String? = nil,
        arch: String? = nil,
        producer: String? = nil,
        externalID: String? = nil,
        timeMicros: Int64? = nil
    ) {
        self.dag = dag
        self.run = run
        self.pid = pid
        self.host = host
        self.maxActiveTasks = maxActiveTasks
        self.buildID = buildID
        self.os = os
        self.arch = arch
        self.producer = producer
        self.externalID = externalID
        self.timeMicros = timeMicros
    }
}

/// `run.labelled`: one more of the producer's ids for the run.
public struct RunLabelled: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.runLabelled]
    public var externalID: String
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case externalID = "external_id", timeMicros = "time_us"
    }

    public init(externalID: String, timeMicros: Int64? = nil) {
        self.externalID = externalID
        self.timeMicros = timeMicros
    }
}

/// `run.resubmitted`: an ended run was opened again.
public struct RunResubmitted: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.runResubmitted]
    public var run: String?
    public var previousStatus: String?
    public var dagVersion: String?
    public var previousVersion: String?
    /// Tasks whose earlier successes are reused, and tasks run again.
    public var reused: [String]?
    public var rerun: [String]?
    public var reason: String?
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case run, previousStatus = "previous_status", dagVersion = "dag_version", previousVersion = "previous_version"
        case reused, rerun, reason, timeMicros = "time_us"
    }

    public init(
        run: String? = nil,
        previousStatus: String? = nil,
        dagVersion: String? = nil,
        previousVersion: String? = nil,
        reused: [String]? = nil,
        rerun: [String]? = nil,
        reason: String? = nil,
        timeMicros: Int64? = nil
    ) {
        self.run = run
        self.previousStatus = previousStatus
        self.dagVersion = dagVersion
        self.previousVersion = previousVersion
        self.reused = reused
        self.rerun = rerun
        self.reason = reason
        self.timeMicros = timeMicros
    }
}

/// `run.succeeded`, `run.failed`, `run.cancelled`: how a run ended.
public struct RunEnded: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.runSucceeded, EventType.runFailed, EventType.runCancelled]
    public var run: String?
    /// How many tasks ended in each state.
    public var tasks: [String: Int]?
    public var failedTasks: [String]?
    public var notRun: [String]?
    /// OpenLineage runs: the `errorMessage` facet of a failed run.
    public var error: String?
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case run, tasks, failedTasks = "failed_tasks", notRun = "not_run", error, timeMicros = "time_us"
    }

    public init(
        run: String? = nil,
        tasks: [String: Int]? = nil,
        failedTasks: [String]? = nil,
        notRun: [String]? = nil,
        error: String? = nil,
        timeMicros: Int64? = nil
    ) {
        self.run = run
        self.tasks = tasks
        self.failedTasks = failedTasks
        self.notRun = notRun
        self.error = error
        self.timeMicros = timeMicros
    }
}

/// `run.imported`: a run bundle from another ledger was imported.
public struct RunImported: EventPayload, Equatable {
    public static let eventTypes = [EventType.runImported]
    public var run: String?
    public var originLedger: String?
    public var originTreeSize: UInt64?
    public var originRoot: String?
    public var events: Int?
    public var files: Int?
    public var bundleSHA256: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case run, originLedger = "origin_ledger", originTreeSize = "origin_tree_size", originRoot = "origin_root", events, files
        case bundleSHA256 = "bundle_sha256"
    }

    public init(
        run: String? = nil,
        originLedger: String? = nil,
        originTreeSize: UInt64? = nil,
        originRoot: String? = nil,
        events: Int? = nil,
        files: Int? = nil,
        bundleSHA256: String? = nil
    ) {
        self.run = run
        self.originLedger = originLedger
        self.originTreeSize = originTreeSize
        self.originRoot = originRoot
        self.events = events
        self.files = files
        self.bundleSHA256 = bundleSHA256
    }
}

/// `run.callback`: a run's outcome posted (or not) to the URL given when it was triggered over HTTP.
public struct RunCallback: EventPayload, Equatable {
    public static let eventTypes = [EventType.runCallback]
    public var url: String?
    public var attempts: Int?
    public var delivered: Bool?
    public var statusCode: Int?
    public var error: String?
    public var outcome: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case url, attempts, delivered, statusCode = "status_code", error, outcome
    }

    public init(
        url: String? = nil,
        attempts: Int? = nil,
        delivered: Bool? = nil,
        statusCode: Int? = nil,
        error: String? = nil,
        outcome: String? = nil
    ) {
        self.url = url
        self.attempts = attempts
        self.delivered = delivered
        self.statusCode = statusCode
        self.error = error
        self.outcome = outcome
    }
}

/// Every `task.*` event: scheduled, started, succeeded, failed, retrying, blocked, skipped,
/// upstream failed.
public struct TaskEvent: ProducerTimed, Equatable {
    public static let eventTypes = [
        EventType.taskScheduled, EventType.taskStarted, EventType.taskSucceeded, EventType.taskFailed, EventType.taskRetrying,
        EventType.taskBlocked, EventType.taskSkipped, EventType.taskUpstreamFailed, EventType.taskQueued, EventType.taskCleared,
        EventType.taskMarkedSuccess, EventType.taskMarkedFailed,
    ]
    public var task: String
    public var attempt: Int?
    /// `task.scheduled`: launch order and slot.
    public var order: Int?
    public var slot: Int?
    /// `task.started`: the attempt's random seed (hex), its time limit and output directory.
    public var seed: String?
    public var timeoutMillis: Int?
    public var outputDir: String?
    /// `task.started` from OpenLineage: the OpenLineage run id (one attempt each), Airflow's try number,
    /// whether the attempt's first event was its end, the job's SQL.
    public var openlineageRun: String?
    public var tryNumber: Int?
    public var startUnknown: Bool?
    public var sql: String?
    public var durationMillis: Int?
    public var error: String?
    public var reason: String?
    public var outputDigest: String?
    /// The tasks a branch chose (a list; one string in early ledgers).
    public var branch: BranchChoice?
    /// `task.retrying`.
    public var nextAttempt: Int?
    public var backoffMillis: Int?
    /// `task.upstream_failed`: the failed upstream tasks.
    public var upstream: [String]?
    /// `task.cleared`: the tasks it runs again (it and every task after it).
    public var cleared: [String]?
    /// `task.cleared`, `task.marked_success`, `task.marked_failed`: who did it (also the actor).
    public var by: String?
    public var timedOut: Bool?
    public var cancelled: Bool?
    /// Command tasks: exit code, output (bounded) and sizes, files written, argv, working directory and
    /// environment (secrets redacted).
    public var exitCode: Int?
    /// The signal that killed the command, when one did.
    public var signal: Int?
    public var stdout: String?
    public var stderr: String?
    public var stdoutBytes: Int?
    public var stderrBytes: Int?
    public var files: [TaskFile]?
    public var argv: [String]?
    public var cwd: String?
    public var env: [String: String]?
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case task, attempt, order, slot, seed, timeoutMillis = "timeout_ms", outputDir = "output_dir"
        case openlineageRun = "openlineage_run", tryNumber = "try_number", startUnknown = "start_unknown", sql
        case durationMillis = "duration_ms", error, reason, outputDigest = "output_digest", branch
        case nextAttempt = "next_attempt", backoffMillis = "backoff_ms", upstream, cleared, by, timedOut = "timed_out", cancelled
        case exitCode = "exit_code", signal, stdout, stderr, stdoutBytes = "stdout_bytes", stderrBytes = "stderr_bytes", files, argv
        case cwd, env, timeMicros = "time_us"
    }

    public init(
        task: String,
        attempt: Int? = nil,
        order: Int? = nil,
        slot: Int? = nil,
        seed: String? = nil,
        timeoutMillis: Int? = nil,
        outputDir: String? = nil,
        openlineageRun: String? = nil,
        tryNumber: Int? = nil,
        startUnknown: Bool? = nil,
        sql: String? = nil,
        durationMillis: Int? = nil,
        error: String? = nil,
        reason: String? = nil,
        outputDigest: String? = nil,
        branch: BranchChoice? = nil,
        nextAttempt: Int? = nil,
        backoffMillis: Int? = nil,
        upstream: [String]? = nil,
        timedOut: Bool? = nil,
        cancelled: Bool? = nil,
        exitCode: Int? = nil,
        signal: Int? = nil,
        stdout: String? = nil,
        stderr: String? = nil,
        stdoutBytes: Int? = nil,
        stderrBytes: Int? = nil,
        files: [TaskFile]? = nil,
        argv: [String]? = nil,
        cwd: String? = nil,
        env: [String: String]? = nil,
        timeMicros: Int64? = nil
    ) {
        self.task = task
        self.attempt = attempt
        self.order = order
        self.slot = slot
        self.seed = seed
        self.timeoutMillis = timeoutMillis
        self.outputDir = outputDir
        self.openlineageRun = openlineageRun
        self.tryNumber = tryNumber
        self.startUnknown = startUnknown
        self.sql = sql
        self.durationMillis = durationMillis
        self.error = error
        self.reason = reason
        self.outputDigest = outputDigest
        self.branch = branch
        self.nextAttempt = nextAttempt
        self.backoffMillis = backoffMillis
        self.upstream = upstream
        self.timedOut = timedOut
        self.cancelled = cancelled
        self.exitCode = exitCode
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.files = files
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.timeMicros = timeMicros
    }
}

/// A branch's choice: the chosen tasks (a list; early ledgers wrote one string).
public struct BranchChoice: Codable, Sendable, Equatable {
    public var tasks: [String]
    /// The chosen tasks joined by ", ".
    public var text: String { tasks.joined(separator: ", ") }

    public init(_ tasks: [String]) { self.tasks = tasks }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let list = try? c.decode([String].self) { tasks = list } else { tasks = [try c.decode(String.self)] }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(tasks)
    }
}

/// A file a command task wrote into its output directory.
public struct TaskFile: Codable, Sendable, Hashable {
    /// Relative to the output directory.
    public var path: String
    public var sha256: String
    public var bytes: Int64

    public init(path: String, sha256: String, bytes: Int64) {
        self.path = path
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// `variable.recorded` (a named value inside a task, at a step) and `value.produced` (a task's output).
public struct ValueEvent: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.variableRecorded, EventType.valueProduced]
    public var task: String
    public var attempt: Int?
    /// `variable.recorded`: the step, the variable's name and kind (variable, now, side_effect, rows, metric).
    public var step: Int?
    public var name: String?
    public var kind: String?
    /// SHA-256 of the value's canonical JSON, its type, its length when a collection.
    public var digest: String
    public var valueType: String?
    public var rows: Int?
    /// The value inline (≤ 512 bytes), else its size (the value is then in `value/<digest>`).
    public var value: JSONFragment?
    public var bytes: Int?
    public var timeMicros: Int64?
    /// `variable.recorded`: the source line that made the step (`file:line`), when the task said.
    public var source: String?
    /// `variable.recorded`: how many times the variable changed at that line, when a loop was
    /// summarized (the step holds its last value; the first few are steps of their own).
    public var count: Int?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case task, attempt, step, name, kind, digest, valueType = "value_type", rows, value, bytes, timeMicros = "time_us", source, count
    }

    public init(
        task: String,
        attempt: Int? = nil,
        step: Int? = nil,
        name: String? = nil,
        kind: String? = nil,
        digest: String,
        valueType: String? = nil,
        rows: Int? = nil,
        value: JSONFragment? = nil,
        bytes: Int? = nil,
        timeMicros: Int64? = nil
    ) {
        self.task = task
        self.attempt = attempt
        self.step = step
        self.name = name
        self.kind = kind
        self.digest = digest
        self.valueType = valueType
        self.rows = rows
        self.value = value
        self.bytes = bytes
        self.timeMicros = timeMicros
    }
}

/// `value.consumed`: a task read an upstream task's output or a dataset's chunk.
public struct ValueConsumed: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.valueConsumed]
    public var task: String
    public var attempt: Int?
    public var fromTask: String?
    public var dataset: String?
    public var chunk: String?
    public var digest: String?
    public var location: String?
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case task, attempt, fromTask = "from_task", dataset, chunk, digest, location, timeMicros = "time_us"
    }

    public init(
        task: String,
        attempt: Int? = nil,
        fromTask: String? = nil,
        dataset: String? = nil,
        chunk: String? = nil,
        digest: String? = nil,
        location: String? = nil,
        timeMicros: Int64? = nil
    ) {
        self.task = task
        self.attempt = attempt
        self.fromTask = fromTask
        self.dataset = dataset
        self.chunk = chunk
        self.digest = digest
        self.location = location
        self.timeMicros = timeMicros
    }
}

/// `expectation.evaluated`: a check on a task's output or a dataset (a dbt test, a data-quality assertion).
public struct ExpectationEvaluated: ProducerTimed, Equatable {
    public static let eventTypes = [EventType.expectationEvaluated]
    public var task: String
    public var attempt: Int?
    public var name: String
    public var passed: Bool
    public var message: String?
    public var timeMicros: Int64?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case task, attempt, name, passed, message, timeMicros = "time_us"
    }

    public init(
        task: String,
        attempt: Int? = nil,
        name: String,
        passed: Bool,
        message: String? = nil,
        timeMicros: Int64? = nil
    ) {
        self.task = task
        self.attempt = attempt
        self.name = name
        self.passed = passed
        self.message = message
        self.timeMicros = timeMicros
    }
}

/// `question.answered`: the five questions about a chunk a task is about to read.
public struct QuestionAnswered: EventPayload, Equatable {
    public static let eventTypes = [EventType.questionAnswered]
    public var task: String?
    public var attempt: Int?
    public var dataset: String?
    public var chunk: String?
    /// Each `{"answer", "evidence"}`.
    public var ready: QuestionAnswer?
    public var right: QuestionAnswer?
    public var location: QuestionAnswer?
    public var validated: QuestionAnswer?
    public var safe: QuestionAnswer?
    public var allYes: Bool?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case task, attempt, dataset, chunk, ready, right, location, validated, safe, allYes = "all_yes"
    }

    public init(
        task: String? = nil,
        attempt: Int? = nil,
        dataset: String? = nil,
        chunk: String? = nil,
        ready: QuestionAnswer? = nil,
        right: QuestionAnswer? = nil,
        location: QuestionAnswer? = nil,
        validated: QuestionAnswer? = nil,
        safe: QuestionAnswer? = nil,
        allYes: Bool? = nil
    ) {
        self.task = task
        self.attempt = attempt
        self.dataset = dataset
        self.chunk = chunk
        self.ready = ready
        self.right = right
        self.location = location
        self.validated = validated
        self.safe = safe
        self.allYes = allYes
    }
}

/// One of the five answers: yes or no, and the evidence (a bare `true`/`false` in early ledgers).
public struct QuestionAnswer: Codable, Sendable, Hashable {
    public var answer: Bool
    public var evidence: String?

    public init(answer: Bool, evidence: String?) {
        self.answer = answer
        self.evidence = evidence
    }

    enum CodingKeys: String, CodingKey { case answer, evidence }

    public init(from decoder: any Decoder) throws {
        if let yes = try? decoder.singleValueContainer().decode(Bool.self) {
            self.init(answer: yes, evidence: nil)
        } else {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(answer: try c.decode(Bool.self, forKey: .answer), evidence: try c.decodeIfPresent(String.self, forKey: .evidence))
        }
    }
}

/// `dag.triggered`: a task started a run of another DAG.
public struct DAGTriggered: EventPayload, Equatable {
    public static let eventTypes = [EventType.dagTriggered]
    public var task: String
    public var attempt: Int?
    public var childDAG: String
    public var childRun: String
    public var params: [String: String]?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case task, attempt, childDAG = "child_dag", childRun = "child_run", params
    }

    public init(
        task: String,
        attempt: Int? = nil,
        childDAG: String,
        childRun: String,
        params: [String: String]? = nil
    ) {
        self.task = task
        self.attempt = attempt
        self.childDAG = childDAG
        self.childRun = childRun
        self.params = params
    }
}

/// `value.stored`: a content-addressed value too large to sit inline in the event that names it.
public struct ValueStored: EventPayload, Equatable {
    public static let eventTypes = [EventType.valueStored]
    public var digest: String
    public var valueType: String?
    public var value: JSONFragment?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case digest, valueType = "value_type", value
    }

    public init(digest: String, valueType: String? = nil, value: JSONFragment? = nil) {
        self.digest = digest
        self.valueType = valueType
        self.value = value
    }
}

/// `lineage.quarantined`: what `clew impact --quarantine` marked suspect.
public struct LineageQuarantined: EventPayload, Equatable {
    public static let eventTypes = [EventType.lineageQuarantined]
    public var quarantine: String
    /// The lineage node the suspicion started from.
    public var source: String?
    public var reason: String?
    public var chunks: [String]?
    public var values: [String]?
    public var runs: [String]?
    /// `DAG/RUN` → tasks to run again.
    public var rebuild: [String: [String]]?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case quarantine, source, reason, chunks, values, runs, rebuild
    }

    public init(
        quarantine: String,
        source: String? = nil,
        reason: String? = nil,
        chunks: [String]? = nil,
        values: [String]? = nil,
        runs: [String]? = nil,
        rebuild: [String: [String]]? = nil
    ) {
        self.quarantine = quarantine
        self.source = source
        self.reason = reason
        self.chunks = chunks
        self.values = values
        self.runs = runs
        self.rebuild = rebuild
    }
}

/// `openlineage.received`: an OpenLineage event accepted by `clew serve`, kept whole.
public struct OpenLineageReceived: EventPayload, Equatable {
    public static let eventTypes = [EventType.openLineageReceived]
    /// SHA-256 of the event's canonical JSON: what makes a retry a duplicate.
    public var digest: String
    public var event: JSONTree

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case digest, event
    }

    public init(digest: String, event: JSONTree) {
        self.digest = digest
        self.event = event
    }
}

/// `auth.token_created`: an API token minted (only its SHA-256 is kept).
public struct TokenCreated: EventPayload, Equatable {
    public static let eventTypes = [EventType.tokenCreated]
    public var id: String
    public var name: String?
    public var role: String?
    public var sha256: String?
    public var createdBy: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name, role, sha256, createdBy = "created_by"
    }

    public init(id: String, name: String, role: String, sha256: String, createdBy: String) {
        self.id = id
        self.name = name
        self.role = role
        self.sha256 = sha256
        self.createdBy = createdBy
    }
}

/// `auth.token_revoked`.
public struct TokenRevoked: EventPayload, Equatable {
    public static let eventTypes = [EventType.tokenRevoked]
    public var id: String
    public var revokedBy: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case id, revokedBy = "revoked_by"
    }

    public init(id: String, revokedBy: String) {
        self.id = id
        self.revokedBy = revokedBy
    }
}

/// `audit.recorded`: a mutating HTTP call, who made it, from where, and how it ended.
public struct AuditRecorded: EventPayload, Equatable {
    public static let eventTypes = [EventType.auditRecorded]
    public var from: String?
    public var method: String?
    public var path: String?
    public var action: String?
    public var outcome: String?
    public var token: String?
    public var name: String?
    public var role: String?
    public var target: String?
    public var detail: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case from, method, path, action, outcome, token, name, role, target, detail
    }

    public init(
        token: String?, name: String?, role: String?, from: String, method: String, path: String, action: String, target: String?,
        outcome: String, detail: String? = nil
    ) {
        self.token = token
        self.name = name
        self.role = role
        self.from = from
        self.method = method
        self.path = path
        self.action = action
        self.target = target
        self.outcome = outcome
        self.detail = detail
    }
}

/// `ledger.migrated`: the bridge from a ledger's old format, written last by `clew migrate` so the
/// events keep their seqs. The old checkpoints stay checkable against `old_root`: each was verified
/// against the old log's recomputed root before anything was copied.
public struct LedgerMigrated: EventPayload, Equatable {
    public static let eventTypes = [EventType.ledgerMigrated]
    public var oldLedger: String
    public var oldFormat: Int
    public var newFormat: Int
    public var oldTreeSize: UInt64
    public var oldRoot: String
    /// The old log's signed checkpoints, as stored (`origin`, `tree_size`, `root_hash`, `time`, `key_id`,
    /// `public_key`, `signature`).
    public var oldCheckpoints: JSONTree?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case oldLedger = "old_ledger", oldFormat = "old_format", newFormat = "new_format", oldTreeSize = "old_tree_size"
        case oldRoot = "old_root", oldCheckpoints = "old_checkpoints"
    }

    public init(oldLedger: String, oldFormat: Int, newFormat: Int, oldTreeSize: UInt64, oldRoot: String, oldCheckpoints: JSONTree?) {
        self.oldLedger = oldLedger
        self.oldFormat = oldFormat
        self.newFormat = newFormat
        self.oldTreeSize = oldTreeSize
        self.oldRoot = oldRoot
        self.oldCheckpoints = oldCheckpoints
    }
}

/// `ledger.payloads_erased`: payloads removed from the log on request (`clew erase`). The events stay,
/// with their envelopes and payload digests, so every proof holds; written before the payloads go.
public struct PayloadsErased: EventPayload, Equatable {
    public static let eventTypes = [EventType.payloadsErased]
    /// The events whose payloads are removed.
    public var seqs: [UInt64]
    /// The stream they were chosen by, when they were.
    public var stream: String?
    /// Why (an erasure request's reference, a retention rule).
    public var reason: String

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case seqs, stream, reason
    }

    public init(seqs: [UInt64], stream: String?, reason: String) {
        self.seqs = seqs
        self.stream = stream
        self.reason = reason
    }
}

extension ChunkChange: EventPayload {
    public static let eventTypes = [EventType.chunkStatusChanged]
}

extension ChunkLease: EventPayload {
    public static let eventTypes = [EventType.chunkLeaseAcquired, EventType.chunkLeaseReleased]
}

extension DatasetDescription: EventPayload {
    public static let eventTypes = [EventType.datasetDescribed]
}

/// `variable.set` / `variable.deleted` (stream `variables`): an operator's Variable. A set carries
/// either `value` or, always for a secret-looking key, `reference` (`env:NAME` or `file:PATH`, read by the
/// process that runs the task), never a secret in clear.
public struct VariableChanged: EventPayload, Equatable {
    public static let eventTypes = [EventType.variableSet, EventType.variableDeleted]
    public var key: String
    public var value: String?
    public var reference: String?
    public var description: String?
    /// Why (free text, as given).
    public var reason: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case key, value, reference, description, reason
    }

    public init(key: String, value: String? = nil, reference: String? = nil, description: String? = nil, reason: String? = nil) {
        self.key = key
        self.value = value
        self.reference = reference
        self.description = description
        self.reason = reason
    }
}

/// `connection.set` / `connection.deleted` (stream `connections`): an operator's Connection. The
/// password is only ever a reference (`env:NAME`, `file:PATH`), read where the task runs.
public struct ConnectionChanged: EventPayload, Equatable {
    public static let eventTypes = [EventType.connectionSet, EventType.connectionDeleted]
    public var id: String
    /// What it is (`postgres`, `s3`, `http` …), free text.
    public var type: String?
    /// One or several hosts; a task is given one at random.
    public var hosts: [String]?
    public var port: Int?
    public var schema: String?
    public var login: String?
    public var passwordReference: String?
    public var extra: [String: String]?
    public var description: String?
    public var reason: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case id, type, hosts, port, schema, login, passwordReference = "password_ref", extra, description, reason
    }

    public init(
        id: String, type: String? = nil, hosts: [String]? = nil, port: Int? = nil, schema: String? = nil, login: String? = nil,
        passwordReference: String? = nil, extra: [String: String]? = nil, description: String? = nil, reason: String? = nil
    ) {
        self.id = id
        self.type = type
        self.hosts = hosts
        self.port = port
        self.schema = schema
        self.login = login
        self.passwordReference = passwordReference
        self.extra = extra
        self.description = description
        self.reason = reason
    }
}

/// Every event type Clew writes, with the type of its payload.


public enum EventSchema {
    /// The payload types, one per event type or family of types.
    public static let payloads: [any EventPayload.Type] = [
        DAGRegistered.self, RunQueued.self, RunStarted.self, RunLabelled.self, RunResubmitted.self, RunEnded.self,
        RunImported.self, RunCallback.self, TaskEvent.self, ValueEvent.self, ValueConsumed.self, ExpectationEvaluated.self,
        QuestionAnswered.self, DAGTriggered.self, ChunkChange.self, ChunkLease.self, DatasetDescription.self, ValueStored.self,
        LineageQuarantined.self, OpenLineageReceived.self, TokenCreated.self, TokenRevoked.self, AuditRecorded.self,
        LedgerMigrated.self, PayloadsErased.self, AttemptEvent.self, VariableChanged.self, ConnectionChanged.self,
        SLAMissed.self, AlertDelivery.self, AlertDefaults.self, AlertsRead.self, PoolChanged.self, PoolSlotEvent.self, CulpritFound.self,
    ]

    /// The payload type of an event type (nil for a type Clew does not write).
    public static func payload(of eventType: String) -> (any EventPayload.Type)? {
        byType[eventType]
    }

    private static let byType: [String: any EventPayload.Type] = {
        var out: [String: any EventPayload.Type] = [:]
        for p in payloads { for t in p.eventTypes { out[t] = p } }
        return out
    }()
}

extension EventSchema {
    /// What is wrong with `payload` as the payload of an event of `type`: it is not a JSON object, it
    /// does not decode as the type's payload, or it has fields the schema does not declare. Empty when it
    /// conforms, and for types Clew does not write (the ledger accepts any type).
    public static func problems(type: String, payload: Data) -> [String] {
        guard let schema = Self.payload(of: type) else { return [] }
        guard case .object(let members)? = try? JSONTree.parse(payload) else { return ["\(type): the payload is not a JSON object"] }
        var out: [String] = []
        let known = Set(schema.fieldNames)
        for name in members.keys.sorted() where !known.contains(name) {
            out.append("\(type): field '\(name)' is not in the schema of \(schema)")
        }
        do { _ = try JSONDecoder().decode(schema, from: payload) } catch {
            out.append("\(type): does not decode as \(schema): \(error)")
        }
        return out
    }
}

/// A task attempt run by a worker: `attempt.queued` (stream `queue/<queue>`) and its claim, heartbeats,
/// end or expiry (stream `attempt/<dag>/<run>/<task>/<attempt>`).
public struct AttemptEvent: EventPayload, Equatable {
    public static let eventTypes = [
        EventType.attemptQueued, EventType.attemptClaimed, EventType.attemptHeartbeat, EventType.attemptCompleted, EventType.attemptExpired,
    ]
    public var dag: String
    public var run: String
    public var task: String
    public var attempt: Int
    /// `attempt.queued`: the queue, the DAG version the attempt must run, the run's params (secrets
    /// redacted: a worker takes them from its environment), its partition, the upstream outputs it
    /// reads (task → digest), and the lease a worker holds it under.
    public var queue: String?
    public var dagVersion: String?
    public var params: [String: String]?
    public var partition: String?
    public var intervalStart: String?
    public var intervalEnd: String?
    public var inputs: [String: String]?
    public var leaseMillis: Int?
    /// The worker that claimed it (`host:pid`, or the name it was given), and where it runs.
    public var worker: String?
    public var host: String?
    public var pid: Int?
    /// `attempt.completed`: succeeded, failed, blocked, skipped or cancelled; why; the output's digest and
    /// the tasks a branch chose.
    public var result: String?
    public var error: String?
    public var outputDigest: String?
    public var branch: [String]?
    /// `attempt.expired`: why (no heartbeat within the lease, the run cancelled) and who expired it.
    public var reason: String?
    public var by: String?

    public init(dag: String, run: String, task: String, attempt: Int) {
        self.dag = dag
        self.run = run
        self.task = task
        self.attempt = attempt
    }

    /// The stream of this attempt's claim, heartbeats and end.
    public var stream: String { StreamID.attempt(dag: dag, run: run, task: task, attempt: attempt) }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dag, run, task, attempt, queue, dagVersion = "dag_version", params, partition, intervalStart = "interval_start"
        case intervalEnd = "interval_end", inputs, leaseMillis = "lease_ms", worker, host, pid, result, error
        case outputDigest = "output_digest", branch, reason, by
    }
}
