public import ClewLedger
import ClewModel
public import ClewProjections
public import Foundation

/// `clew bench chunks`: a dataset status query, live and as of a past seq, on one dataset of many chunks
/// (10,000,000 by default), the scale the views issue sets its goal at (p50 < 1 ms).
public enum ChunksBenchmark {
    public struct Result: Codable, Sendable {
        public var chunks: Int
        public var events: UInt64
        /// Seconds to generate and append the log (0 when an earlier run's ledger was reused).
        public var generateSeconds: Double
        /// Building every view from the log (no views yet: a rebuild, packing included).
        public var rebuildSeconds: Double
        public var rebuildEventsPerSecond: Double
        public var chunkStatusQueryMillis: Double
        public var chunkStatusQueryP99Millis: Double
        /// The same query `--as-of` a random seq of the log.
        public var asOfChunkStatusMillis: Double
        public var asOfChunkStatusP99Millis: Double
        /// Ranges in the live report (each status group lists at most 20).
        public var statusRanges: Int
        public var chunksViewBytes: Int
        public var chunksViewBytesPerChunk: Double
        public var ledgerBytes: Int

        enum CodingKeys: String, CodingKey {
            case chunks, events, generateSeconds = "generate_s", rebuildSeconds = "rebuild_s", rebuildEventsPerSecond = "rebuild_eps"
            case chunkStatusQueryMillis = "chunk_status_query_ms", chunkStatusQueryP99Millis = "chunk_status_query_p99_ms"
            case asOfChunkStatusMillis = "as_of_chunk_status_ms", asOfChunkStatusP99Millis = "as_of_chunk_status_p99_ms"
            case statusRanges = "status_ranges", chunksViewBytes = "chunks_view_bytes", chunksViewBytesPerChunk = "chunks_view_bytes_per_chunk"
            case ledgerBytes = "ledger_bytes"
        }
    }

    /// Generates a ledger of `chunks` chunks in `directory` (reused when it already holds one at least that
    /// large), builds its views from the log, then times `queries` status queries, live and as of random
    /// seqs.
    public static func run(
        directory: URL, chunks: Int, queries: Int = 500, report: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> Result {
        let ledgerURL = directory.appendingPathComponent("bench-chunks.ledger")
        // Two events per chunk and the DAG's registration: a ledger with fewer holds fewer chunks.
        let (ledger, generateSeconds) = try await ViewsBenchmark.generatedLedger(at: ledgerURL, holding: UInt64(2 * chunks + 1)) { ledger in
            try await ViewsCorpus.generateChunks(into: ledger, chunks: chunks) { n in
                if n % 1_000_000 < 20_000 { report("generated \(n) events") }
            }
        }
        defer { ledger.close() }
        let total = try ledger.lastSeq
        var options = Views.Options()
        options.integrityScanLimit = 0
        // Views opened where there are none are built from the log (a rebuild, packing included): timed.
        try? FileManager.default.removeItem(at: ledger.directory.appendingPathComponent("views"))
        report("building the views")
        let t = Date()
        let views = try Views.open(ledger: ledger, options: options)
        let rebuildSeconds = Date().timeIntervalSince(t)

        guard let live = try views.chunkStatus(dataset: ViewsCorpus.dataset) else {
            throw ViewError(.inconsistent, view: "chunks", "the generated dataset \(ViewsCorpus.dataset) has no status")
        }
        var latencies: [Double] = []
        for _ in 0..<queries {
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try views.chunkStatus(dataset: ViewsCorpus.dataset)
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
        }
        var rng = SplitMix64(seed: 3)
        var asOf: [Double] = []
        for _ in 0..<queries {
            let seq = 1 + rng.next(below: total)
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try views.chunkStatus(dataset: ViewsCorpus.dataset, asOf: seq)
            asOf.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
        }
        let chunksBytes = try views.status().first { $0.view == "chunks" }?.bytes ?? 0
        let ledgerBytes = (try? FileManager.default.attributesOfItem(atPath: ledgerURL.appendingPathComponent("log/data.mdb").path)[.size] as? Int) ?? 0
        let count = Int(live.dataset.chunks)
        return Result(
            chunks: count, events: total, generateSeconds: generateSeconds, rebuildSeconds: rebuildSeconds,
            rebuildEventsPerSecond: Double(total) / rebuildSeconds,
            chunkStatusQueryMillis: LedgerBenchmark.percentile(latencies, 0.5), chunkStatusQueryP99Millis: LedgerBenchmark.percentile(latencies, 0.99),
            asOfChunkStatusMillis: LedgerBenchmark.percentile(asOf, 0.5), asOfChunkStatusP99Millis: LedgerBenchmark.percentile(asOf, 0.99),
            statusRanges: live.groups.reduce(0) { $0 + $1.ranges.count }, chunksViewBytes: chunksBytes,
            chunksViewBytesPerChunk: Double(chunksBytes) / Double(max(1, count)), ledgerBytes: ledgerBytes)
    }
}
