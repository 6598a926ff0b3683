public import ClewCore
import ClewModel
public import Foundation
import Yams

/// A pipeline file that cannot be loaded, with file and line.
public struct PipelineFileError: ClewError {
    public var description: String
    init(_ description: String) { self.description = description }
    public var category: ErrorCategory { .invalidInput }
}

/// Pipeline files: YAML descriptions of DAGs whose tasks are commands (docs/pipeline-files.md).
///
/// ```yaml
/// dag: csv_to_store
/// schedule: "@daily"
/// start: 2026-11-01
/// params: {source: orders.csv}
/// datasets:
///   orders_json: {partition: key}
/// tasks:
///   convert:
///     run: python3 convert.py
///     produces: [{dataset: orders_json, key: "{param.source}", path: orders.json}]
///   load:
///     after: convert
///     run: ["./load.sh"]
///     consumes: [{dataset: orders_json, key: "{param.source}"}]
/// ```
public enum PipelineFile {
    static let topKeys: Set<String> = [
        "dag", "description", "schedule", "start", "catchup", "params", "datasets", "tasks", "max_active_tasks", "sla", "alerts",
    ]
    static let alertKeys: Set<String> = ["webhook", "email", "on"]
    static let taskKeys: Set<String> = [
        "run", "env", "cwd", "after", "rule", "retries", "retry_delay", "timeout", "consumes", "produces", "branch",
        "trigger", "params", "when", "wait", "variables", "connections", "sla", "pool", "pool_slots", "priority_weight",
    ]

