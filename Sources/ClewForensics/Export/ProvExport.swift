import ClewCore
import ClewLedger
public import ClewModel
public import ClewProjections
import Foundation

/// W3C PROV-JSON for a run, a dataset or a lineage query, with the Merkle root and an inclusion proof of
/// every event it was built from.
///
/// Attempts are activities; chunks, values and datasets are entities; the engine (each event's actor) and
/// the DAG are agents. Relations: `used` and `wasGeneratedBy` from the lineage edges, `wasDerivedFrom` from
/// each output to each input of the attempt that made it, `wasAssociatedWith` from an attempt to its actor and
/// DAG, `wasInformedBy` from an attempt to the attempt whose output it read (or that triggered its run).
///
/// Every element carries `clew:seq`, the event that first showed it; entity `clew:ledger` holds the tree size
/// and root hash, and one entity `clew:event/SEQ` per event holds its canonical bytes (base64), leaf hash and
/// inclusion path, so an auditor can recompute each leaf, prove it into the root, and compare the root with a
/// signed checkpoint (`clew checkpoint`, `clew proof consistency`).
public enum ProvExport {
    static let prefixes: [(String, JSON.Value)] = [
        ("prov", .string("http://www.w3.org/ns/prov#")), ("xsd", .string("http://www.w3.org/2001/XMLSchema#")),
        ("clew", .string("https://clew-ledger.org/ns#")),
    ]

    /// The edges of a run: its attempts, what they used and generated, and the runs they triggered.
    public static func edges(ofRun key: RunKey, _ f: Forensics) throws -> [LineageEdge] {
        let run = LineageNode.run(dag: key.dag, run: key.run)
        guard try f.views.lineageNodeExists(run) else { throw ForensicsError(.notFound, "run \(key) is not in the lineage view") }
        var out: [LineageEdge] = []
        for member in try f.views.lineage(node: run, direction: .up, depth: 1) where member.kind == "part_of" {
            out.append(member)
            out += try f.views.lineage(node: member.from, direction: .up, depth: 1).filter { $0.kind != "part_of" }
            // What it generated and triggered, and its task (the plan it followed).
            out += try f.views.lineage(node: member.from, direction: .down, depth: 1).filter { $0.kind != "part_of" || $0.to.hasPrefix("task:") }
        }
        return Array(Set(out)).sorted { ($0.firstSeq, $0.from, $0.to) < ($1.firstSeq, $1.from, $1.to) }
    }

    /// The edges of a dataset: its chunks and the attempts that wrote and read them.
    public static func edges(ofDataset name: String, _ f: Forensics) throws -> [LineageEdge] {
        let node = LineageNode.dataset(name)
        guard try f.views.lineageNodeExists(node) else { throw ForensicsError(.notFound, "no dataset \(name) in the lineage view") }
        var out: [LineageEdge] = []
        for e in try f.views.lineage(node: node, direction: .up, depth: 1) {
            out.append(e)
            guard e.from.hasPrefix("chunk:") else { continue }
            out += try f.views.lineage(node: e.from, direction: .up, depth: 1).filter { $0.kind != "part_of" }
            out += try f.views.lineage(node: e.from, direction: .down, depth: 1).filter { $0.kind != "part_of" }
        }
        return Array(Set(out)).sorted { ($0.firstSeq, $0.from, $0.to) < ($1.firstSeq, $1.from, $1.to) }
    }

