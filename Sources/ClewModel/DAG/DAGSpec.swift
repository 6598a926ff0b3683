public import Foundation

/// The one DAG model both front doors compile to: the Swift DSL and pipeline files.
///
/// A spec is pure data (no closures), so it can be hashed, recorded in `dag.registered` and compared.
/// Its ``version`` names the exact definition a run executed.
public struct DAGSpec: Sendable, Hashable, Codable {
    /// DAG id: letters, digits, `_`, `-`, `.`; at most 100 bytes.
    public var name: String
    public var description: String
    public var tasks: [TaskSpec]
    /// Default run params ("conf"); `--param k=v` overrides them.
    public var params: [String: String]
    /// Datasets this DAG produces or consumes, with how they are partitioned.
    public var datasets: [DatasetSpec]
    /// When the scheduler runs it (nil: only manually or by trigger).
    public var schedule: ScheduleSpec?
    /// First partition the scheduler considers, microseconds since the epoch.
    public var startMicros: Int64?
    /// Whether the scheduler runs missed partitions (catch-up) or only the latest.
    public var catchup: Bool
    /// How many tasks of one run may run at once.
    public var maxActiveTasks: Int
    /// Where the definition came from: a pipeline file path or a Swift `file:line`.
    public var origin: String
    /// SHA-256 (hex) of the source text the DAG was read from and of the scripts it runs, when available.
    public var sourceDigest: String?
    /// How long a run may take from its first start to its end before the miss is recorded (`sla.missed`)
    /// and alerted; nil for none. Absent from the canonical JSON when nil, so versions stay as they were.
    public var slaMillis: Int?
    /// Where this DAG's alerts go (in addition to the defaults of `clew alerts defaults`).
    public var alerts: AlertSpec?

    public init(
        name: String, description: String = "", tasks: [TaskSpec], params: [String: String] = [:],
        datasets: [DatasetSpec] = [], schedule: ScheduleSpec? = nil, startMicros: Int64? = nil, catchup: Bool = false,
        maxActiveTasks: Int = 8, origin: String = "", sourceDigest: String? = nil
    ) {
        self.name = name
        self.description = description
        self.tasks = tasks
        self.params = params
        self.datasets = datasets
        self.schedule = schedule
        self.startMicros = startMicros
        self.catchup = catchup
        self.maxActiveTasks = maxActiveTasks
        self.origin = origin
        self.sourceDigest = sourceDigest
    }

    /// Why `given` cannot be a run's params: the names this DAG does not declare, as in
    /// `params: colour not declared by DAG 'orders' (declared: rows, threshold)`; nil when it declares every one.
    /// The engine refuses such a run (every front door: `clew run`, the scheduler, the API, a trigger task),
    /// so a misspelt param is an error, not a value no task ever reads.
    public func paramsProblem(_ given: [String: String]) -> String? {
        let unknown = Set(given.keys).subtracting(params.keys)
        guard !unknown.isEmpty else { return nil }
        let declared = params.isEmpty ? "it declares none" : "declared: \(params.keys.sorted().joined(separator: ", "))"
        return "params: \(unknown.sorted().joined(separator: ", ")) not declared by DAG '\(name)' (\(declared))"
    }

    /// Canonical JSON of the definition (sorted keys), secret-looking params and command environment

    /// variables redacted: what is hashed and recorded.
    public var canonicalJSON: Data {
        var copy = self
        copy.params = Redaction.redact(params: params)
        for i in copy.tasks.indices {
            if let env = copy.tasks[i].command?.environment { copy.tasks[i].command?.environment = Redaction.redact(params: env) }
            if let p = copy.tasks[i].trigger?.params { copy.tasks[i].trigger?.params = Redaction.redact(params: p) }
        }
        return (try? JSON.canonical(copy)) ?? Data()
    }

    /// The definition hash: SHA-256 of ``canonicalJSON`` (which includes ``sourceDigest``), first 16 hex digits.
    public var version: String {
        String(ContentDigest.sha256(canonicalJSON).prefix(16))
    }

    public func task(_ id: String) -> TaskSpec? { tasks.first { $0.id == id } }
    public func dataset(_ name: String) -> DatasetSpec? { datasets.first { $0.name == name } }
}

