import ClewLedger
import ClewModel
import ClewProjections
import ClewTestSupport
import Foundation
import Logging
import Testing

@testable import ClewServer

/// `clew serve`'s views fold the log in slices, each its own turn on their queue, so reads are served
/// between slices however far behind the views are (tools/load.sh found reads unanswered for 20 s while
/// one catch-up folded everything ingest had appended).
@Suite("Views host: reads between catch-up slices")
struct ViewsHostTests {
    /// The demo pipeline's events for `runs` daily runs, as drafts.
    static func drafts(runs: Int) -> [NewEvent] {
        DemoPipeline(seed: 3).events(runs: runs).map { e in
            var draft = NewEvent(type: e.type, stream: e.stream, actor: e.actor, payload: e.payload)
            draft.timestampMicros = e.timestampMicros
            return draft
        }
    }

    static func withViews<T>(_ body: (Ledger, Views) async throws -> T) async throws -> T {
        let dir = try makeTemporaryDirectory("clew-views-host")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("l"))
        defer { ledger.close() }
        let views = try Views.open(ledger: ledger)
        defer { views.close() }
        return try await body(ledger, views)
    }

    @Test("a read that may not wait folds one slice and answers; one that may reads all the log held when it arrived")
    func readsFoldSlices() async throws {
        try await Self.withViews { ledger, views in
            _ = try await ledger.append(contentsOf: Self.drafts(runs: 12))
            let last = try ledger.lastSeq
            #expect(last > 1_000, "\(last) events")
            let impatient = ViewsHost(ledger: ledger, views: views, slice: 100, readWait: .zero)
            let first = try await impatient.read { v, _ in v.checkpoints().values.min() ?? 0 }
            #expect(first == 100, "one slice of 100 events from seq 0, got \(first)")
            let second = try await impatient.read { v, _ in v.checkpoints().values.min() ?? 0 }
            #expect(second == 200, "the next read folds the next slice, got \(second)")

            // Appended after the patient read arrives: not waited for.
            let patient = ViewsHost(ledger: ledger, views: views, slice: 100, readWait: .seconds(600))
            let (reached, runs) = try await patient.read { v, _ in
                (v.checkpoints().values.min() ?? 0, try v.runs(RunQuery(dag: "daily_sales", limit: 1_000)))
            }
            #expect(reached == last)
            #expect(runs.count == 12, "\(runs.map(\.run))")
            let status = try await patient.status()
            #expect(status.allSatisfy { $0.checkpoint == last }, "\(status.map { ($0.view, $0.checkpoint) })")
        }
    }

    @Test("the follower catches the views up after appends with no read asking")
    func followerCatchesUp() async throws {
        try await Self.withViews { ledger, views in
            let host = ViewsHost(ledger: ledger, views: views, slice: 250, readWait: .zero)
            let follower = host.follow(every: .seconds(60), logger: Logger(label: "test"))
            defer { follower.cancel() }
            for runs in [3, 9] {
                _ = try await ledger.append(contentsOf: Self.drafts(runs: runs))
                let last = try ledger.lastSeq
                // This process's commit wakes the follower (the 60 s poll never comes); status() folds nothing.
                let deadline = ContinuousClock.now + .seconds(120)
                var checkpoints: [UInt64] = []
                while ContinuousClock.now < deadline {
                    checkpoints = try await host.status().map(\.checkpoint)
                    if checkpoints.allSatisfy({ $0 == last }) { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(checkpoints.allSatisfy { $0 == last }, "views at \(checkpoints), log at \(last)")
            }
            follower.cancel()
            await follower.value
        }
    }
}
