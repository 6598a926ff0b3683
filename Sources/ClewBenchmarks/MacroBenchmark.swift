import ClewEngine
import ClewModel
import Foundation
import Synchronization

/// What `#traced` costs a Swift DSL closure: the same ETL body (parse CSV rows, filter, group,
/// aggregate) without and with the macro, alternating, in one process; the steps go to a sink that
/// counts them (the ledger's own cost is `clew bench engine`'s).
package enum MacroBenchmark {
    package struct Figures: Codable, Sendable {
        package var rows: Int
        package var repetitions: Int
        package var offSeconds: Double
        package var onSeconds: Double
        package var overhead: Double
        package var steps: Int

        enum CodingKeys: String, CodingKey {
            case rows, repetitions, offSeconds = "swift_capture_off_s", onSeconds = "swift_capture_on_s"
            case overhead = "swift_capture_overhead", steps = "swift_steps"
        }
    }

    final class CountingSink: StepSink {
        let count = Atomic<Int>(0)
        func variable(step: Int, name: String, kind: String, value: RecordedValue, source: String?, count: Int?) {
            self.count.add(1, ordering: .relaxed)
        }
        func replayed(step: Int, kind: String, name: String) throws -> RecordedValue? { nil }
    }

    typealias Body = @Sendable (TaskContext) async throws -> [String: Double]

    static func plain(_ text: String) -> Body {
        { _ in
            var byRegion: [Substring: (count: Int, sum: Double)] = [:]
            var kept = 0
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: ",")
                let amount = Double(fields[2]) ?? 0
                if amount < 0 { continue }
                let region = fields[1]
                kept += 1
                let agg = byRegion[region, default: (0, 0)]
                byRegion[region] = (agg.count + 1, agg.sum + amount)
            }
            return Dictionary(uniqueKeysWithValues: byRegion.map { (String($0.key), ($0.value.sum / Double($0.value.count) * 100).rounded() / 100) })
                .merging(["kept": Double(kept)]) { a, _ in a }
        }
    }

    /// ``plain(_:)``'s body, word for word, under `#traced`: the macro rewrites a closure literal, so the
    /// two cannot share one (the copy is the measurement).
    static func traced(_ text: String) -> Body {
        #traced { ctx in
            var byRegion: [Substring: (count: Int, sum: Double)] = [:]
            var kept = 0
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: ",")
                let amount = Double(fields[2]) ?? 0
                if amount < 0 { continue }
                let region = fields[1]
                kept += 1
                let agg = byRegion[region, default: (0, 0)]
                byRegion[region] = (agg.count + 1, agg.sum + amount)
            }
            return Dictionary(uniqueKeysWithValues: byRegion.map { (String($0.key), ($0.value.sum / Double($0.value.count) * 100).rounded() / 100) })
                .merging(["kept": Double(kept)]) { a, _ in a }
        }
    }

    package static func run(rows: Int, repetitions: Int) async throws -> Figures {
        var lines = ["id,region,amount"]
        lines.reserveCapacity(rows + 1)
        for i in 0..<rows { lines.append("\(i),r\(i % 12),\((i * 37) % 1000 - 50).5") }
        let text = lines.joined(separator: "\n")
        let sink = CountingSink()
        func context() -> TaskContext {
            TaskContext(
                dag: "bench", runID: "r", taskID: "etl", attempt: 1, params: [:], partition: nil, interval: nil, outputPath: "/tmp",
                seed: 1, inputs: [:], consumedChunks: [], sink: sink)
        }
        let off = plain(text), on = traced(text)
        let expected = try await off(context())
        guard try await on(context()) == expected else { throw EngineError("the traced closure returned another result") }
        sink.count.store(0, ordering: .relaxed)
        _ = try await on(context())
        let steps = sink.count.load(ordering: .relaxed)
        var offs: [Double] = [], ons: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<repetitions {
            var start = clock.now
            _ = try await off(context())
            offs.append((clock.now - start).seconds)
            start = clock.now
            _ = try await on(context())
            ons.append((clock.now - start).seconds)
        }
        let offMedian = LedgerBenchmark.median(offs), onMedian = LedgerBenchmark.median(ons)
        return Figures(rows: rows, repetitions: repetitions, offSeconds: offMedian, onSeconds: onMedian, overhead: onMedian / offMedian - 1, steps: steps)
    }
}
