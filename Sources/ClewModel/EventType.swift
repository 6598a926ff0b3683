/// The event types Clew's engine records, with the payload fields each carries (docs/event-schema.md).
///
/// The ledger accepts any type string; these are the ones Clew's own components write and read.
public enum EventType {
    public static let dagRegistered = "dag.registered"
    public static let runQueued = "run.queued"
    /// A run bundle from another ledger was imported (origin ledger, root, counts).
    public static let runImported = "run.imported"
    public static let runStarted = "run.started"
    public static let runSucceeded = "run.succeeded"
    public static let runFailed = "run.failed"
    public static let runCancelled = "run.cancelled"
    public static let taskScheduled = "task.scheduled"
    public static let taskStarted = "task.started"
    public static let taskSucceeded = "task.succeeded"
    public static let taskFailed = "task.failed"
    public static let taskRetrying = "task.retrying"
    public static let taskSkipped = "task.skipped"
    public static let taskUpstreamFailed = "task.upstream_failed"
    public static let chunkStatusChanged = "chunk.status_changed"
    /// A dataset's columns and column lineage as a producer described them (``DatasetDescription``).
    public static let datasetDescribed = "dataset.described"
    public static let variableRecorded = "variable.recorded"
    public static let valueProduced = "value.produced"
    public static let valueConsumed = "value.consumed"
    public static let questionAnswered = "question.answered"
    public static let runResubmitted = "run.resubmitted"
    public static let taskBlocked = "task.blocked"
    public static let chunkLeaseAcquired = "chunk.lease_acquired"
    public static let chunkLeaseReleased = "chunk.lease_released"
    public static let valueStored = "value.stored"
    public static let expectationEvaluated = "expectation.evaluated"
    public static let dagTriggered = "dag.triggered"
    /// What `clew impact --quarantine` marked suspect (stream `quarantine/<id>`).
    public static let lineageQuarantined = "lineage.quarantined"
    /// An OpenLineage event accepted by `clew serve` (stream `openlineage/<runId>`): its digest and body.
    public static let openLineageReceived = "openlineage.received"
    /// A producer's own id for a run seen for the first time after the run was queued (Airflow 3 gives each
    /// `dags test` of a logical date a new `run_id`): `external_id`.
    public static let runLabelled = "run.labelled"
    /// A run's outcome posted (or not) to the callback URL given when it was triggered over HTTP.
    public static let runCallback = "run.callback"
    /// An API token minted or revoked (stream `auth/tokens`); only the token's SHA-256 is kept.
    public static let tokenCreated = "auth.token_created"
    public static let tokenRevoked = "auth.token_revoked"
    /// A mutating HTTP call: who, from where, what, and how it ended (stream `audit`).
    public static let auditRecorded = "audit.recorded"

    /// The last event of a ledger converted by `clew migrate` (stream `ledger`): the old log's id, format,
    /// size, root and signed checkpoints.
    public static let ledgerMigrated = "ledger.migrated"

    /// Payloads removed by `clew erase` (stream `ledger`): which events, why; the actor says who.
    public static let payloadsErased = "ledger.payloads_erased"

    /// A task attempt queued for workers (stream `queue/<queue>`), and its life on a worker (stream
    /// `attempt/<dag>/<run>/<task>/<attempt>`): claimed under a lease, kept by heartbeats, completed, or
    /// expired by the run's coordinator when the heartbeats stopped (docs/cluster.md).
    public static let attemptQueued = "attempt.queued"
    public static let attemptClaimed = "attempt.claimed"
    public static let attemptHeartbeat = "attempt.heartbeat"
    public static let attemptCompleted = "attempt.completed"
    public static let attemptExpired = "attempt.expired"

