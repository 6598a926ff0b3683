import ClewLedger
import ClewModel
import ClewServer
import ClewTestSupport
import Foundation
import Testing

/// What the alerter makes of each event it alerts on (the deliveries themselves are tested end to end in
/// the CLI's AlertsTests, against a real SMTP server and a webhook).
@Suite("Alerter")
struct AlerterTests {
    static func event(_ type: String, stream: String, _ payload: some EventPayload, seq: UInt64 = 7) -> Event {
        Event(seq: seq, timestampMicros: 1_796_000_000_000_000, actor: "alice", stream: stream, type: type, payload: payload.payloadData)
    }

    @Test("a quarantine alerts each DAG it marks runs of; a retry, an SLA miss and a culprit name their task; other events nothing")
    func classify() async throws {
        try await withEngine { _, ledger, _ in
            let alerter = Alerter(ledger: ledger)
            let quarantine = LineageQuarantined(
                quarantine: "q1", source: "value:ab12", reason: "bad factor", runs: ["orders/r1", "orders/r2", "billing/r9"],
                rebuild: ["orders/r1": ["load"], "billing/r9": ["bill"]])
            let q = alerter.classify(Self.event(EventType.lineageQuarantined, stream: "quarantine/q1", quarantine))
            #expect(q.map(\.dag) == ["billing", "orders"] && q.allSatisfy { $0.rule == .quarantine })
            #expect(q.last?.subject == "quarantine q1 marks 2 run(s) of orders suspect", "\(q.map(\.subject))")
            #expect(Alerter.text(q[1], dashboard: "http://clew:8080").contains("Rebuild:    orders/r1: load"), "\(Alerter.text(q[1], dashboard: nil))")
            #expect(q[1].id == "7-quarantine-orders", "the id receivers drop repeats by")

            let retry = alerter.classify(Self.event(
                EventType.taskRetrying, stream: StreamID.run(dag: "orders", run: "r1"),
                TaskEvent(task: "load", attempt: 1, reason: "exit code 2", nextAttempt: 2, backoffMillis: 1_500)))
            #expect(retry.first?.rule == .retry && retry.first?.task == "load" && retry.first?.subject == "task load of orders failed attempt 1, retrying (run r1)")

            let miss = SLAMissed(
                dag: "orders", run: "r1", scope: "dag", tasks: [SLATask(task: "load", state: "running")], slaMillis: 1_800_000,
                deadlineMicros: 1_796_000_000_000_000, detectedMicros: 1_796_000_001_000_000, lateByMillis: 1_000, seenBy: "scheduler")
            let sla = alerter.classify(Self.event(EventType.slaMissed, stream: StreamID.run(dag: "orders", run: "r1"), miss))
            #expect(sla.first?.subject == "run r1 of orders missed its SLA of 30 min 0 s", "\(sla.map(\.subject))")

            let culprit = alerter.classify(Self.event(
                EventType.culpritFound, stream: StreamID.culprits,
                CulpritFound(target: "run:orders/r1", kind: "anomaly", dag: "orders", run: "r1", task: "clean", attempt: 1, findingSeq: 3, detail: "factor 11 outside 0.9..1.1")))
            #expect(culprit.first?.rule == .culprit && culprit.first?.subject == "culprit of run:orders/r1: anomaly at task clean attempt 1 of orders")

            #expect(alerter.classify(Self.event(EventType.taskSucceeded, stream: StreamID.run(dag: "orders", run: "r1"), TaskEvent(task: "load"))).isEmpty)
            #expect(alerter.classify(Self.event(EventType.runSucceeded, stream: StreamID.run(dag: "orders", run: "r1"), RunEnded(run: "r1"))).isEmpty)
        }
    }
}
