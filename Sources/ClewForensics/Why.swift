import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

/// An event that proves part of an answer: its seq, time, type and what it says.
public struct Proof: Sendable, Hashable, Codable {
    public var seq: UInt64
    public var time: String
    public var type: String
    public var says: String
}

/// One of the five answers for a consumption, as recorded, with the events that prove it.
public struct WhyAnswer: Sendable, Hashable, Codable {
    /// ready, right, location, validated or safe.
    public var question: String
    public var answer: Bool
    public var evidence: String
    public var proofs: [Proof]
}

/// One time a task asked whether it could read the chunk.
public struct Consumption: Sendable, Hashable, Codable {
    public var attempt: AttemptRef
    /// The `question.answered` event.
    public var asked: Proof
    public var allYes: Bool
    public var answers: [WhyAnswer]
    /// What happened next: consumed, blocked (with the reason), or the attempt's outcome.
    public var outcome: String
}

/// The five-question report of a chunk: its life, and every consumption with each answer proved by events.
public struct WhyReport: Sendable, Codable {
    public var dataset: String
    public var chunk: String
    /// The chunk's status now, and since which seq.
    public var status: String
    public var since: UInt64
    /// Every status change of the chunk, with who made it and why.
    public var history: [Proof]
    /// Failures behind the chunk's history (attempts of its producer that failed), each with its error.
    public var failures: [Proof]
    public var consumptions: [Consumption]
    /// A one-paragraph answer for people.
    public var summary: String
}

