import ClewLedger
import ClewModel
import ClewProjections
public import Foundation

/// `clew bench views`: how fast the views rebuild from the log, against reading and decoding the same log
/// with no projection (the same run, the same decoder), and how fast a 1,000,000-chunk dataset's status
/// summary answers.
public enum ViewsBenchmark {
    public struct Result: Codable, Sendable {
        public var events: UInt64
        public var chunks: Int
        public var repetitions: Int
        public var rebuildEventsPerSecond: Double
        public var rawScanDecodeEventsPerSecond: Double
        public var rebuildRatio: Double
        public var chunkStatusQueryMillis: Double
        public var chunkStatusQueryP99Millis: Double
        public var statusRanges: Int
        public var viewBytes: Int
        public var ledgerBytes: Int
        public var generateSeconds: Double

        enum CodingKeys: String, CodingKey {
            case events, chunks, repetitions
            case rebuildEventsPerSecond = "rebuild_eps", rawScanDecodeEventsPerSecond = "raw_scan_decode_eps"
            case rebuildRatio = "rebuild_ratio", chunkStatusQueryMillis = "chunk_status_query_ms"
            case chunkStatusQueryP99Millis = "chunk_status_query_p99_ms", statusRanges = "status_ranges"
            case viewBytes = "view_bytes", ledgerBytes = "ledger_bytes", generateSeconds = "generate_s"
        }
    }

    /// Generates a ledger of about `events` events in `directory` (reused when it already holds one of at
    /// least that size), then measures `repetitions` rebuilds and raw decoding scans, alternating.
    public static func run(
        directory: URL, events: Int, repetitions: Int = 3, queries: Int = 200, report: @escaping (String) -> Void = { _ in }
    ) async throws -> Result {
        let ledgerURL = directory.appendingPathComponent("bench-views.ledger")
        var generateSeconds = 0.0
        var ledger = try Ledger.openOrCreate(at: ledgerURL)
        var chunks = 0
        if try ledger.lastSeq < UInt64(events) {
            ledger.close()
            try? FileManager.default.removeItem(at: ledgerURL)
            ledger = try Ledger.create(at: ledgerURL)
            let t = Date()
            chunks = try await ViewsCorpus.generate(into: ledger, events: events) { n in
                if n % 1_000_000 < 10_000 { report("generated \(n) events") }
            }
            generateSeconds = Date().timeIntervalSince(t)
        }
        defer { ledger.close() }
        let total = try ledger.lastSeq
        var options = Views.Options()
        options.integrityScanLimit = 0
        let views = try Views.open(ledger: ledger, options: options)
        var rebuild: [Double] = []
        var raw: [Double] = []
        for i in 0..<repetitions {
            var t = Date()
            var decoded = 0
            let decoder = JSONDecoder()
            try ledger.scan { event in
                guard Views.payloadDecodes(event, decoder: decoder) else { return true }
                decoded += 1
                return true
            }
            raw.append(Date().timeIntervalSince(t))
            report(String(format: "raw scan+decode %d: %.1fs (%d decoded)", i + 1, raw.last!, decoded))
            t = Date()
            try views.rebuild()
            rebuild.append(Date().timeIntervalSince(t))
            report(String(format: "rebuild %d: %.1fs", i + 1, rebuild.last!))
        }
        if chunks == 0 { chunks = Int(try views.chunkStatus(dataset: ViewsCorpus.dataset)?.dataset.chunks ?? 0) }
        var latencies: [Double] = []
        var ranges = 0
        for _ in 0..<queries {
            let t = DispatchTime.now().uptimeNanoseconds
            let report = try views.chunkStatus(dataset: ViewsCorpus.dataset)
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
            ranges = report?.groups.reduce(0) { $0 + $1.ranges.count } ?? 0
        }
        latencies.sort()
        let status = try views.status()
        let rebuildEPS = Double(total) / median(rebuild)
        let rawEPS = Double(total) / median(raw)
        let ledgerBytes = (try? FileManager.default.attributesOfItem(atPath: ledgerURL.appendingPathComponent("log/data.mdb").path)[.size] as? Int) ?? 0
        return Result(
            events: total, chunks: chunks, repetitions: repetitions, rebuildEventsPerSecond: rebuildEPS,
            rawScanDecodeEventsPerSecond: rawEPS, rebuildRatio: rebuildEPS / rawEPS,
            chunkStatusQueryMillis: latencies[latencies.count / 2],
            chunkStatusQueryP99Millis: latencies[min(latencies.count - 1, latencies.count * 99 / 100)],
            statusRanges: ranges, viewBytes: status.reduce(0) { $0 + $1.bytes }, ledgerBytes: ledgerBytes,
            generateSeconds: generateSeconds)
    }

    static func median(_ xs: [Double]) -> Double { LedgerBenchmark.median(xs) }
}
