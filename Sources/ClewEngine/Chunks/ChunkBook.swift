import ClewLedger
import ClewModel
import Foundation
import Synchronization

/// One of the five answers, with its evidence.
public struct Answer: Sendable, Hashable {
    public var yes: Bool
    public var evidence: String

    /// The answer as `question.answered` records it.
    var recorded: QuestionAnswer { QuestionAnswer(answer: yes, evidence: evidence) }
}

/// The five questions asked before a task consumes a chunk.
public struct FiveAnswers: Sendable, Hashable {
    public var dataset: String
    public var chunk: String
    public var ready: Answer
    public var right: Answer
    public var location: Answer
    public var validated: Answer
    public var safe: Answer

    public var allYes: Bool { ready.yes && right.yes && location.yes && validated.yes && safe.yes }

    /// The first "no", as a reason a task is blocked.
    public var blockingReason: String? {
        for (name, a) in [("ready", ready), ("right", right), ("location", location), ("validated", validated), ("safe", safe)]
        where !a.yes {
            return "chunk \(dataset)/\(chunk) is not \(name): \(a.evidence)"
        }
        return nil
    }
}

/// Chunk states of the datasets the engine touches, folded incrementally from their streams in the log
/// (`dataset/<name>`), and the five questions over them.
final class ChunkBook: Sendable {
    let ledger: Ledger
    let states = Mutex([String: DatasetState]())
    /// Leases held by this process, so a lease is never mistaken for a stale one.
    let ownLeases = Mutex(Set<String>())
    /// One admission at a time in this process (a worker's attempts each have a recorder of their own).
    let admission = Turnstile()
    static let host = ProcessInfo.processInfo.hostName

    init(ledger: Ledger) { self.ledger = ledger }

    /// The dataset's state, including every event already durable in the log.
    func state(of dataset: String) throws -> DatasetState {
        var state = states.withLock { $0[dataset] } ?? DatasetState(name: dataset)
        for event in try ledger.events(inStream: StreamID.dataset(dataset), after: state.lastSeq) {
            state.apply(seq: event.seq, type: event.type, payload: event.payload)
        }
        let folded = state
        states.withLock { s in
            if (s[dataset]?.lastSeq ?? 0) < folded.lastSeq { s[dataset] = folded }
        }
        return state
    }

