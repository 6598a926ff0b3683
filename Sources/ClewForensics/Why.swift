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
        let datasetEvents = try chunkFacts(dataset: dataset, chunk: key)
        guard !datasetEvents.isEmpty else {
            throw ForensicsError(.notFound, "no chunk \(key) of dataset \(dataset) in the ledger (`clew chunks \(dataset)` lists them)")
        }
        var history: [Proof] = []
        var producers: Set<AttemptRef> = []
        var status = "pending", since: UInt64 = 0
        for (e, fact) in datasetEvents {
            switch fact {
            case .change(let c):
                status = c.to.rawValue
                since = e.seq
                var says = "\(c.from?.rawValue ?? "-") → \(c.to.rawValue)"
                if let r = c.run { says += " by \(c.dag.map { "\($0)/" } ?? "")\(r)\(c.task.map { " \($0)#\(c.attempt ?? 1)" } ?? "")" }
                if let loc = c.location { says += "; at \(loc)" }
                if let d = c.digest { says += " sha256 \(d.prefix(12))…" }
                if let v = c.validated { says += v ? "; expectations passed" : "; expectations FAILED" }
                if let r = c.reason { says += "; \(r)" }
                history.append(proof(e, says))
                if c.to == .producing, let r = c.run, let t = c.task, let dag = c.dag {
                    producers.insert(AttemptRef(dag: dag, run: r, task: t, attempt: c.attempt ?? 1))
                }
            case .lease(let l, let acquired):
                history.append(proof(e, "\(acquired ? "reader lease taken" : "reader lease released") by \(l.run) \(l.task) (pid \(l.pid) on \(l.host))"))
            }
        }
        // Failures of the producing tasks, in the runs that made the chunk.
        var failures: [Proof] = []
        var runStreams: [RunKey: [(event: Event, fact: Fact.RunFact)]] = [:]
        func stream(_ key: RunKey) throws -> [(event: Event, fact: Fact.RunFact)] {
            if let s = runStreams[key] { return s }
            let s = try runFacts(key)
            runStreams[key] = s
            return s
        }
        for (runKey, task) in Set(producers.map { RunTask(run: $0.runKey, task: $0.task) }).sorted().map({ ($0.run, $0.task) }) {
            for (e, fact) in try stream(runKey) {
                switch fact {
                case .task(let t) where t.task == task && (e.type == EventType.taskFailed || e.type == EventType.taskRetrying):
                    failures.append(proof(e, "\(runKey) \(task)#\(t.attempt ?? 1) \(e.type == EventType.taskFailed ? "failed" : "will retry"): \(t.error ?? t.reason ?? "?")"))
                case .expectation(let x) where x.task == task && !x.passed:
                    failures.append(proof(e, "\(task)#\(x.attempt ?? 1) expectation failed: \(x.name) \(x.message ?? "")"))
                default:
                    break
                }
            }
            for (e, fact) in try stream(runKey) {
                if case .resubmitted(let r) = fact {
                    failures.append(proof(e, "run \(runKey.run) resubmitted after it \(r.previousStatus ?? "stopped"); re-ran \(Self.list(r.rerun))"))
                }
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
        let decoder = JSONDecoder()
        var consumptions: [Consumption] = []
        for runKey in consumers.sorted() where run == nil || runKey.run == run || runKey.description == run {
            let s = try stream(runKey)
            for (i, (e, _)) in s.enumerated() where e.type == EventType.questionAnswered {
                guard let q = try? decoder.decode(QuestionAnswered.self, from: e.payload), q.dataset == dataset, q.chunk == key else { continue }
                let task = q.task ?? "?", attempt = q.attempt ?? 1
                let a = AttemptRef(dag: runKey.dag, run: runKey.run, task: task, attempt: attempt)
                var answers: [WhyAnswer] = []
                for (question, answer) in [("ready", q.ready), ("right", q.right), ("location", q.location), ("validated", q.validated), ("safe", q.safe)] {
                    answers.append(WhyAnswer(
                        question: question, answer: answer?.answer ?? false, evidence: answer?.evidence ?? "",
                        proofs: proofs(for: question, before: e.seq, history: datasetEvents)))
                }
                // What followed for this attempt.
                var outcome = "no outcome recorded"
                for (f, fact) in s[(i + 1)...] {
                    guard case .task(let t) = fact, t.task == task, (t.attempt ?? 1) == attempt else { continue }
                    if f.type == EventType.taskBlocked { outcome = "blocked at seq \(f.seq): \(t.reason ?? "")"; break }
                    if f.type == EventType.taskSucceeded { outcome = "read it and succeeded (seq \(f.seq))"; break }
                    if f.type == EventType.taskFailed { outcome = "read it and failed (seq \(f.seq)): \(t.error ?? "")"; break }
                }
                consumptions.append(Consumption(
                    attempt: a, asked: proof(e, "\(task)#\(attempt) asked the five questions"), allYes: q.allYes ?? false,
                    answers: answers, outcome: outcome))
            }
        }
        consumptions.sort { $0.asked.seq < $1.asked.seq }
        return WhyReport(
            dataset: dataset, chunk: key, status: status, since: since, history: history, failures: failures, consumptions: consumptions,
            summary: Self.summary(dataset: dataset, key: key, status: status, since: since, failures: failures, consumptions: consumptions))
    }

    /// A task of a run (to visit each producing task once, in order).
    private struct RunTask: Hashable, Comparable {
        var run: RunKey
        var task: String
        static func < (a: RunTask, b: RunTask) -> Bool { (a.run, a.task) < (b.run, b.task) }
    }

    /// The events behind one answer: the change that made the chunk readable (ready), the registered
    /// partitioning and neighbouring chunks (right), the recorded location and digest (location), the
    /// producer's expectations (validated), the leases and writers at the time (safe).
    private func proofs(for question: String, before seq: UInt64, history: [(event: Event, fact: ChunkFact)]) -> [Proof] {
        let earlier = history.filter { $0.event.seq < seq }
        let changes = earlier.compactMap { h in h.fact.change.map { (event: h.event, change: $0) } }
        let lastChange = changes.last
        switch question {
        case "ready":
            guard let c = lastChange else { return [] }
            return [proof(c.event, "status became \(c.change.to.rawValue)\(c.change.reason.map { ": \($0)" } ?? "")")]
        case "right":
            let produced = changes.last { $0.change.to == .producing }
            return produced.map { [proof($0.event, "produced for partition \($0.change.partition ?? "-") by \($0.change.run ?? "?")")] } ?? []
        case "location":
            let placed = changes.last { $0.change.location != nil }
            return placed.map { [proof($0.event, "location \($0.change.location ?? "?") sha256 \($0.change.digest?.prefix(12) ?? "-")…")] } ?? []
        case "validated":
            var out: [Proof] = []
            if let v = changes.last(where: { $0.change.validated != nil }) {
                out.append(proof(v.event, "validated \(v.change.validated == true ? "yes" : "no"): \(Self.list(v.change.expectations))"))
            }
            return out
        case "safe":
            var out: [Proof] = []
            if let c = lastChange { out.append(proof(c.event, "status \(c.change.to.rawValue): \(c.change.to == .producing ? "a writer holds it" : "no writer")")) }
            for l in earlier.suffix(6) {
                if case .lease(let lease, let acquired) = l.fact { out.append(proof(l.event, "\(acquired ? "lease taken" : "lease released") by \(lease.task)")) }
            }
            return out
        default:
            return []
        }
    }

    func proof(_ e: Event, _ says: String) -> Proof { Proof(seq: e.seq, time: isoTime(e.timestampMicros), type: e.type, says: says) }

    static func list(_ items: [String]?) -> String {
        guard let items else { return "-" }
        return items.isEmpty ? "none" : items.joined(separator: ", ")
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
