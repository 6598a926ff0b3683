import ClewLedger
import ClewModel
import Foundation

/// Realistic events from the demo pipeline, as drafts and as the size of the same events as JSON lines.
enum DemoCorpus {
    static func events(count: Int, seed: UInt64 = 42) -> ([NewEvent], Int) {
        let perRun = 330
        let domain = DemoPipeline(seed: seed).events(runs: count / perRun + 2).prefix(count)
        var jsonl = 0
        let drafts = domain.map { e -> NewEvent in
            jsonl += e.jsonLine.utf8.count + 1
            return NewEvent(domain: e)
        }
        return (drafts, jsonl)
    }
}

extension NewEvent {
    init(domain e: DomainEvent) {
        self.init(
            type: e.type, stream: e.stream, actor: e.actor,
            time: Date(timeIntervalSince1970: Double(e.timestampMicros) / 1_000_000), payload: e.payload)
        timestampMicros = e.timestampMicros
    }
}
