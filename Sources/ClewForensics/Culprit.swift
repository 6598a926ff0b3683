import ClewLedger
import ClewModel
import ClewProjections
import Foundation

/// The range a task's variable took in earlier runs.
public struct HistoryRange: Sendable, Hashable, Codable {
    public var min: Double
    public var max: Double
    /// How many earlier runs it was taken from.
    public var runs: Int
}

/// Something wrong with an ancestor: a failure, a failed expectation, an invalid chunk or an anomalous value.
public struct Finding: Sendable, Hashable, Codable {
    /// failed, expectation_failed, chunk_invalid or anomaly.
    public var kind: String
    public var attempt: AttemptRef?
    /// `DATASET/KEY` for chunk findings.
    public var chunk: String?
    public var seq: UInt64
    public var time: String
    public var detail: String
    public var variable: String?
    public var value: Double?
    public var history: HistoryRange?
    /// A later attempt of the same task in the same run succeeded.
    public var recovered: Bool
}

/// The earliest failing, invalid or anomalous ancestor of a run, chunk or value, and everything found.
public struct CulpritReport: Sendable, Codable {
    public var target: String
    /// The earliest finding that was not recovered from (else the earliest one); nil when nothing was found.
    public var culprit: Finding?
    /// Every finding, in log order.
    public var findings: [Finding]
    /// Attempts examined (the target's own and all its ancestors).
    public var attemptsChecked: Int
    /// Numeric variables and outputs compared with their task's history.
    public var valuesChecked: Int
    public var summary: String
}

extension Forensics {
    /// Runs earlier than this are the history a value is compared with; fewer than this many runs of a task
    /// with the variable are too few to call anything anomalous.
    public static let minimumHistory = 3