/// One task of a DAG.
public struct TaskSpec: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// A Swift closure over a `TaskContext`.
        case swift
        /// A Swift closure that chooses which children run.
        case branch
        /// An executable run with the engine's environment and line protocol.
        case command
        /// Triggers a run of another DAG.
        case trigger
    }

    public var id: String
    public var kind: Kind
    /// Parent task ids: this task runs after them and receives their outputs as inputs.
    public var upstream: [String]
    public var rule: TriggerRule
    /// Extra attempts after a failure.
    public var retries: Int
    /// Backoff before the first retry, doubled each time (capped at 10 minutes).
    public var retryDelayMillis: Int
    /// Per-attempt time limit; the task is stopped (its process group killed) when it passes.
    public var timeoutMillis: Int?
    /// By when, counted from the run's first start, the task should have succeeded (or been skipped);
    /// passing it records `sla.missed`, the run goes on. Nil for none.
    public var slaMillis: Int?
    /// The pool whose slots each attempt takes while it runs (waiting `queued (pool)` until they are free).
    public var pool: String?
    /// How many of the pool's slots an attempt takes (default 1).
    public var poolSlots: Int?
    /// Among the attempts waiting for a pool, higher goes first (default 1; Airflow's priority_weight).
    public var priorityWeight: Int?
    public var command: CommandSpec?
    public var trigger: TriggerSpec?
    /// Chunks read; the five questions are answered for each before the task starts.
    public var consumes: [ChunkRef]
    /// Chunks written; their status follows the task's attempts.
    public var produces: [ChunkRef]
    /// Line in the pipeline file, when it came from one.
    public var line: Int?

    public init(
        id: String, kind: Kind = .swift, upstream: [String] = [], rule: TriggerRule = .allSuccess, retries: Int = 0,
        retryDelayMillis: Int = 1_000, timeoutMillis: Int? = nil, command: CommandSpec? = nil,
        trigger: TriggerSpec? = nil, consumes: [ChunkRef] = [], produces: [ChunkRef] = [], line: Int? = nil
    ) {
        self.id = id
        self.kind = kind
        self.upstream = upstream
        self.rule = rule
        self.retries = retries
        self.retryDelayMillis = retryDelayMillis
        self.timeoutMillis = timeoutMillis
        self.command = command
        self.trigger = trigger
        self.consumes = consumes
        self.produces = produces
        self.line = line
    }
}

/// When a task runs, given its parents' final states (Airflow's trigger rules).
public enum TriggerRule: String, Sendable, Hashable, Codable, CaseIterable {
    /// Every parent succeeded (default). A failed parent makes it upstream_failed; a skipped one skips it.
    case allSuccess = "all_success"
    /// No parent failed; skipped parents are fine (a join after a branch).
    case noneFailed = "none_failed"
    /// At least one parent succeeded.
    case oneSuccess = "one_success"
    /// Every parent finished, whatever its state (clean-up tasks).
    case allDone = "all_done"
}

/// An executable and its arguments.
public struct CommandSpec: Sendable, Hashable, Codable {
    /// Program and arguments; a single string is run by `/bin/sh -c`.
    public var argv: [String]
    /// Extra environment variables.
    public var environment: [String: String]
    /// Working directory (default: the pipeline file's directory).
    public var workingDirectory: String?
    /// Whether the command chooses the children that run (`::branch::a,b`).
    public var isBranch: Bool
    /// Operator Variables the command reads: each is read (a recorded step) when the attempt starts and
    /// given to it as `CLEW_VAR_<KEY>`. Nil (not encoded) when none, so older definitions keep their version.
    public var variables: [String]?
    /// Operator Connections the command uses: each is resolved (one host picked, a recorded step) when the
    /// attempt starts and given as `CLEW_CONN_<ID>_HOST`, `_PORT`, … Nil (not encoded) when none.
    public var connections: [String]?

    public init(
        argv: [String], environment: [String: String] = [:], workingDirectory: String? = nil, isBranch: Bool = false, variables: [String]? = nil,
        connections: [String]? = nil
    ) {
        self.argv = argv
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.isBranch = isBranch
        self.variables = variables
        self.connections = connections
    }


}

/// A run of another DAG started by a task.
public struct TriggerSpec: Sendable, Hashable, Codable {
    public var dag: String
    /// Params for the child run; `{param}`, `{partition}` and `{run}` are substituted.
    public var params: [String: String]
    /// Run the child only when this param of the parent run equals this value (`key=value`), if set.
    public var when: String?
    /// Whether the task waits for the child run and fails when it fails.
    public var wait: Bool

    public init(dag: String, params: [String: String] = [:], when: String? = nil, wait: Bool = true) {
        self.dag = dag
        self.params = params
        self.when = when
        self.wait = wait
    }
}

/// A chunk a task reads or writes: a dataset and a key template.
///
/// The template may use `{partition}` (the run's partition key), `{run}`, `{param.NAME}` and, for ranges,
/// `{i}`; `path` is where a command writes the chunk, relative to its output directory.
public struct ChunkRef: Sendable, Hashable, Codable {
    public var dataset: String
    public var key: String
    public var path: String?

    public init(dataset: String, key: String = "{partition}", path: String? = nil) {
        self.dataset = dataset
        self.key = key
        self.path = path
    }
}
