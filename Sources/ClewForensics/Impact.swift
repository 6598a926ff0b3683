import ClewLedger
import ClewModel
import ClewProjections
import Foundation

/// Everything derived from a chunk or value: the blast radius.
public struct ImpactReport: Sendable, Codable {
    public var source: String
    /// Chunks derived from the source (`DATASET/KEY`), the source itself first when it is a chunk.
    public var chunks: [String]
    /// Value digests derived from it.
    public var values: [String]
    /// Attempts that read it or anything derived from it.
    public var attempts: [AttemptRef]
    /// Runs those attempts belong to, and runs they triggered.
    public var runs: [String]
    /// The tasks to run again to rebuild what is suspect, per run (`DAG/RUN` → tasks): the producers of the
    /// suspect chunks and values.
    public var rebuild: [String: [String]]
    /// The quarantine recorded, when asked.
    public var quarantine: String?
}

extension Forensics {
    /// Every chunk, value, attempt and run downstream of `node` (a chunk or value), following data flow
    /// and triggers through all runs.
    public func impact(_ node: String) throws -> ImpactReport {
        guard node.hasPrefix("chunk:") || node.hasPrefix("value:") || node.hasPrefix("dataset:") else {
            throw ForensicsError("impact starts at a chunk, value or dataset; \(node) is a \(Self.kind(of: node))")
        }
        let edges = try views.lineage(node: node, direction: .down, depth: .max, limit: 1_000_000)
        var chunks: [String] = node.hasPrefix("chunk:") ? [String(node.dropFirst(6))] : []
        var values: [String] = node.hasPrefix("value:") ? [String(node.dropFirst(6))] : []
        var attempts: Set<AttemptRef> = []
        var runs: Set<String> = []
        var rebuild: [String: Set<String>] = [:]
        for e in edges where e.kind != "part_of" {
            if let a = AttemptRef(node: e.to) {
                attempts.insert(a)
                runs.insert(a.runKey.description)
            }
            if e.to.hasPrefix("chunk:") {
                let c = String(e.to.dropFirst(6))
                if !chunks.contains(c) { chunks.append(c) }
            }
            if e.to.hasPrefix("value:") {
                let v = String(e.to.dropFirst(6))
                if !values.contains(v) { values.append(v) }
            }
            if e.to.hasPrefix("run:") { runs.insert(String(e.to.dropFirst(4))) }
            // The writer of a suspect chunk or value must run again.
            if e.kind == "generated", let a = AttemptRef(node: e.from) { rebuild[a.runKey.description, default: []].insert(a.task) }
        }
        // The source chunk's own producer rebuilds it too.
        if node.hasPrefix("chunk:") {
            for e in try views.lineage(node: node, direction: .up, depth: 1) where e.kind == "generated" {
                if let a = AttemptRef(node: e.from) { rebuild[a.runKey.description, default: []].insert(a.task) }
            }
        }
        return ImpactReport(
            source: node, chunks: chunks, values: values, attempts: attempts.sorted(), runs: runs.sorted(),
            rebuild: rebuild.mapValues { $0.sorted() }, quarantine: nil)
    }

    /// Records the impact as a quarantine: one `lineage.quarantined` event (stream `quarantine/<id>`) listing
    /// what is suspect and what to rebuild, and each suspect chunk that is readable marked `invalid` with the
    /// quarantine as its reason, so the five questions refuse it until it is made again
    /// (`clew resubmit --quarantine ID`).
    /// - Returns: the report with its quarantine id.
    public func quarantine(_ report: ImpactReport, reason: String, actor: String) async throws -> ImpactReport {
        var report = report
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let id = "q-\(ISO8601.string(micros: now).filter { $0.isNumber })-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        var batch: [NewEvent] = []
        let quarantined = LineageQuarantined(
            quarantine: id, source: report.source, reason: reason, chunks: report.chunks, values: report.values, runs: report.runs,
            rebuild: report.rebuild)
        batch.append(NewEvent(
            type: EventType.lineageQuarantined, stream: "quarantine/\(id)", actor: actor, timestampMicros: now,
            payload: quarantined.payloadData))
        // Each dataset folded once, however many of its chunks are suspect.
        var byDataset: [String: [String]] = [:]
        for c in report.chunks {
            guard let slash = c.firstIndex(of: "/") else { continue }
            byDataset[String(c[..<slash]), default: []].append(String(c[c.index(after: slash)...]))
        }
        for (ds, keys) in byDataset.sorted(by: { $0.key < $1.key }) {
            var state = DatasetState(name: ds)
            for e in try ledger.events(inStream: StreamID.dataset(ds)) { state.apply(seq: e.seq, type: e.type, payload: e.payload) }
            for key in keys {
                guard let chunk = state.chunks[key], chunk.status.canBecome(.invalid) else { continue }
                var change = ChunkChange(dataset: ds, chunk: key, from: chunk.status, to: .invalid)
                change.reason = "quarantined by \(id): derived from \(report.source) (\(reason))"
                change.dag = chunk.produced?.dag
                change.run = chunk.produced?.run
                change.task = chunk.produced?.task
                batch.append(NewEvent(
                    type: EventType.chunkStatusChanged, stream: StreamID.dataset(ds), actor: actor, timestampMicros: now,
                    payload: change.canonicalJSON))
            }
        }
        _ = try await ledger.append(contentsOf: batch)
        report.quarantine = id
        return report
    }
}