    /// The earliest failing, invalid or anomalous ancestor of `node` (a run, chunk or value node). Failures
    /// and expectations are events; an anomaly is a numeric variable or output outside the range its task
    /// produced in earlier runs (at least ``minimumHistory`` of them).
    public func culprit(_ node: String) throws -> CulpritReport {
        // The attempts to examine: the run's own, or the producers upstream of a chunk or value, and all
        // their ancestors.
        var starts: [String] = []
        if node.hasPrefix("run:") {
            starts = try views.lineage(node: node, direction: .up, depth: 1).filter { $0.kind == "part_of" }.map(\.from)
        } else if node.hasPrefix("chunk:") || node.hasPrefix("value:") || node.hasPrefix("attempt:") {
            starts = [node]
        } else {
            throw ForensicsError("culprit looks above a run, chunk, value or attempt; \(node) is a \(Self.kind(of: node))")
        }
        var attempts: Set<AttemptRef> = []
        var chunks: Set<String> = []
        for s in starts {
            if let a = AttemptRef(node: s) { attempts.insert(a) }
            if s.hasPrefix("chunk:") { chunks.insert(s) }
            for e in try views.lineage(node: s, direction: .up, depth: .max) {
                for n in [e.from, e.to] {
                    if let a = AttemptRef(node: n) { attempts.insert(a) }
                    if n.hasPrefix("chunk:") { chunks.insert(n) }
                }
            }
        }
        // A run's history starts where the target run (or the newest examined run) was queued.
        var findings: [Finding] = []
        var valuesChecked = 0
        var historyCache: [String: [String: Double]] = [:]
        var queuedCache: [RunKey: UInt64] = [:]
        func queued(_ key: RunKey) -> UInt64 {
            if let q = queuedCache[key] { return q }
            let q = (try? ledger.seqs(inStream: key.stream, limit: 1).first) ?? nil
            queuedCache[key] = q ?? .max
            return q ?? .max
        }
        for runKey in Set(attempts.map(\.runKey)).sorted() {
            let s = try runFacts(runKey)
            let queuedSeq = s.first?.event.seq ?? 0
            let mine = attempts.filter { $0.runKey == runKey }
            let tasks = Set(mine.map(\.task))
            var succeeded: [String: Int] = [:]
            for (e, fact) in s where e.type == EventType.taskSucceeded {
                if let (t, attempt) = fact.attempt { succeeded[t] = max(succeeded[t] ?? 0, attempt) }
            }
            for (e, fact) in s {
                guard let (task, attempt) = fact.attempt, tasks.contains(task) else { continue }
                let a = AttemptRef(dag: runKey.dag, run: runKey.run, task: task, attempt: attempt)
                guard mine.contains(a) || e.type == EventType.taskFailed else { continue }
                let recovered = (succeeded[task] ?? 0) > a.attempt
                switch fact {
                case .task(let t) where e.type == EventType.taskFailed:
                    findings.append(Finding(kind: "failed", attempt: a, seq: e.seq, time: isoTime(e.timestampMicros), detail: "\(a) failed: \(t.error ?? "?")", recovered: recovered))
                case .expectation(let x) where !x.passed:
                    findings.append(Finding(
                        kind: "expectation_failed", attempt: a, seq: e.seq, time: isoTime(e.timestampMicros),
                        detail: "\(a) expectation failed: \(x.name)\(x.message.map { $0.isEmpty ? "" : " (\($0))" } ?? "")", recovered: recovered))
                case .value(let value) where e.type == EventType.valueProduced || ["variable", "metric"].contains(value.kind ?? ""):
                    guard let v = value.value?.tree.number else { continue }
                    let name = e.type == EventType.valueProduced ? "output" : (value.name ?? "?")
                    valuesChecked += 1
                    let cacheKey = "\(runKey.dag)\u{1}\(task)\u{1}\(name)"
                    if historyCache[cacheKey] == nil { historyCache[cacheKey] = try history(dag: runKey.dag, task: task, name: name) }
                    // One value per earlier run (its last), queued before this run.
                    let earlier = (historyCache[cacheKey] ?? [:]).filter { $0.key != runKey.run && queued(RunKey(dag: runKey.dag, run: $0.key)) < queuedSeq }
                    guard earlier.count >= Self.minimumHistory, let lo = earlier.values.min(), let hi = earlier.values.max() else { continue }
                    if v < lo || v > hi {
                        let ratio = lo != 0 && v != 0 ? " (\(Self.ratioText(v, v < lo ? lo : hi)))" : ""
                        findings.append(Finding(
                            kind: "anomaly", attempt: a, seq: e.seq, time: isoTime(e.timestampMicros),
                            detail: "\(a) \(name) = \(JSONTree.number(v).text) is outside [\(JSONTree.number(lo).text), \(JSONTree.number(hi).text)], the range of \(earlier.count) earlier runs\(ratio)",
                            variable: name, value: v, history: HistoryRange(min: lo, max: hi, runs: earlier.count), recovered: false))
                    }
                default:
                    break
                }
            }
        }
        for c in chunks.sorted() {
            let rest = c.dropFirst(6)
            guard let slash = rest.firstIndex(of: "/") else { continue }
            let ds = String(rest[..<slash]), key = String(rest[rest.index(after: slash)...])
            for (e, fact) in try chunkFacts(dataset: ds, chunk: key) {
                guard let c = fact.change, c.to == .invalid else { continue }
                findings.append(Finding(
                    kind: "chunk_invalid", chunk: "\(ds)/\(key)", seq: e.seq, time: isoTime(e.timestampMicros),
                    detail: "chunk \(ds)/\(key) became invalid: \(c.reason ?? Self.list(c.expectations))", recovered: false))
            }
        }
        findings.sort { $0.seq < $1.seq }
        let culprit = findings.first { !$0.recovered } ?? findings.first
        var summary: String
        if let c = culprit {
            summary = "Culprit: \(c.detail) (seq \(c.seq), \(c.time))\(c.recovered ? "; a later attempt recovered" : "")."
            if findings.count > 1 { summary += " \(findings.count - 1) later finding(s) follow from or after it." }
        } else {
            summary = "Nothing failed, no expectation failed and no value left its history's range among \(attempts.count) attempt(s) (\(valuesChecked) numeric values checked)."
        }
        return CulpritReport(target: node, culprit: culprit, findings: findings, attemptsChecked: attempts.count, valuesChecked: valuesChecked, summary: summary)
    }

    /// The last value of `name` per run of a task, from the value index.
    private func history(dag: String, task: String, name: String) throws -> [String: Double] {
        var out: [String: (UInt64, Double)] = [:]
        for h in try views.values(name: name, task: "\(dag)/\(task)", match: .range(min: nil, max: nil), limit: 200_000) where h.dag == dag {
            guard let text = h.value, let v = Double(text) else { continue }
            if (out[h.run]?.0 ?? 0) < h.seq { out[h.run] = (h.seq, v) }
        }
        return out.mapValues(\.1)
    }

    static func ratioText(_ v: Double, _ bound: Double) -> String {
        let r = v / bound
        return r >= 1 ? String(format: "%.3g× the highest", r) : String(format: "1/%.3g of the lowest", 1 / r)
    }
}
