public import ClewModel
import Foundation

/// A pipeline: tasks and the edges between them, as Swift code or compiled from a pipeline file.
///
/// ```swift
/// let dag = DAG("numbers", schedule: "@hourly") {
///     Op("source") { ctx in [1.0, 2.0, 3.0] }
///     Op("double", after: "source") { ctx in try ctx.input("source", as: [Double].self).map { $0 * 2 } }
///     Branch("route", after: "double") { ctx in ctx.param("mode") == "fast" ? ["fast"] : ["slow"] }
///     Op("fast", after: "route") { ctx in ctx.record("path", "fast") }
///     Op("slow", after: "route") { ctx in ctx.record("path", "slow") }
/// }
/// ```
public struct DAG: Sendable {
    /// The data part of the definition: what is hashed, recorded and validated.
    public var spec: DAGSpec
    package let bodies: [String: TaskBody]
    /// Problems found while building the definition (bad cron, bad start date); reported by ``validate()``.
    var buildProblems: [DAGProblem]
    /// A pipeline file's text and its scripts, recorded with the version for the code view.
    package var sources: [SourceText] = []

    /// One source file as read: its path relative to the pipeline file's directory, text and SHA-256.
    package struct SourceText: Sendable {
        package var path: String
        package var text: String
        package var sha256: String
    }

    public var name: String { spec.name }
    public var version: String { spec.version }

    /// Declares a DAG in Swift.
    /// - Parameters:
    ///   - schedule: a cron expression, `@daily`-style macro or `every 15m`; nil for manual runs only.
    ///   - start: first partition the scheduler considers (`2026-11-01` or `2026-11-01T00:00Z`).
    ///   - catchup: whether the scheduler runs every missed partition or only the latest.
    ///   - params: default run params, overridden by `clew run --param k=v`.
    ///   - datasets: how the datasets the tasks read and write are partitioned.
    public init(
        _ name: String, description: String = "", schedule: String? = nil, start: String? = nil,
        catchup: Bool = false, params: [String: String] = [:], datasets: [DatasetSpec] = [], maxActiveTasks: Int = 8,
        fileID: String = #fileID, line: Int = #line, @DAGBuilder tasks: () -> [TaskNode]
    ) {
        var problems: [DAGProblem] = []
        var scheduleSpec: ScheduleSpec?
        if let schedule {
            do { scheduleSpec = try ScheduleSpec(parsing: schedule) } catch {
                problems.append(DAGProblem(dag: name, origin: "\(fileID):\(line)", message: "\(error)"))
            }
        }
        var startMicros: Int64?
        if let start {
            startMicros = PartitionKey.parse(start)
            if startMicros == nil {
                problems.append(DAGProblem(dag: name, origin: "\(fileID):\(line)", message: "start '\(start)' is not a UTC date (2026-11-01 or 2026-11-01T00:00Z)"))
            }
        }
        let nodes = tasks()
        self.spec = DAGSpec(
            name: name, description: description, tasks: nodes.map(\.spec), params: params, datasets: datasets,
            schedule: scheduleSpec, startMicros: startMicros, catchup: catchup, maxActiveTasks: maxActiveTasks,
            origin: "\(fileID):\(line)", sourceDigest: nil)
        self.bodies = Dictionary(nodes.map { ($0.spec.id, $0.body) }, uniquingKeysWith: { a, _ in a })
        self.buildProblems = problems
    }

    package init(spec: DAGSpec, bodies: [String: TaskBody]) {
        self.spec = spec
        self.bodies = bodies
        self.buildProblems = []
    }

    /// Checks the definition: ids, duplicates, unknown upstream tasks and datasets, cycles, limits.
    /// - Throws: ``DAGValidationError`` listing every problem, each naming the task (and file line).
    public func validate() throws {
        let problems = buildProblems + DAGValidator.problems(in: spec)
        if !problems.isEmpty { throw DAGValidationError(problems: problems) }
    }

    /// The tasks in an order where every task comes after its parents (definition order among equals).
    public var topologicalOrder: [TaskSpec] { DAGValidator.topologicalOrder(spec) ?? spec.tasks }

    /// How long a run may take from its first start before `sla.missed` is recorded and alerted (the run
    /// goes on): `DAG("orders") { … }.sla(.minutes(30))`.
    public func sla(_ limit: Duration) -> DAG {
        var copy = self
        copy.spec.slaMillis = Int(limit.milliseconds)
        return copy
    }