    /// Answers the five questions for consuming `key` of `dataset`.
    func ask(dataset spec: DatasetSpec, key: String, state: DatasetState) -> FiveAnswers {
        let chunk = state.chunks[key]
        let produced = chunk?.produced
        let no = { (s: String) in Answer(yes: false, evidence: s) }
        let yes = { (s: String) in Answer(yes: true, evidence: s) }

        // Ready
        let ready: Answer
        if let chunk {
            ready = chunk.status.isReadable
                ? yes("status \(chunk.status.rawValue) since seq \(chunk.since)\(producerNote(produced))")
                : no("status is \(chunk.status.rawValue) (since seq \(chunk.since))\(producerNote(produced))")
        } else {
            ready = no("no chunk '\(key)' has been recorded in dataset \(spec.name)")
        }

        // Right
        let right: Answer
        switch spec.partitioning {
        case .time(let seconds):
            let width = seconds * 1_000_000
            if let start = PartitionKey.parse(key) {
                if start % width != 0 {
                    right = no("key \(key) does not start a \(seconds)s window")
                } else {
                    let readable = state.chunks.values.filter { $0.status.isReadable || $0.key == key }
                    let overlapping = readable.compactMap { c -> String? in
                        guard c.key != key, let s = PartitionKey.parse(c.key) else { return nil }
                        return s < start + width && start < s + width ? c.key : nil
                    }
                    let earlier = readable.compactMap { PartitionKey.parse($0.key) }.filter { $0 < start }
                    let previous = PartitionKey.string(micros: start - width)
                    if !overlapping.isEmpty {
                        right = no("window \(key) overlaps chunk(s) \(overlapping.sorted().joined(separator: ", "))")
                    } else if !earlier.isEmpty, state.chunks[previous]?.status.isReadable != true {
                        right = no("gap: the previous window \(previous) is missing or not ready")
                    } else {
                        right = yes("window [\(key), \(PartitionKey.string(micros: start + width))) of \(seconds)s; no overlap, no gap before it")
                    }
                }
            } else {
                right = no("key '\(key)' is not a UTC time; dataset \(spec.name) is partitioned by \(seconds)s windows")
            }
        case .sequence:
            if let n = Int(key), n >= 1 {
                let missing = (1..<n).filter { state.chunks[String($0)]?.status.isReadable != true }
                right = missing.isEmpty
                    ? yes("sequence \(n); chunks 1-\(n - 1) present")
                    : no("gap: chunk(s) \(missing.prefix(5).map(String.init).joined(separator: ", "))\(missing.count > 5 ? " …" : "") of the sequence are missing or not ready")
            } else {
                right = no("key '\(key)' is not a sequence number ≥ 1")
            }
        case .key:
            right = yes("key \(key)\(produced?.partition.map { " produced for partition \($0)" } ?? "")")
        }

        // Location
        let location: Answer
        if let loc = produced?.location {
            if loc.hasPrefix("value:") {
                let digest = String(loc.dropFirst(6))
                location = produced?.digest == digest ? yes("held as value \(digest.prefix(12))… in the ledger") : no("value reference \(loc) does not match the recorded digest")
            } else {
                let url = URL(fileURLWithPath: loc)
                if !FileManager.default.fileExists(atPath: loc) {
                    location = no("\(loc) does not exist")
                } else if let recorded = produced?.digest {
                    let now = FileDigest.sha256(url)
                    location = now == recorded ? yes("\(loc) exists, sha256 \(recorded.prefix(12))… matches") : no("\(loc) changed: sha256 \(now?.prefix(12) ?? "unreadable")… but \(recorded.prefix(12))… was recorded")
                } else {
                    location = no("\(loc) exists but no digest was recorded for it")
                }
            }
        } else {
            location = no("no location was recorded for the chunk")
        }

        // Validated
        let validated: Answer
        switch produced?.validated {
        case true?: validated = yes("expectations passed: \((produced?.expectations ?? []).joined(separator: "; "))")
        case false?: validated = no("expectations failed: \((produced?.expectations ?? []).joined(separator: "; "))")
        case nil:
            validated = spec.requiresValidation
                ? no("no expectations were evaluated and dataset \(spec.name) requires validation")
                : yes("no expectations declared; dataset \(spec.name) does not require validation")
        }

        // Safe
        let safe: Answer
        if chunk?.status == .producing {
            safe = no("being written by run \(produced?.run ?? "?") task \(produced?.task ?? "?")")
        } else {
            safe = yes("no writer holds it")
        }
        return FiveAnswers(dataset: spec.name, chunk: key, ready: ready, right: right, location: location, validated: validated, safe: safe)
    }

    /// Live reader leases on a chunk (a lease of a dead process on this host is stale and ignored).
    func liveLeases(_ chunk: ChunkState?) -> [ChunkLease] {
        guard let chunk else { return [] }
        let own = ownLeases.withLock { $0 }
        return chunk.leases.values.filter { lease in
            if own.contains(lease.lease) { return true }
            if lease.host == Self.host { return lease.pid != getpid() && Self.isAlive(lease.pid) }
            return true
        }
    }

    /// Whether process `pid` of this host is alive: it exists and is not a zombie (a process killed
    /// whose parent has not reaped it yet still answers `kill(pid, 0)`).
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    private func producerNote(_ c: ChunkChange?) -> String {
        guard let c, let run = c.run else { return "" }
        return ", produced by run \(run) task \(c.task ?? "?")"
    }
}

/// SHA-256 of a file, or of a directory as the sorted list of its files' relative paths and digests.
enum FileDigest {
    static func sha256(_ url: URL) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return nil }
        if !isDirectory.boolValue { return ContentDigest.sha256(file: url) }
        guard let walker = FileManager.default.enumerator(atPath: url.path) else { return nil }
        var lines: [String] = []
        while let rel = walker.nextObject() as? String {
            let file = url.appendingPathComponent(rel)
            var dir: ObjCBool = false
            if FileManager.default.fileExists(atPath: file.path, isDirectory: &dir), !dir.boolValue {
                lines.append("\(rel) \(ContentDigest.sha256(file: file) ?? "unreadable")")
            }
        }
        return ContentDigest.sha256(Data(lines.sorted().joined(separator: "\n").utf8))
    }

    static func size(_ url: URL) -> Int64? {
        (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value
    }
}