extension Forensics {
    /// The five-question report for `dataset`/`key`: each consumption (or only `run`'s), with the events
    /// and times that prove each answer, the chunk's history and the failures behind it.
    public func why(dataset: String, chunk key: String, run: String? = nil) throws -> WhyReport {
        let datasetEvents = try events(StreamID.dataset(dataset)).filter { $0.payload["chunk"]?.string == key }
        guard !datasetEvents.isEmpty else {
            throw ForensicsError(.notFound, "no chunk \(key) of dataset \(dataset) in the ledger (`clew chunks \(dataset)` lists them)")
        }
        var history: [Proof] = []
        var producers: Set<AttemptRef> = []
        var status = "pending", since: UInt64 = 0
        for (e, p) in datasetEvents {
            switch e.type {
            case EventType.chunkStatusChanged:
                let from = p["from"]?.string ?? "-", to = p["to"]?.string ?? "?"
                status = to
                since = e.seq
                var says = "\(from) → \(to)"
                if let r = p["run"]?.string { says += " by \(p["dag"]?.string.map { "\($0)/" } ?? "")\(r)\(p["task"]?.string.map { " \($0)#\(p["attempt"]?.int ?? 1)" } ?? "")" }
                if let loc = p["location"]?.string { says += "; at \(loc)" }
                if let d = p["digest"]?.string { says += " sha256 \(d.prefix(12))…" }
                if let v = p["validated"]?.bool { says += v ? "; expectations passed" : "; expectations FAILED" }
                if let r = p["reason"]?.string { says += "; \(r)" }
                history.append(proof(e, says))
                if to == "producing", let r = p["run"]?.string, let t = p["task"]?.string, let dag = p["dag"]?.string {
                    producers.insert(AttemptRef(dag: dag, run: r, task: t, attempt: p["attempt"]?.int ?? 1))
                }
            case EventType.chunkLeaseAcquired, EventType.chunkLeaseReleased:
                history.append(proof(e, "\(e.type == EventType.chunkLeaseAcquired ? "reader lease taken" : "reader lease released") by \(p["run"]?.string ?? "?") \(p["task"]?.string ?? "?") (pid \(p["pid"]?.int ?? 0) on \(p["host"]?.string ?? "?"))"))
            default:
                history.append(proof(e, e.type))
            }
        }
        // Failures of the producing tasks, in the runs that made the chunk.
        var failures: [Proof] = []
        var runStreams: [String: [(event: Event, payload: [String: JSONTree])]] = [:]
        func stream(_ key: RunKey) throws -> [(event: Event, payload: [String: JSONTree])] {
            if let s = runStreams[key.stream] { return s }
            let s = try events(key.stream)
            runStreams[key.stream] = s
            return s
        }
        for task in Set(producers.map { ($0.runKey, $0.task) }.map { "\($0.0.dag)\u{1}\($0.0.run)\u{1}\($0.1)" }).sorted() {
            let parts = task.split(separator: "\u{1}").map(String.init)
            for (e, p) in try stream(RunKey(dag: parts[0], run: parts[1])) where p["task"]?.string == parts[2] {
                switch e.type {
                case EventType.taskFailed, EventType.taskRetrying:
                    failures.append(proof(e, "\(parts[0])/\(parts[1]) \(parts[2])#\(p["attempt"]?.int ?? 1) \(e.type == EventType.taskFailed ? "failed" : "will retry"): \(p["error"]?.string ?? "?")"))
                case EventType.expectationEvaluated where p["passed"]?.bool == false:
                    failures.append(proof(e, "\(parts[2])#\(p["attempt"]?.int ?? 1) expectation failed: \(p["name"]?.string ?? "?") \(p["message"]?.string ?? "")"))
                default:
                    break
                }
            }
            for (e, p) in try stream(RunKey(dag: parts[0], run: parts[1])) where e.type == EventType.runResubmitted {
                failures.append(proof(e, "run \(parts[1]) resubmitted after it \(p["previous_status"]?.string ?? "stopped"); re-ran \(Self.list(p["rerun"]))"))
            }
        }
        failures.sort { $0.seq < $1.seq }

        // Consumptions: the attempts that used the chunk (lineage), then their question.answered events.
        var consumers: Set<RunKey> = []
        for e in try views.lineage(node: LineageNode.chunk(dataset: dataset, key: key), direction: .down, depth: 1) where e.kind == "used" {
            if let a = AttemptRef(node: e.to) { consumers.insert(a.runKey) }
        }
        // Blocked askers never took a lease, so they are not in the lineage: find them by the chunk's DAGs.
        for p in producers { consumers.insert(p.runKey) }
        var consumptions: [Consumption] = []
        for runKey in consumers.sorted() where run == nil || runKey.run == run || runKey.description == run {
            let s = try stream(runKey)
            for (i, (e, p)) in s.enumerated()
            where e.type == EventType.questionAnswered && p["dataset"]?.string == dataset && p["chunk"]?.string == key {
                let task = p["task"]?.string ?? "?", attempt = p["attempt"]?.int ?? 1
                let a = AttemptRef(dag: runKey.dag, run: runKey.run, task: task, attempt: attempt)
                var answers: [WhyAnswer] = []
                for q in ["ready", "right", "location", "validated", "safe"] {
                    let ans = p[q]
                    answers.append(WhyAnswer(
                        question: q, answer: ans?["answer"]?.bool ?? false, evidence: ans?["evidence"]?.string ?? "",
                        proofs: proofs(for: q, before: e.seq, history: datasetEvents, failures: failures, runEvents: s, asker: a)))
                }
                // What followed for this attempt.
                var outcome = "no outcome recorded"
                for (f, fp) in s[(i + 1)...] where fp["task"]?.string == task && (fp["attempt"]?.int ?? 1) == attempt {
                    if f.type == EventType.taskBlocked { outcome = "blocked at seq \(f.seq): \(fp["reason"]?.string ?? "")"; break }
                    if f.type == EventType.taskSucceeded { outcome = "read it and succeeded (seq \(f.seq))"; break }
                    if f.type == EventType.taskFailed { outcome = "read it and failed (seq \(f.seq)): \(fp["error"]?.string ?? "")"; break }
                }
                consumptions.append(Consumption(
                    attempt: a, asked: proof(e, "\(task)#\(attempt) asked the five questions"), allYes: p["all_yes"]?.bool ?? false,
                    answers: answers, outcome: outcome))
            }
        }
        consumptions.sort { $0.asked.seq < $1.asked.seq }
        return WhyReport(
            dataset: dataset, chunk: key, status: status, since: since, history: history, failures: failures, consumptions: consumptions,
            summary: Self.summary(dataset: dataset, key: key, status: status, since: since, failures: failures, consumptions: consumptions))
    }

    /// The events behind one answer: the change that made the chunk readable (ready), the registered
    /// partitioning and neighbouring chunks (right), the recorded location and digest (location), the
    /// producer's expectations (validated), the leases and writers at the time (safe).
    private func proofs(
        for question: String, before seq: UInt64, history: [(event: Event, payload: [String: JSONTree])], failures: [Proof],
        runEvents: [(event: Event, payload: [String: JSONTree])], asker: AttemptRef
    ) -> [Proof] {
        let earlier = history.filter { $0.event.seq < seq }
        let lastChange = earlier.last { $0.event.type == EventType.chunkStatusChanged }
        switch question {
        case "ready":
            guard let c = lastChange else { return [] }
            return [proof(c.event, "status became \(c.payload["to"]?.string ?? "?")\(c.payload["reason"]?.string.map { ": \($0)" } ?? "")")]
        case "right":
            let produced = earlier.last { $0.payload["to"]?.string == "producing" }
            return produced.map { [proof($0.event, "produced for partition \($0.payload["partition"]?.string ?? "-") by \($0.payload["run"]?.string ?? "?")")] } ?? []
        case "location":
            let placed = earlier.last { $0.payload["location"] != nil }
            return placed.map { [proof($0.event, "location \($0.payload["location"]?.string ?? "?") sha256 \($0.payload["digest"]?.string?.prefix(12) ?? "-")…")] } ?? []
        case "validated":
            var out: [Proof] = []
            if let v = earlier.last(where: { $0.payload["validated"] != nil }) {
                out.append(proof(v.event, "validated \(v.payload["validated"]?.bool == true ? "yes" : "no"): \(Self.list(v.payload["expectations"]))"))
            }
            return out
        case "safe":
            var out: [Proof] = []
            if let c = lastChange { out.append(proof(c.event, "status \(c.payload["to"]?.string ?? "?"): \(c.payload["to"]?.string == "producing" ? "a writer holds it" : "no writer")")) }
            for l in earlier.suffix(6) where l.event.type == EventType.chunkLeaseAcquired || l.event.type == EventType.chunkLeaseReleased {
                out.append(proof(l.event, "\(l.event.type == EventType.chunkLeaseAcquired ? "lease taken" : "lease released") by \(l.payload["task"]?.string ?? "?")"))
            }
            return out
        default:
            return []
        }
    }

    func proof(_ e: Event, _ says: String) -> Proof { Proof(seq: e.seq, time: isoTime(e.timestampMicros), type: e.type, says: says) }

    static func list(_ v: JSONTree?) -> String {
        guard case .array(let a)? = v else { return "-" }
        return a.isEmpty ? "none" : a.map { $0.string ?? $0.text }.joined(separator: ", ")
    }

    static func summary(dataset: String, key: String, status: String, since: UInt64, failures: [Proof], consumptions: [Consumption]) -> String {
        var s = "Chunk \(dataset)/\(key) is \(status) (since seq \(since))."
        if !failures.isEmpty {
            s += " Its producer failed \(failures.filter { $0.type == EventType.taskFailed }.count) time(s) first: \(failures.first { $0.type == EventType.taskFailed }?.says ?? failures[0].says)."
        }
        if let resubmit = failures.last(where: { $0.type == EventType.runResubmitted }) { s += " Recovered by resubmission at seq \(resubmit.seq)." }
        let read = consumptions.filter(\.allYes)
        let refused = consumptions.filter { !$0.allYes }
        if !read.isEmpty { s += " Read \(read.count) time(s) after all five answers were yes (first by \(read[0].attempt) at seq \(read[0].asked.seq))." }
        if let r = refused.first, let no = r.answers.first(where: { !$0.answer }) {
            s += " Refused \(refused.count) time(s): first to \(r.attempt) at seq \(r.asked.seq), not \(no.question): \(no.evidence)."
        }
        if consumptions.isEmpty { s += " No task has asked to read it." }
        return s
    }
}