    /// Where this DAG's alerts go, besides the defaults (`clew alerts defaults`), and for which rules
    /// (nil: failure, sla_miss and quarantine). A bad URL or address is reported by ``validate()``.
    public func alerts(webhook: [String] = [], email: [String] = [], on rules: [AlertRule]? = nil) -> DAG {
        var copy = self
        copy.spec.alerts = AlertSpec(webhooks: webhook, emails: email, on: rules)
        return copy
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// The code behind a task.
package enum TaskBody: Sendable {
    case swift(@Sendable (TaskContext) async throws -> RecordedValue?)
    case branch(@Sendable (TaskContext) async throws -> [String])
    case command
    case trigger(condition: (@Sendable (TaskContext) async throws -> Bool)?)
}

/// One task of a DAG being declared: its spec and its code. Modifiers return a changed copy:
/// `Op("load") { … }.retries(3, delay: .seconds(2)).timeout(.seconds(30))`.
public struct TaskNode: Sendable, TaskDeclaration {
    public var spec: TaskSpec
    let body: TaskBody

    public var node: TaskNode { self }
}

/// Anything that declares a task inside a `DAG { }` body.
public protocol TaskDeclaration: Sendable {
    var node: TaskNode { get }
}

extension TaskDeclaration {
    /// Extra attempts after a failure, waiting `delay` before the first and doubling each time.
    public func retries(_ count: Int, delay: Duration = .seconds(1)) -> TaskNode {
        var n = node
        n.spec.retries = count
        n.spec.retryDelayMillis = Int(delay.milliseconds)
        return n
    }

    /// By when, counted from the run's first start, the task should have succeeded; passing it records
    /// `sla.missed` and alerts (the task goes on).
    public func sla(_ limit: Duration) -> TaskNode {
        var n = node
        n.spec.slaMillis = Int(limit.milliseconds)
        return n
    }

    /// Takes `slots` of pool `name` for each attempt (waiting, `queued (pool)`, while they are not free);
    /// among waiters, a higher `priority` goes first.
    public func pool(_ name: String, slots: Int = 1, priority: Int? = nil) -> TaskNode {
        var n = node
        n.spec.pool = name
        n.spec.poolSlots = slots == 1 ? nil : slots
        if let priority { n.spec.priorityWeight = priority }
        return n
    }

    /// Stops an attempt that runs longer than `limit` and counts it as failed (then retried, if retries remain).

    public func timeout(_ limit: Duration) -> TaskNode {
        var n = node
        n.spec.timeoutMillis = Int(limit.milliseconds)
        return n
    }

    /// Chunks the task reads: the five questions are answered for each before it starts.
    public func consumes(_ dataset: String, key: String = "{partition}") -> TaskNode {
        var n = node
        n.spec.consumes.append(ChunkRef(dataset: dataset, key: key))
        return n
    }

    /// A chunk the task writes; its status follows the task's attempts.
    public func produces(_ dataset: String, key: String = "{partition}") -> TaskNode {
        var n = node
        n.spec.produces.append(ChunkRef(dataset: dataset, key: key))
        return n
    }

    /// Adds parent tasks (for long or computed lists: `.after((0..<100).map { "load_\($0)" })`).
    public func after(_ ids: [String]) -> TaskNode {
        var n = node
        n.spec.upstream += ids
        return n
    }

    /// When the task runs given its parents' final states.
    public func rule(_ rule: TriggerRule) -> TaskNode {
        var n = node
        n.spec.rule = rule
        return n
    }
}

/// A task that runs a Swift closure; what the closure returns is the task's output, the input of each child.
public struct Op: TaskDeclaration {
    public let node: TaskNode

    public init<Output: Encodable & Sendable>(
        _ id: String, after upstream: String..., body: @escaping @Sendable (TaskContext) async throws -> Output
    ) {
        node = TaskNode(
            spec: TaskSpec(id: id, kind: .swift, upstream: upstream),
            body: .swift { ctx in try RecordedValue(try await body(ctx)) })
    }

    public init(_ id: String, after upstream: String..., body: @escaping @Sendable (TaskContext) async throws -> Void) {
        node = TaskNode(
            spec: TaskSpec(id: id, kind: .swift, upstream: upstream),
            body: .swift { ctx in
                try await body(ctx)
                return nil
            })
    }
}

/// A task that chooses which of its children run; the others are recorded as skipped.
public struct Branch: TaskDeclaration {
    public let node: TaskNode

    public init(_ id: String, after upstream: String..., choose: @escaping @Sendable (TaskContext) async throws -> [String]) {
        node = TaskNode(spec: TaskSpec(id: id, kind: .branch, upstream: upstream), body: .branch(choose))
    }
}

/// A task that runs an executable (see docs/command-tasks.md for its environment and line protocol).
public struct Command: TaskDeclaration {
    public let node: TaskNode

    public init(_ id: String, after upstream: String..., run argv: [String], environment: [String: String] = [:], branch: Bool = false) {
        node = TaskNode(
            spec: TaskSpec(
                id: id, kind: .command, upstream: upstream,
                command: CommandSpec(argv: argv, environment: environment, isBranch: branch)),
            body: .command)
    }
}

/// A task that starts a run of another DAG (a DAG of DAGs), optionally only when `when` says so.
public struct TriggerDAG: TaskDeclaration {
    public let node: TaskNode

    /// - Parameters:
    ///   - params: the child run's params; `{partition}`, `{run}` and `{param.NAME}` are substituted.
    ///   - wait: whether a failed child run fails this task.
    ///   - when: decides at run time whether to trigger; the task is skipped when it returns false.
    public init(
        _ id: String, after upstream: String..., dag: String, params: [String: String] = [:], wait: Bool = true,
        when: (@Sendable (TaskContext) async throws -> Bool)? = nil
    ) {
        node = TaskNode(
            spec: TaskSpec(id: id, kind: .trigger, upstream: upstream, trigger: TriggerSpec(dag: dag, params: params, wait: wait)),
            body: .trigger(condition: when))
    }
}

/// Builds the task list of a `DAG { }`, with `if`, `if/else` and `for` (fan-out).
@resultBuilder
public enum DAGBuilder {
    public static func buildExpression(_ d: some TaskDeclaration) -> [TaskNode] { [d.node] }
    public static func buildExpression(_ d: [TaskNode]) -> [TaskNode] { d }
    public static func buildBlock(_ parts: [TaskNode]...) -> [TaskNode] { parts.flatMap { $0 } }
    public static func buildArray(_ parts: [[TaskNode]]) -> [TaskNode] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [TaskNode]?) -> [TaskNode] { part ?? [] }
    public static func buildEither(first: [TaskNode]) -> [TaskNode] { first }
    public static func buildEither(second: [TaskNode]) -> [TaskNode] { second }
}
