import ClewEngine
import ClewLedger
import ClewModel
import Foundation

/// Row-level lineage overhead: the same collection pipeline (filter → map → group/aggregate over `rows`
/// orders) with lineage tracked and untracked, alternating, `repetitions` times each;
/// `rowlineage_overhead = median(tracked) / median(untracked) - 1` (goal < 0.3, the bound Titian reports
/// for Spark).
public enum RowsBenchmark {
    public struct Result: Codable, Sendable {
        public var rows: Int
        public var repetitions: Int
        public var trackedMillis: Double
        public var untrackedMillis: Double
        public var overhead: Double
        public var groups: Int

        enum CodingKeys: String, CodingKey {
            case rows, repetitions, groups
            case trackedMillis = "tracked_ms"
            case untrackedMillis = "untracked_ms"
            case overhead = "rowlineage_overhead"
        }
    }

    struct Order {
        var id: Int
        var customer: Int
        var amount: Double
    }

    struct Total {
        var customer: Int
        var orders: Int
        var amount: Double
    }

    public static func run(rows: Int, repetitions: Int) -> Result {
        var rng = SplitMix64(seed: 7)
        let orders = (0..<rows).map { Order(id: $0, customer: Int(rng.next(below: 10_000)), amount: Double(rng.next(below: 100_000)) / 100) }
        func pipeline(_ input: Rows<Order>) -> Rows<Total> {
            input.filter { $0.amount >= 10 }
                .map { Order(id: $0.id, customer: $0.customer, amount: $0.amount * 1.2) }
                .group(by: \.customer) { c, members in Total(customer: c, orders: members.count, amount: members.reduce(0) { $0 + $1.amount }) }
        }
        var tracked: [Double] = [], untracked: [Double] = []
        var groups = 0
        for _ in 0..<repetitions {
            for track in [true, false] {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let out = pipeline(track ? Rows(orders) : Rows(untracked: orders))
                let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                groups = out.count
                if track {
                    tracked.append(ms)
                    // The lineage is really there: every group's sources are its members.
                    precondition(out.origin.sources(of: 0).count == out.elements[0].orders, "row lineage lost members")
                } else {
                    untracked.append(ms)
                }
            }
        }
        let t = LedgerBenchmark.median(tracked), u = LedgerBenchmark.median(untracked)
        return Result(rows: rows, repetitions: repetitions, trackedMillis: t, untrackedMillis: u, overhead: t / max(u, 1e-9) - 1, groups: groups)
    }
}
