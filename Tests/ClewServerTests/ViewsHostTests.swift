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

    @Test("a read folds slice by slice to the log's end as it arrived; a read that may not wait answers between two slices")
    func readsFoldSlices() async throws {
        try await Self.withViews { ledger, views in
            _ = try await ledger.append(contentsOf: Self.drafts(runs: 40))
            let last = try ledger.lastSeq
            let slice: UInt64 = 50
            #expect(last > 100 * slice, "\(last) events")
            let host = ViewsHost(ledger: ledger, views: views, slice: slice, readWait: .seconds(600))
            // No follower: nothing folds until a read asks.
            #expect(try await host.read(wait: .zero) { v, _ in v.checkpoints().values.min() ?? 0 } == 0)

            let patient = Task { try await host.read { v, _ in (v.checkpoints().values.min() ?? 0, try v.runs(RunQuery(dag: "daily_sales", limit: 1_000))) } }
            // Once the patient read has folded its first slice, with most of the log still to fold, a read
            // that may not wait is queued behind the slice in progress and answered before the next one.
            let deadline = ContinuousClock.now + .seconds(120)
            while host.seq == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
            let seen = host.seq
            #expect(seen > 0 && seen + 2 * slice <= last, "the patient read had folded \(seen) of \(last) events")
            let between = try await host.read(wait: .zero) { v, _ in v.checkpoints().values.min() ?? 0 }
            #expect(between >= seen && between <= seen + slice && between % slice == 0, "answered at \(between), after \(seen)")

            let (reached, runs) = try await patient.value
            #expect(reached == last)
            #expect(runs.count == 40, "\(runs.map(\.run))")
            let status = try await host.status()
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