    /// The PROV-JSON document for a set of lineage edges.
    public static func document(_ edges: [LineageEdge], title: String, _ f: Forensics) throws -> JSON.Value {
        var entities: [String: [(String, JSON.Value)]] = [:]
        var activities: [String: [(String, JSON.Value)]] = [:]
        var agents: [String: [(String, JSON.Value)]] = [:]
        var used: [(String, JSON.Value)] = []
        var generated: [(String, JSON.Value)] = []
        var derived: [(String, JSON.Value)] = []
        var associated: [(String, JSON.Value)] = []
        var informed: [(String, JSON.Value)] = []
        var seqs: Set<UInt64> = []
        var timeOf: [UInt64: Int64] = [:]
        func time(_ seq: UInt64) throws -> String {
            if let t = timeOf[seq] { return ISO8601.string(micros: t) }
            let t = try f.ledger.event(at: seq)?.timestampMicros ?? 0
            timeOf[seq] = t
            return ISO8601.string(micros: t)
        }
        func id(_ node: String) -> String { "clew:" + node.replacingOccurrences(of: ":", with: "/") }
        func element(_ node: String, seq: UInt64) throws {
            let kind = Forensics.kind(of: node)
            let label = String(node[node.index(after: node.firstIndex(of: ":")!)...])
            switch kind {
            case "attempt", "run":
                if activities[id(node)] == nil {
                    activities[id(node)] = [("prov:type", .string("clew:\(kind == "run" ? "Run" : "TaskAttempt")")), ("prov:label", .string(label)), ("clew:seq", .int(Int64(seq)))]
                }
            case "task":
                if agents[id(node)] == nil { agents[id(node)] = [("prov:type", .string("prov:Plan")), ("prov:label", .string(label))] }
            default:
                if entities[id(node)] == nil {
                    var e: [(String, JSON.Value)] = [("prov:type", .string("clew:\(kind.prefix(1).uppercased() + kind.dropFirst())")), ("prov:label", .string(label)), ("clew:seq", .int(Int64(seq)))]
                    if kind == "value" { e.append(("clew:sha256", .string(String(node.dropFirst(6))))) }
                    entities[id(node)] = e
                }
            }
            seqs.insert(seq)
        }
        // Activities' times and agents, per attempt, from their runs' streams.
        var runEvents: [RunKey: [(event: Event, fact: Fact.RunFact)]] = [:]
        var attemptsUsed: [String: [String]] = [:]
        var attemptsMade: [String: [String]] = [:]
        var producerOf: [String: String] = [:]
        var n = 0
        func next(_ p: String) -> String { n += 1; return "_:\(p)\(n)" }
        for e in edges {
            try element(e.from, seq: e.firstSeq)
            try element(e.to, seq: e.firstSeq)
            switch e.kind {
            case "used":
                used.append((next("u"), .object([("prov:activity", .string(id(e.to))), ("prov:entity", .string(id(e.from))), ("prov:time", .string(try time(e.firstSeq))), ("clew:seq", .int(Int64(e.firstSeq)))])))
                attemptsUsed[e.to, default: []].append(e.from)
            case "generated":
                generated.append((next("g"), .object([("prov:entity", .string(id(e.to))), ("prov:activity", .string(id(e.from))), ("prov:time", .string(try time(e.firstSeq))), ("clew:seq", .int(Int64(e.firstSeq)))])))
                attemptsMade[e.from, default: []].append(e.to)
                if let a = AttemptRef(node: e.from) { producerOf["\(a.dag)/\(a.run)\u{1}\(e.to)"] = e.from }
            case "triggered":
                informed.append((next("i"), .object([("prov:informed", .string(id(e.to))), ("prov:informant", .string(id(e.from))), ("clew:seq", .int(Int64(e.firstSeq)))])))
            case "part_of" where e.to.hasPrefix("task:"):
                associated.append((next("a"), .object([("prov:activity", .string(id(e.from))), ("prov:agent", .string("clew:agent/engine")), ("prov:plan", .string(id(e.to))), ("clew:seq", .int(Int64(e.firstSeq)))])))
            case "part_of" where e.to.hasPrefix("run:"):
                informed.append((next("i"), .object([("prov:informed", .string(id(e.from))), ("prov:informant", .string(id(e.to))), ("clew:seq", .int(Int64(e.firstSeq)))])))
            default:
                break
            }
        }
        agents["clew:agent/engine"] = [("prov:type", .string("prov:SoftwareAgent")), ("prov:label", .string("clew engine"))]
        for (attempt, outputs) in attemptsMade {
            for input in attemptsUsed[attempt] ?? [] {
                for output in outputs where output != input {
                    derived.append((next("d"), .object([("prov:generatedEntity", .string(id(output))), ("prov:usedEntity", .string(id(input))), ("prov:activity", .string(id(attempt)))])))
                }
            }
        }
        for (attempt, inputs) in attemptsUsed {
            guard let a = AttemptRef(node: attempt) else { continue }
            for input in Set(inputs) {
                if let producer = producerOf["\(a.dag)/\(a.run)\u{1}\(input)"], producer != attempt {
                    informed.append((next("i"), .object([("prov:informed", .string(id(attempt))), ("prov:informant", .string(id(producer)))])))
                }
            }
        }
        // Start and end times of attempts.
        for key in activities.keys.sorted() {
            guard let a = AttemptRef(node: String(key.dropFirst(5)).replacingOccurrences(of: "attempt/", with: "attempt:")) else { continue }
            if runEvents[a.runKey] == nil { runEvents[a.runKey] = try f.runFacts(a.runKey) }
            for (e, fact) in runEvents[a.runKey] ?? [] {
                guard let (task, attempt) = fact.attempt, task == a.task, attempt == a.attempt else { continue }
                if e.type == EventType.taskStarted {
                    activities[key]?.append(("prov:startTime", .string(ISO8601.string(micros: e.timestampMicros))))
                    seqs.insert(e.seq)
                    agents["clew:agent/\(e.actor)"] = [("prov:type", .string("prov:SoftwareAgent")), ("prov:label", .string(e.actor))]
                }
                if e.type == EventType.taskSucceeded || e.type == EventType.taskFailed {
                    activities[key]?.append(("prov:endTime", .string(ISO8601.string(micros: e.timestampMicros))))
                    activities[key]?.append(("clew:outcome", .string(e.type == EventType.taskSucceeded ? "succeeded" : "failed")))
                    seqs.insert(e.seq)
                }
            }
        }
        // The Merkle root and each event's proof.
        let (size, root) = try f.ledger.root()
        entities["clew:ledger"] = [
            ("prov:type", .string("clew:Ledger")), ("clew:ledgerId", .string(f.ledger.id)), ("clew:treeSize", .int(Int64(size))),
            ("clew:rootHash", .string(root.hex)), ("prov:label", .string(title)),
        ]
        for seq in seqs.sorted() {
            let proof = try f.ledger.inclusionProof(seq: seq, treeSize: size)
            let canonical = try f.ledger.canonicalEvent(seq: seq)
            entities["clew:event/\(seq)"] = [
                ("prov:type", .string("clew:Event")), ("clew:seq", .int(Int64(seq))), ("clew:leafIndex", .int(Int64(proof.leafIndex))),
                ("clew:leafHash", .string(proof.leafHash)), ("clew:inclusionPath", .array(proof.path.map { .string($0) })),
                ("clew:canonical", .string(canonical.bytes.base64EncodedString())),
            ]
        }
        func section(_ d: [String: [(String, JSON.Value)]]) -> JSON.Value { .object(d.sorted { $0.key < $1.key }.map { ($0.key, .object($0.value)) }) }
        var doc: [(String, JSON.Value)] = [("prefix", .object(prefixes)), ("entity", section(entities)), ("activity", section(activities)), ("agent", section(agents))]
        for (name, list) in [("used", used), ("wasGeneratedBy", generated), ("wasDerivedFrom", derived), ("wasAssociatedWith", associated), ("wasInformedBy", informed)] where !list.isEmpty {
            doc.append((name, .object(list)))
        }
        return .object(doc)
    }
}
