import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

/// One hop of a row trace: rows of a collection and where they were read from.
public struct RowHop: Sendable, Codable {
    /// `value:<digest>` of a task output, or `chunk:<dataset>/<key>` of a chunk file.
    public var node: String
    /// The attempt that produced the output (nil for a chunk file).
    public var producer: AttemptRef?
    public var rows: [Int]
    /// The rows' values (JSON text, at most 20 rows, each cut at 300 bytes), when readable.
    public var values: [String]
    /// How the rows were derived from the next hop: identity, select or groups (nil at the source).
    public var derivation: String?
}

/// Which source rows produced a row of a task's output, hop by hop back to where the rows were first read.
public struct RowTrace: Sendable, Codable {
    public var start: String
    public var row: Int
    public var hops: [RowHop]
}

extension Forensics {
    /// Follows row-level lineage (recorded by the ``Rows`` helpers) from row `row` of a task output back to
    /// the rows it came from, across tasks, to a chunk file or an output with no row lineage.
    /// - Parameter node: `value:<digest>` of a task output, or `attempt:…` (its output).
    public func traceRow(_ node: String, row: Int) throws -> RowTrace {
        var digest: String
        if node.hasPrefix("value:") {
            digest = String(node.dropFirst(6))
        } else if let a = AttemptRef(node: node) {
            guard let d = try outputDigest(of: a) else { throw ForensicsError("\(a) produced no output") }
            digest = d
        } else {
            throw ForensicsError("a row trace starts at a task output: value:<digest> or attempt:DAG/RUN/TASK/N, not \(node)")
        }
        var rows = [row]
        var hops: [RowHop] = []
        var seen: Set<String> = []
        while seen.insert(digest).inserted {
            let producer = try producer(ofOutput: digest)
            let values = try value(digest: digest)
            var hop = RowHop(node: LineageNode.value(digest), producer: producer, rows: rows, values: Self.rowValues(values, rows), derivation: nil)
            if case .array(let a)? = values, let bad = rows.first(where: { $0 < 0 || $0 >= a.count }) {
                throw ForensicsError(.notFound, "row \(bad) is out of range: the output \(digest.prefix(12))… has \(a.count) rows")
            }
            guard let producer, let record = try rowLineage(of: producer) else {
                hops.append(hop)
                break
            }
            let origin = record.origin
            var next = Set<Int>()
            for r in rows { next.formUnion(origin.sources(of: r)) }
            hop.derivation = record.kind
            hops.append(hop)
            rows = next.sorted()
            guard let source = record.source else { break }
            if source.task != nil {
                digest = source.digest
                continue
            }
            if let ds = source.dataset, let key = source.chunk {
                let file = try chunkFile(dataset: ds, key: key, digest: source.digest)
                hops.append(RowHop(node: LineageNode.chunk(dataset: ds, key: key), producer: nil, rows: rows, values: Self.rowValues(file, rows), derivation: nil))
            }
            break
        }
        return RowTrace(start: node, row: row, hops: hops)
    }

    /// The rows step of an attempt, decoded.
    func rowLineage(of a: AttemptRef) throws -> RowLineageRecord? {
        for (e, fact) in try runFacts(a.runKey).reversed() where e.type == EventType.variableRecorded {
            guard case .value(let v) = fact, v.kind == "rows", v.task == a.task, (v.attempt ?? 1) == a.attempt else { continue }
            guard let value = try value(of: v) else { return nil }
            return try JSONDecoder().decode(RowLineageRecord.self, from: Data(value.text.utf8))
        }
        return nil
    }

    /// The attempt whose output has this digest (the first recorded), from the value index.
    func producer(ofOutput digest: String) throws -> AttemptRef? {
        try views.values(name: nil, match: .digest(digest), limit: 1000).first { $0.name == "output" }
            .map { AttemptRef(dag: $0.dag, run: $0.run, task: $0.task, attempt: $0.attempt) }
    }

    /// The digest of an attempt's output.
    func outputDigest(of a: AttemptRef) throws -> String? {
        for (e, fact) in try runFacts(a.runKey).reversed() where e.type == EventType.valueProduced {
            if case .value(let v) = fact, v.task == a.task, (v.attempt ?? 1) == a.attempt { return v.digest }
        }
        return nil
    }

    /// A chunk's file as JSON, if it still holds the recorded bytes.
    func chunkFile(dataset: String, key: String, digest: String) throws -> JSONTree? {
        for (_, fact) in try chunkFacts(dataset: dataset, chunk: key).reversed() {
            guard let c = fact.change, c.digest == digest else { continue }
            guard let path = c.location, path.hasPrefix("/"), let data = FileManager.default.contents(atPath: path),
                ContentDigest.sha256(data) == digest
            else { return nil }
            return try? JSONDecoder().decode(JSONTree.self, from: data)
        }
        return nil
    }

    static func rowValues(_ value: JSONTree?, _ rows: [Int]) -> [String] {
        guard case .array(let a)? = value else { return [] }
        return rows.prefix(20).compactMap { $0 >= 0 && $0 < a.count ? String(a[$0].text.prefix(300)) : nil }
    }
}