    /// Reads and validates a pipeline file.
    /// - Throws: ``PipelineFileError`` naming the file and line of each problem (YAML syntax, unknown keys,
    ///   bad values, unknown task references, cycles, bad cron, missing executables).
    public static func load(_ url: URL) throws -> DAG {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw PipelineFileError("\(url.path): cannot read the pipeline file: \(error.localizedDescription)")
        }
        return try parse(text, path: url.path)
    }

    /// Parses pipeline YAML; `path` names the file in errors and locates relative scripts.
    public static func parse(_ text: String, path: String) throws -> DAG {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch let error as YamlError {
            throw PipelineFileError("\(path): not valid YAML: \(Self.describe(error))")
        } catch {
            throw PipelineFileError("\(path): not valid YAML: \(error)")
        }
        guard let root = node?.mapping else { throw PipelineFileError("\(path):1: the file must be a mapping with dag: and tasks:") }
        var problems: [String] = []
        func at(_ n: Node?) -> String { "\(path):\(n?.mark?.line ?? 1)" }
        func problem(_ n: Node?, _ message: String) { problems.append("\(at(n)): \(message)") }
        func string(_ n: Node?) -> String? { n?.scalar?.string }

        for key in root.keys where !topKeys.contains(key.string ?? "") {
            problem(key, "unknown key '\(key.string ?? "?")' (known: \(topKeys.sorted().joined(separator: ", ")))")
        }
        guard let name = string(root["dag"]), !name.isEmpty else {
            throw PipelineFileError("\(path):1: the file needs 'dag: <name>'")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var spec = DAGSpec(name: name, tasks: [], origin: "\(path):\(root["dag"]?.mark?.line ?? 1)")
        spec.description = string(root["description"]) ?? ""
        if let s = root["schedule"] {
            do { spec.schedule = try ScheduleSpec(parsing: string(s) ?? "") } catch { problem(s, "\(error)") }
        }
        if let s = root["start"] {
            if let micros = PartitionKey.parse(string(s) ?? "") { spec.startMicros = micros } else {
                problem(s, "start '\(string(s) ?? "")' is not a UTC date (2026-11-01 or 2026-11-01T00:00Z)")
            }
        }
        if let c = root["catchup"] {
            if let b = c.bool { spec.catchup = b } else { problem(c, "catchup must be true or false") }
        }
        if let m = root["max_active_tasks"] {
            if let i = m.int, i >= 1 { spec.maxActiveTasks = i } else { problem(m, "max_active_tasks must be a whole number ≥ 1") }
        }
        if let s = root["sla"] {
            do { spec.slaMillis = Int(try ScheduleSpec.parseMillis(string(s) ?? "", what: "sla")) } catch { problem(s, "\(error)") }
            if spec.slaMillis == 0 { problem(s, "sla must be positive") }
        }
        if let a = root["alerts"] {
            if let map = a.mapping {
                for key in map.keys where !alertKeys.contains(key.string ?? "") {
                    problem(key, "alerts: unknown key '\(key.string ?? "?")' (known: \(alertKeys.sorted().joined(separator: ", ")))")
                }
                var alerts = AlertSpec(webhooks: list(map["webhook"]), emails: list(map["email"]))
                if let on = map["on"] {
                    do { alerts.on = try AlertRule.parse(list(on)) } catch { problem(on, "alerts: \(error)") }
                }
                for p in alerts.problems { problem(a, "alerts: \(p)") }
                if alerts.webhooks.isEmpty && alerts.emails.isEmpty { problem(a, "alerts: give a webhook: URL or an email: address (or both)") }
                spec.alerts = alerts
            } else { problem(a, "alerts must be a mapping: {webhook: URL, email: [ADDRESS], on: [failure, retry, sla_miss, quarantine]}") }
        }
        if let p = root["params"] {
            if let map = p.mapping {
                for (k, v) in map { spec.params[k.string ?? ""] = v.string ?? "" }
            } else { problem(p, "params must be a mapping of names to values") }
        }
        if let d = root["datasets"] {
            if let map = d.mapping {
                for (k, v) in map {
                    var ds = DatasetSpec(name: k.string ?? "")
                    let partitioning = string(v.mapping?["partition"]) ?? "key"
                    switch partitioning {
                    case "key": ds.partitioning = .key
                    case "sequence": ds.partitioning = .sequence
                    case let p where p.hasPrefix("time:"):
                        do {
                            ds.partitioning = .time(seconds: try ScheduleSpec.parseDuration(String(p.dropFirst(5)), what: "partition window"))
                        } catch { problem(v, "dataset \(ds.name): \(error)") }
                    default: problem(v, "dataset \(ds.name): partition must be key, sequence or time:<duration> (e.g. time:1h), not '\(partitioning)'")
                    }
                    ds.requiresValidation = v.mapping?["requires_validation"]?.bool ?? false
                    spec.datasets.append(ds)
                }
            } else { problem(d, "datasets must be a mapping of dataset names to {partition: …}") }
        }
        guard let tasksNode = root["tasks"], let tasks = tasksNode.mapping else {
            problems.append("\(at(root["tasks"] ?? root["dag"])): the file needs 'tasks:', a mapping of task ids to tasks")
            throw PipelineFileError(problems.joined(separator: "\n"))
        }
        var scripts: [String] = []
        var sourceFiles: [(path: String, absolute: String, sha256: String)] = []
        for (idNode, t) in tasks {
            let id = idNode.string ?? ""
            let line = idNode.mark?.line
            guard let task = t.mapping else {
                problem(idNode, "task \(id) must be a mapping (run:, after: …)")
                continue
            }
            for key in task.keys where !taskKeys.contains(key.string ?? "") {
                problem(key, "task \(id): unknown key '\(key.string ?? "?")' (known: \(taskKeys.sorted().joined(separator: ", ")))")
            }
            var ts = TaskSpec(id: id, line: line)
            ts.upstream = list(task["after"])
            if let r = task["rule"] {
                if let rule = TriggerRule(rawValue: string(r) ?? "") { ts.rule = rule } else {
                    problem(r, "task \(id): rule must be one of \(TriggerRule.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
            if let r = task["retries"] {
                if let n = r.int, n >= 0 { ts.retries = n } else { problem(r, "task \(id): retries must be a whole number ≥ 0") }
            }
            for (key, assign) in [("retry_delay", { (ms: Int64) in ts.retryDelayMillis = Int(ms) }), ("timeout", { ts.timeoutMillis = Int($0) })] {
                guard let n = task[key] else { continue }
                do { assign(try ScheduleSpec.parseMillis(string(n) ?? "", what: "task \(id): \(key)")) } catch { problem(n, "\(error)") }
            }
            if let s = task["sla"] {
                do { ts.slaMillis = Int(try ScheduleSpec.parseMillis(string(s) ?? "", what: "task \(id): sla")) } catch { problem(s, "\(error)") }
                if ts.slaMillis == 0 { problem(s, "task \(id): sla must be positive") }
            }
            if let p = task["pool"] { ts.pool = string(p) }
            for (key, assign) in [("pool_slots", { (n: Int) in ts.poolSlots = n }), ("priority_weight", { ts.priorityWeight = $0 })] {
                guard let n = task[key] else { continue }
                if let i = n.int { assign(i) } else { problem(n, "task \(id): \(key) must be a whole number") }
            }
            if task["pool_slots"] != nil, task["pool"] == nil { problem(task["pool_slots"], "task \(id): pool_slots needs pool:") }
            ts.consumes = chunkRefs(task["consumes"], task: id, problem: problem)
            ts.produces = chunkRefs(task["produces"], task: id, problem: problem)
            if let run = task["run"] {
                let argv: [String] = run.sequence != nil ? list(run) : [string(run) ?? ""]
                var env: [String: String] = [:]
                for (k, v) in task["env"]?.mapping ?? [:] { env[k.string ?? ""] = v.string ?? "" }
                let cwd = string(task["cwd"]).map { $0.hasPrefix("/") ? $0 : URL(fileURLWithPath: directory).appendingPathComponent($0).path } ?? directory
                ts.kind = .command
                ts.command = CommandSpec(argv: argv, environment: env, workingDirectory: cwd, isBranch: task["branch"]?.bool ?? false)
                if let v = task["variables"] {
                    let keys = list(v)
                    for key in keys {
                        do { try VariableStore.check(key: key) } catch { problem(v, "task \(id): \(error)") }
                    }
                    let names = Dictionary(grouping: keys, by: { RunExecution.envName($0) }).filter { $0.value.count > 1 }
                    for (name, clash) in names { problem(v, "task \(id): variables \(clash.joined(separator: " and ")) would both be CLEW_VAR_\(name)") }
                    if !keys.isEmpty { ts.command?.variables = keys }
                }
                if let c = task["connections"] {
                    let ids = list(c)
                    for cid in ids {
                        do { try VariableStore.check(key: cid, what: "connection id") } catch { problem(c, "task \(id): \(error)") }
                    }

                    let names = Dictionary(grouping: ids, by: { RunExecution.envName($0) }).filter { $0.value.count > 1 }
                    for (name, clash) in names { problem(c, "task \(id): connections \(clash.joined(separator: " and ")) would both be CLEW_CONN_\(name)_*") }
                    if !ids.isEmpty { ts.command?.connections = ids }
                }
                let words = argv.count == 1 ? argv[0].split(separator: " ").map(String.init) : argv
                if let program = words.first, !program.isEmpty {
                    do { _ = try CommandRunner.resolve(program, in: cwd) } catch { problem(run, "task \(id): \(error)") }
                } else {
                    problem(run, "task \(id): run is empty")
                }
                for w in words where !w.hasPrefix("-") {
                    let p = w.hasPrefix("/") ? w : URL(fileURLWithPath: cwd).appendingPathComponent(w).standardized.path
                    var isDir: ObjCBool = false
                    if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue, let d = ContentDigest.sha256(file: URL(fileURLWithPath: p)) {
                        scripts.append("\(w) \(d)")
                        sourceFiles.append((w, p, d))
                    }
                }
            } else if let trig = task["trigger"] {
                if task["variables"] != nil { problem(task["variables"], "task \(id): variables: is for command tasks (run:)") }
                if task["connections"] != nil { problem(task["connections"], "task \(id): connections: is for command tasks (run:)") }


                ts.kind = .trigger
                var params: [String: String] = [:]
                for (k, v) in task["params"]?.mapping ?? [:] { params[k.string ?? ""] = v.string ?? "" }
                ts.trigger = TriggerSpec(dag: string(trig) ?? "", params: params, when: string(task["when"]), wait: task["wait"]?.bool ?? true)
            } else {
                problem(idNode, "task \(id) needs run: (a command) or trigger: (a DAG)")
            }
            spec.tasks.append(ts)
        }
        spec.sourceDigest = ContentDigest.sha256(Data((text + "\n" + scripts.sorted().joined(separator: "\n")).utf8))
        if !problems.isEmpty { throw PipelineFileError(problems.joined(separator: "\n")) }
        var dag = DAG(spec: spec, bodies: [:])
        dag.sources = [DAG.SourceText(path: URL(fileURLWithPath: path).lastPathComponent, text: text, sha256: ContentDigest.sha256(Data(text.utf8)))]
        var seen = Set<String>()
        for f in sourceFiles where seen.insert(f.absolute).inserted {
            // Texts only (a binary such as /bin/sleep is named by its digest, not recorded), at most 256 KiB.
            guard let data = FileManager.default.contents(atPath: f.absolute), data.count <= 256 << 10, !data.contains(0),
                let script = String(data: data, encoding: .utf8)
            else { continue }
            dag.sources.append(DAG.SourceText(path: f.path, text: script, sha256: f.sha256))
        }
        do { try dag.validate() } catch let error as DAGValidationError {
            throw PipelineFileError(error.problems.map { p in p.origin.isEmpty ? "\(path): \(p.message)" : "\(p.origin): \(p.message)" }.joined(separator: "\n"))
        }
        return dag
    }

    static func list(_ node: Node?) -> [String] {
        guard let node else { return [] }
        if let s = node.sequence { return s.compactMap { $0.string } }
        return node.string.map { [$0] } ?? []
    }

    static func chunkRefs(_ node: Node?, task: String, problem: (Node?, String) -> Void) -> [ChunkRef] {
        guard let node else { return [] }
        let items = node.sequence.map(Array.init) ?? [node]
        return items.compactMap { item in
            if let name = item.scalar?.string { return ChunkRef(dataset: name) }
            guard let m = item.mapping, let dataset = m["dataset"]?.string else {
                problem(item, "task \(task): a chunk is a dataset name or {dataset: …, key: …, path: …}")
                return nil
            }
            return ChunkRef(dataset: dataset, key: m["key"]?.string ?? "{partition}", path: m["path"]?.string)
        }
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)"
        default:
            return "\(error)"
        }
    }
}
