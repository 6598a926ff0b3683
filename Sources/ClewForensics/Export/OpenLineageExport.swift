import ClewCore
import ClewLedger
public import ClewModel
public import ClewProjections
import Crypto
import Foundation

/// OpenLineage (spec 2-0-2) run events for Clew's runs, so lineage tools built for OpenLineage can read them.
///
/// Each run is a job `DAG` (START, then COMPLETE, FAIL or ABORT); each task attempt is a job `DAG.TASK` with
/// a `parent` facet naming the run. Inputs and outputs are the datasets of the chunks an attempt read and
/// wrote (namespace `clew`), with the chunk key as the dataset version. Run ids are UUIDs derived from the
/// names (so exporting twice gives the same ids).
public enum OpenLineageExport {
    public static let schemaURL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    public static let producer = "https://github.com/clew-ledger/clew"
    static let namespace = "clew"

    /// The run events of one run, in time order.
    public static func events(of key: RunKey, _ f: Forensics) throws -> [JSON.Value] {
        let events = try f.runFacts(key)
        guard let queued = events.first(where: { $0.event.type == EventType.runQueued }) else {
            throw ForensicsError(.notFound, "run \(key) is not in the ledger")
        }
        let runID = uuid("run/\(key.dag)/\(key.run)")
        var out: [JSON.Value] = []
        let runJob: [(String, JSON.Value)] = [
            ("namespace", .string(namespace)), ("name", .string(key.dag)),
            ("facets", .object([("jobType", facet("https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet", [
                ("processingType", .string("BATCH")), ("integration", .string("CLEW")), ("jobType", .string("DAG")),
            ]))])),
        ]
        var runFacets: [(String, JSON.Value)] = []
        if case .queued(let q) = queued.fact, let p = q.partition, PartitionKey.parse(p) != nil {
            runFacets.append(("nominalTime", facet("https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet", [
                ("nominalStartTime", .string(p)),
            ])))
        }
        func event(_ type: String, _ micros: Int64, run: [(String, JSON.Value)], job: [(String, JSON.Value)], inputs: [JSON.Value] = [], outputs: [JSON.Value] = []) -> JSON.Value {
            .object([
                ("eventTime", .string(ISO8601.string(micros: micros))), ("producer", .string(producer)), ("schemaURL", .string(schemaURL)),
                ("eventType", .string(type)), ("run", .object(run)), ("job", .object(job)),
                ("inputs", .array(inputs)), ("outputs", .array(outputs)),
            ])
        }
        let runObject: [(String, JSON.Value)] = [("runId", .string(runID))] + (runFacets.isEmpty ? [] : [("facets", .object(runFacets))])
        out.append(event("START", queued.event.timestampMicros, run: runObject, job: runJob))

        // Attempts: start, inputs and outputs, end.
        struct Attempt {
            var start: Int64
            var end: Int64?
            var state: String?
            var error: String?
            var inputs: Set<String> = []
            var outputs: Set<String> = []
        }
        var attempts: [String: Attempt] = [:]
        var order: [String] = []
        for (e, fact) in events {
            guard let (task, attempt) = fact.attempt else { continue }
            let id = "\(task)#\(attempt)"
            switch fact {
            case .task where e.type == EventType.taskStarted:
                attempts[id] = Attempt(start: e.timestampMicros)
                order.append(id)
            case .consumed(let c):
                if let ds = c.dataset, let chunk = c.chunk { attempts[id]?.inputs.insert(ds + "\u{1}" + chunk) }
            case .task(let t) where e.type == EventType.taskSucceeded || e.type == EventType.taskFailed:
                attempts[id]?.end = e.timestampMicros
                attempts[id]?.state = e.type == EventType.taskSucceeded ? "COMPLETE" : "FAIL"
                attempts[id]?.error = t.error
            default:
                break
            }
        }
        // Chunks written: each attempt's `generated` chunk edges in the lineage view.
        for member in try f.views.lineage(node: LineageNode.run(dag: key.dag, run: key.run), direction: .up, depth: 1) {
            guard let a = AttemptRef(node: member.from) else { continue }
            for e in try f.views.lineage(node: a.node, direction: .down, depth: 1) where e.kind == "generated" && e.to.hasPrefix("chunk:") {
                let chunk = e.to.dropFirst(6)
                guard let slash = chunk.firstIndex(of: "/") else { continue }
                attempts["\(a.task)#\(a.attempt)"]?.outputs.insert(String(chunk[..<slash]) + "\u{1}" + String(chunk[chunk.index(after: slash)...]))
            }
        }
        func dataset(_ s: String) -> JSON.Value {
            let parts = s.split(separator: "\u{1}", maxSplits: 1).map(String.init)
            return .object([
                ("namespace", .string(namespace)), ("name", .string(parts[0])),
                ("facets", .object([("version", facet("https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet", [
                    ("datasetVersion", .string(parts.count > 1 ? parts[1] : "")),
                ]))])),
            ])
        }
        let parent = facet("https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet", [
            ("run", .object([("runId", .string(runID))])), ("job", .object([("namespace", .string(namespace)), ("name", .string(key.dag))])),
        ])
        for id in order {
            guard let a = attempts[id] else { continue }
            let task = String(id[..<id.lastIndex(of: "#")!])
            let attemptRun = uuid("attempt/\(key.dag)/\(key.run)/\(id)")
            let job: [(String, JSON.Value)] = [
                ("namespace", .string(namespace)), ("name", .string("\(key.dag).\(task)")),
                ("facets", .object([("jobType", facet("https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet", [
                    ("processingType", .string("BATCH")), ("integration", .string("CLEW")), ("jobType", .string("TASK")),
                ]))])),
            ]
            let inputs = a.inputs.sorted().map(dataset)
            let outputs = a.outputs.sorted().map(dataset)
            out.append(event("START", a.start, run: [("runId", .string(attemptRun)), ("facets", .object([("parent", parent)]))], job: job, inputs: inputs))
            guard let end = a.end, let state = a.state else { continue }
            var facets: [(String, JSON.Value)] = [("parent", parent)]
            if let error = a.error {
                facets.append(("errorMessage", facet("https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet", [
                    ("message", .string(error)), ("programmingLanguage", .string("SWIFT")),
                ])))
            }
            out.append(event(state, end, run: [("runId", .string(attemptRun)), ("facets", .object(facets))], job: job, inputs: inputs, outputs: outputs))
        }
        if let end = events.last(where: { [EventType.runSucceeded, EventType.runFailed, EventType.runCancelled].contains($0.event.type) }) {
            let type = end.event.type == EventType.runSucceeded ? "COMPLETE" : end.event.type == EventType.runFailed ? "FAIL" : "ABORT"
            out.append(event(type, end.event.timestampMicros, run: runObject, job: runJob))
        }
        return out
    }

    static func facet(_ schema: String, _ fields: [(String, JSON.Value)]) -> JSON.Value {
        .object([("_producer", .string(producer)), ("_schemaURL", .string(schema))] + fields)
    }

    /// A UUID (version 5 layout) from SHA-256 of a name: the same name, the same id.
    static func uuid(_ name: String) -> String {
        var b = Array(SHA256.hash(data: Data(("clew:" + name).utf8)).prefix(16))
        b[6] = (b[6] & 0x0F) | 0x50
        b[8] = (b[8] & 0x3F) | 0x80
        let hex = b.hex
        let h = Array(hex)
        return "\(String(h[0..<8]))-\(String(h[8..<12]))-\(String(h[12..<16]))-\(String(h[16..<20]))-\(String(h[20..<32]))"
    }
}