    /// An operator's Variable (a key-value setting tasks read) set or deleted (stream `variables`): its
    /// value, or for a secret-looking key only a reference (`env:NAME`, `file:PATH`); the actor says who.
    /// A task's read of one is a step of kind `variable_read` in its run (docs/operations.md).
    public static let variableSet = "variable.set"
    public static let variableDeleted = "variable.deleted"
    /// An operator's Connection (a system tasks connect to: one or several hosts, port, schema, login,
    /// extra) set or deleted (stream `connections`); its password only ever by reference. A task's use of
    /// one is a step of kind `connection_read` naming the host it was given.
    public static let connectionSet = "connection.set"
    public static let connectionDeleted = "connection.deleted"
    /// A task or a run passed its SLA (stream of the run): which tasks, the deadline, by how much, and
    /// who saw it (the run itself, or the scheduler for a run whose process is gone).
    public static let slaMissed = "sla.missed"
    /// An alert sent (or given up after its retries) to one webhook or one set of e-mail addresses
    /// (stream `alerts`), naming the event it is about.
    public static let alertDelivered = "alert.delivered"
    public static let alertFailed = "alert.failed"
    /// Where the alerts of every DAG go, and over which SMTP connection (stream `alerts/config`).
    public static let alertsConfigured = "alerts.configured"
    /// How far the alerter read the log without finding anything to send (stream `alerts`), written when it
    /// stops, so the next one starts there.
    public static let alertsRead = "alerts.read"
    /// A pool (a named number of slots shared by every run, process and host) set or deleted (stream `pools`).
    public static let poolSet = "pool.set"
    public static let poolDeleted = "pool.deleted"
    /// A task attempt's life in a pool (stream `pool/<name>`): waiting for slots (in priority order), holding
    /// them, and giving them back.
    public static let poolWaiting = "pool.waiting"
    public static let poolAcquired = "pool.acquired"
    public static let poolReleased = "pool.released"
    /// A task attempt waiting for pool slots (stream of the run): the view shows it `queued (pool)`.
    public static let taskQueued = "task.queued"
    /// Task actions by an operator (stream of the run; the actor and `by` say who, `reason` why): a task
    /// cleared to run again with every task after it (a resubmit follows), or its state set by hand.
    public static let taskCleared = "task.cleared"
    public static let taskMarkedSuccess = "task.marked_success"
    public static let taskMarkedFailed = "task.marked_failed"
    /// The culprit `clew culprit --record` found for a target (stream `culprits`): alerted to the DAG of
    /// the attempt it names (rule `culprit`).
    public static let culpritFound = "culprit.found"

    /// Every type above.
    public static let all: [String] = [
        dagRegistered, runQueued, runStarted, runSucceeded, runFailed, runCancelled, taskScheduled, taskStarted,
        taskSucceeded, taskFailed, taskRetrying, taskSkipped, taskUpstreamFailed, chunkStatusChanged,
        variableRecorded, valueProduced, valueConsumed, questionAnswered, runResubmitted, taskBlocked,
        chunkLeaseAcquired, chunkLeaseReleased, valueStored, expectationEvaluated, dagTriggered, runImported,
        lineageQuarantined, openLineageReceived, runCallback, tokenCreated, tokenRevoked, auditRecorded, runLabelled,
        datasetDescribed, ledgerMigrated, payloadsErased, attemptQueued, attemptClaimed, attemptHeartbeat,
        attemptCompleted, attemptExpired, variableSet, variableDeleted, connectionSet, connectionDeleted,
        slaMissed, alertDelivered, alertFailed, alertsConfigured, alertsRead, poolSet, poolDeleted, poolWaiting, poolAcquired,
        poolReleased, taskQueued, taskCleared, taskMarkedSuccess, taskMarkedFailed, culpritFound,
    ]
}

/// Stream ids: events of a DAG run go to `run/<dag>/<run id>`, DAG definitions to `dag/<dag>`, chunk
/// changes to `dataset/<name>`, stored values to `value/<sha256>`.
public enum StreamID {
    public static func run(dag: String, run: String) -> String { "run/\(dag)/\(run)" }
    public static func dag(_ dag: String) -> String { "dag/\(dag)" }
    /// Chunk status changes and leases of a dataset.
    public static func dataset(_ name: String) -> String { "dataset/\(name)" }
    /// The one `value.stored` event holding a content-addressed value.
    public static func value(_ digest: String) -> String { "value/\(digest)" }
    /// The attempts queued for the workers of a queue.
    public static func queue(_ name: String) -> String { "queue/\(name)" }
    /// One queued attempt's claim, heartbeats and end: the stream its lease is fenced on.
    public static func attempt(dag: String, run: String, task: String, attempt: Int) -> String { "attempt/\(dag)/\(run)/\(task)/\(attempt)" }
    /// Every Variable's sets and deletes, in order.
    public static let variables = "variables"
    /// Every Connection's sets and deletes, in order.
    public static let connections = "connections"
    /// Every alert delivery, in order, and where the alerter stopped reading.
    public static let alerts = "alerts"
    /// The alert defaults, latest last.
    public static let alertsConfig = "alerts/config"
    /// Culprits recorded by `clew culprit --record`.
    public static let culprits = "culprits"
    /// Every pool's sets and deletes, in order.
    public static let pools = "pools"
    /// Who waits for, holds and gives back the slots of one pool.
    public static func pool(_ name: String) -> String { "pool/\(name)" }
}

/// Chunk life cycle states (driven only by events).
public enum ChunkStatus: String, Sendable, CaseIterable, Codable {
    case pending, producing, ready, consuming, consumed, failed, invalid, resubmitted
}
