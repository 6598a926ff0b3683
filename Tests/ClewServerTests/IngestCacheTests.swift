import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Testing

@testable import ClewServer

/// OpenLineage ingest keeps what it folded from the log in caches with a bound (tools/load.sh found them
/// growing with every run a server ever saw). Dropping them must change nothing: the same events, sent
/// through a cache of 2 entries and through one that never drops, make the same ledger.
@Suite("OpenLineage ingest caches")
struct IngestCacheTests {
    /// START and COMPLETE for `runs` task runs of one Airflow DAG run, the COMPLETEs after every START,
    /// with each event also sent twice (a client's retry).
    static func bodies(runs: Int) -> [String] {
        var starts: [String] = []
        var completes: [String] = []
        for i in 0..<runs {
            let id = String(format: "0190a8f2-1c2d-7a00-8000-%012x", 0x100 + i)
            let event = SchemaValidatorTests.runEvent {
                $0.replacingOccurrences(of: "0190a8f2-1c2d-7a00-8000-0000000000aa", with: id)
                    .replacingOccurrences(of: #""name":"dag.task""#, with: #""name":"dag.task_\#(i)""#)
            }
            starts.append(event.replacingOccurrences(of: #""COMPLETE""#, with: #""START""#)
                .replacingOccurrences(of: "10:00:05.000Z", with: "10:00:0\(i % 5).000Z"))
            completes.append(event)
        }
        return starts + starts + completes + completes
    }

    /// The ledger's events after ingesting `bodies` one request each, as (type, stream, payload) with
    /// the arrival stamps taken out.
    static func ingest(_ bodies: [String], cacheLimit: Int) async throws -> (events: [String], cached: (Int, Int)) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clew-ingest-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir)
        defer { ledger.close() }
        let schema = try OpenLineageSchema.embedded()
        let ingest = OpenLineageIngest(ledger: ledger, schema: schema, cacheLimit: cacheLimit)
        for body in bodies {
            let checked = try OpenLineageRoutes.checkedEvents(Data(body.utf8), batch: false, schema: schema)
            _ = try await ingest.ingest(checked, audit: nil)
        }
        var events: [String] = []
        try ledger.scan { e in
            events.append("\(e.type) \(e.stream) \(String(decoding: e.payload, as: UTF8.self))")
            return true
        }
        let counts = await ingest.cachedCounts
        return (events, (counts.openLineageRuns, counts.runs))
    }

    @Test("a cache of 2 entries makes the same ledger as one that never drops; retries stay duplicates after their run was dropped")
    func boundedCachesChangeNothing() async throws {
        let bodies = Self.bodies(runs: 12)
        let unbounded = try await Self.ingest(bodies, cacheLimit: 1_000_000)
        let bounded = try await Self.ingest(bodies, cacheLimit: 2)
        #expect(unbounded.events.count > 24, "\(unbounded.events.count) events")
        // Arrival stamps differ between the two runs; everything else must not.
        func stripped(_ events: [String]) -> [String] {
            events.map { $0.replacingOccurrences(of: #""(time_us|received_us|arrival_us)":[0-9]+"#, with: "", options: .regularExpression) }
        }
        #expect(stripped(bounded.events) == stripped(unbounded.events))
        #expect(bounded.events.filter { $0.hasPrefix(EventType.openLineageReceived) }.count == 24, "each event once, the retries duplicates")
        #expect(bounded.cached.0 <= 3 && bounded.cached.1 <= 3, "caches bounded: \(bounded.cached)")
        #expect(unbounded.cached.0 == 12, "\(unbounded.cached)")
    }
}
