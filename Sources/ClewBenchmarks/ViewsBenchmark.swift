import ClewLedger
import ClewModel
import ClewProjections
public import Foundation
import Synchronization

/// `clew bench views`: how fast the views rebuild from the log, against reading and decoding the same log
/// with no projection (the same run, the same decoder); how fast a 1,000,000-chunk dataset's status
/// summary answers, now and as of random past seqs (runs, run details and lineage too); the views' size
/// against the log's; the rebuild's anonymous memory; and how soon an event appended by another process
/// is visible in the views.
public enum ViewsBenchmark {
    public struct Result: Codable, Sendable {
        public var events: UInt64
        public var chunks: Int
        public var repetitions: Int
        public var rebuildEventsPerSecond: Double
        public var rawScanDecodeEventsPerSecond: Double
        public var rebuildRatio: Double
        /// A rebuild's two parts (medians): folding the log, and packing each view into the generation
        /// swapped in.
        public var rebuildFoldSeconds: Double
        public var rebuildPackSeconds: Double
        /// Processor time (user and system, all threads) per event, medians: a rebuild decodes on one
        /// thread while the views write on others, so it spends more of it than it takes.
        public var rebuildCPUMicrosPerEvent: Double
        public var rawCPUMicrosPerEvent: Double
        /// Bytes a rebuild wrote through system calls per event (`wchar` of `/proc/self/io`: LMDB's
        /// commits write every page a transaction touched, so this is the views' write amplification,
        /// against their final size per event in `view_bytes`), median; nil where `/proc` has no `io`.
        public var rebuildWrittenBytesPerEvent: Double?
        public var chunkStatusQueryMillis: Double
        public var chunkStatusQueryP99Millis: Double
        public var statusRanges: Int
        public var viewBytes: Int
        public var ledgerBytes: Int
        public var viewsBytesRatio: Double
        public var generateSeconds: Double
        /// `--as-of` at random past seqs, p50 and p99 in milliseconds, by query.
        public var asOfQueryMillis: [String: Double]
        /// Largest anonymous resident memory (heap, not LMDB's file-backed map) seen during the rebuilds,
        /// and before them.
        public var rebuildHeapMB: Double
        public var heapBeforeMB: Double
        /// From another process's acknowledged append to the event answering from the views (p50, p99).
        public var catchupMillis: Double?
        public var catchupP99Millis: Double?

        enum CodingKeys: String, CodingKey {
            case events, chunks, repetitions
            case rebuildEventsPerSecond = "rebuild_eps", rawScanDecodeEventsPerSecond = "raw_scan_decode_eps"
            case rebuildRatio = "rebuild_ratio", chunkStatusQueryMillis = "chunk_status_query_ms"
            case rebuildFoldSeconds = "rebuild_fold_s", rebuildPackSeconds = "rebuild_pack_s"
            case rebuildCPUMicrosPerEvent = "rebuild_cpu_us_per_event", rawCPUMicrosPerEvent = "raw_cpu_us_per_event"
            case rebuildWrittenBytesPerEvent = "rebuild_written_bytes_per_event"
            case chunkStatusQueryP99Millis = "chunk_status_query_p99_ms", statusRanges = "status_ranges"
            case viewBytes = "view_bytes", ledgerBytes = "ledger_bytes", generateSeconds = "generate_s"
            case viewsBytesRatio = "views_bytes_ratio", asOfQueryMillis = "as_of_query_ms", rebuildHeapMB = "rebuild_heap_mb"
            case heapBeforeMB = "heap_before_mb", catchupMillis = "catchup_ms", catchupP99Millis = "catchup_p99_ms"
        }
    }

    /// Generates a ledger of about `events` events in `directory` (reused when it already holds one of at
    /// least that size), then measures `repetitions` rebuilds and raw decoding scans, alternating.
    /// - Parameter appender: a `clew` executable, to append events from another process for `catchup_ms`
    ///   (left out when nil).
    public static func run(
        directory: URL, events: Int, repetitions: Int = 3, queries: Int = 200, appender: URL? = nil,
        report: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> Result {
        let ledgerURL = directory.appendingPathComponent("bench-views.ledger")
        var chunks = 0
        let (ledger, generateSeconds) = try await generatedLedger(at: ledgerURL, holding: UInt64(events)) { ledger in
            chunks = try await ViewsCorpus.generate(into: ledger, events: events) { n in
                if n % 1_000_000 < 10_000 { report("generated \(n) events") }
            }
        }
        defer { ledger.close() }
        let total = try ledger.lastSeq
        var options = Views.Options()
        options.integrityScanLimit = 0
        let views = try Views.open(ledger: ledger, options: options)
        var rebuild: [Double] = []
        var raw: [Double] = []
        var fold: [Double] = [], pack: [Double] = []
        var rebuildCPU: [Double] = [], rawCPU: [Double] = []
        var written: [Double] = []
        let heapBefore = anonymousMB()
        let heapPeak = HeapPeak()
        for i in 0..<repetitions {
            var t = Date()
            var cpu = processorSeconds()
            var decoded = 0
            let decoder = JSONDecoder()
            try ledger.scan { event in
                guard Views.payloadDecodes(event, decoder: decoder) else { return true }
                decoded += 1
                return true
            }
            raw.append(Date().timeIntervalSince(t))
            rawCPU.append(processorSeconds() - cpu)
            report(String(format: "raw scan+decode %d: %.1fs (%d decoded)", i + 1, raw.last!, decoded))
            t = Date()
            cpu = processorSeconds()
            let wrote = writtenBytes()
            let parts = try views.rebuild { _ in heapPeak.sample() }
            heapPeak.sample()
            rebuild.append(Date().timeIntervalSince(t))
            rebuildCPU.append(processorSeconds() - cpu)
            if let before = wrote, let after = writtenBytes() { written.append(Double(after - before)) }
            fold.append(parts.foldSeconds)
            pack.append(parts.packSeconds)
            report(String(format: "rebuild %d: %.1fs (fold %.1fs, pack %.1fs; %.1fs of processor time)", i + 1, rebuild.last!, parts.foldSeconds, parts.packSeconds, rebuildCPU.last!))
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
        let asOf = try asOfQueries(views, ledger: ledger, queries: queries)
        var catchup: [Double] = []
        if let appender {
            for i in 0..<20 {
                catchup.append(try catchupMillis(views, appender: appender, ledger: ledgerURL, index: i))
            }
        }
        let status = try views.status()
        let rebuildEPS = Double(total) / median(rebuild)
        let rawEPS = Double(total) / median(raw)
        let ledgerBytes = (try? FileManager.default.attributesOfItem(atPath: ledgerURL.appendingPathComponent("log/data.mdb").path)[.size] as? Int) ?? 0
        return Result(
            events: total, chunks: chunks, repetitions: repetitions, rebuildEventsPerSecond: rebuildEPS,
            rawScanDecodeEventsPerSecond: rawEPS, rebuildRatio: rebuildEPS / rawEPS,
            rebuildFoldSeconds: median(fold), rebuildPackSeconds: median(pack),
            rebuildCPUMicrosPerEvent: median(rebuildCPU) * 1e6 / Double(total), rawCPUMicrosPerEvent: median(rawCPU) * 1e6 / Double(total),
            rebuildWrittenBytesPerEvent: written.isEmpty ? nil : median(written) / Double(total),
            chunkStatusQueryMillis: LedgerBenchmark.percentile(latencies, 0.5),
            chunkStatusQueryP99Millis: LedgerBenchmark.percentile(latencies, 0.99),
            statusRanges: ranges, viewBytes: status.reduce(0) { $0 + $1.bytes }, ledgerBytes: ledgerBytes,
            viewsBytesRatio: Double(status.reduce(0) { $0 + $1.bytes }) / Double(max(1, ledgerBytes)),
            generateSeconds: generateSeconds, asOfQueryMillis: asOf, rebuildHeapMB: heapPeak.peak, heapBeforeMB: heapBefore,
            catchupMillis: catchup.isEmpty ? nil : LedgerBenchmark.percentile(catchup, 0.5),
            catchupP99Millis: catchup.isEmpty ? nil : LedgerBenchmark.percentile(catchup, 0.99))
    }

    /// `--as-of` queries at random seqs of the log: chunk status of the corpus dataset, the 20 newest
    /// runs, the detail of the run the seq belongs to, and the lineage downstream of a random chunk.
    static func asOfQueries(_ views: Views, ledger: Ledger, queries: Int) throws -> [String: Double] {
        let total = try ledger.lastSeq
        let nodes = try views.lineageNodes(prefix: "chunk:\(ViewsCorpus.dataset)/", limit: 10_000)
        var rng = SplitMix64(seed: 5)
        var times: [String: [Double]] = [:]
        func time(_ name: String, _ body: () throws -> Void) rethrows {
            let t = DispatchTime.now().uptimeNanoseconds
            try body()
            times[name, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
        }
        for _ in 0..<queries {
            let seq = 1 + rng.next(below: total)
            try time("chunk_status") { _ = try views.chunkStatus(dataset: ViewsCorpus.dataset, asOf: seq) }
            try time("runs") { _ = try views.runs(RunQuery(limit: 20, asOf: seq)) }
            if let e = try ledger.event(at: seq), let key = RunKey(stream: e.stream) {
                try time("run") { _ = try views.run(key, asOf: seq) }
            }
            if !nodes.isEmpty {
                let node = nodes[Int(rng.next(below: UInt64(nodes.count)))]
                try time("lineage") { _ = try views.lineage(node: node, direction: .down, depth: 10, asOf: seq) }
            }
        }
        var out: [String: Double] = [:]
        for (name, xs) in times {
            out[name + "_p50"] = LedgerBenchmark.percentile(xs, 0.5)
            out[name + "_p99"] = LedgerBenchmark.percentile(xs, 0.99)
        }
        return out
    }

    /// One event appended by another process (`clew append`), then the views caught up and read as
    /// `clew serve` does before each request, until the event's run answers: milliseconds from the
    /// append's acknowledgement (its output line) to that answer.
    static func catchupMillis(_ views: Views, appender: URL, ledger: URL, index: Int) throws -> Double {
        let run = "catchup__\(index)_\(UUID().uuidString.prefix(8))"
        let payload = RunQueued(dag: ViewsCorpus.dag, run: run, dagVersion: "b3nch0000000v001", params: [:], trigger: "manual")
        let line = #"{"type":"\#(EventType.runQueued)","stream":"\#(StreamID.run(dag: ViewsCorpus.dag, run: run))","payload":"#
            + String(decoding: payload.payloadData, as: UTF8.self) + "}\n"
        let process = Process()
        process.executableURL = appender
        process.arguments = ["append", "--ledger", ledger.path, "--json"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(line.utf8))
        try input.fileHandleForWriting.close()
        // The acknowledgement: the line `clew append` prints once the commit is durable.
        var acknowledged = Data()
        while !acknowledged.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            acknowledged.append(chunk)
        }
        let t = DispatchTime.now().uptimeNanoseconds
        let key = RunKey(dag: ViewsCorpus.dag, run: run)
        while true {
            try views.catchUp()
            if try views.run(key) != nil { break }
            guard process.isRunning || DispatchTime.now().uptimeNanoseconds - t < 5_000_000_000 else {
                throw ViewError(.inconsistent, view: "runs", "an event appended by another process (\(String(decoding: acknowledged, as: UTF8.self))) never reached the views")
            }
        }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6
        process.waitUntilExit()
        return ms
    }

    /// The ledger at `url` when it holds at least `events` events (an earlier run's, kept); otherwise a new
    /// one filled by `generate`, with the seconds that took (0 for a kept one).
    static func generatedLedger(
        at url: URL, holding events: UInt64, generate: (Ledger) async throws -> Void
    ) async throws -> (Ledger, generateSeconds: Double) {
        let kept = try Ledger.openOrCreate(at: url)
        if try kept.lastSeq >= events { return (kept, 0) }
        kept.close()
        try? FileManager.default.removeItem(at: url)
        let ledger = try Ledger.create(at: url)
        do {
            let t = Date()
            try await generate(ledger)
            return (ledger, Date().timeIntervalSince(t))
        } catch {
            ledger.close()
            throw error
        }
    }

    /// User and system time of this process (all its threads) so far, in seconds.
    static func processorSeconds() -> Double {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Bytes this process has passed to `write`-like system calls (`wchar` of `/proc/self/io`), or nil.
    static func writtenBytes() -> UInt64? {
        guard let io = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return nil }
        for line in io.split(separator: "\n") where line.hasPrefix("wchar:") {
            return UInt64(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Anonymous resident memory of this process (`RssAnon`), in MiB.
    static func anonymousMB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("RssAnon:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }

    /// The largest ``anonymousMB()`` sampled.
    final class HeapPeak: Sendable {
        private let value = Mutex<Double>(0)
        var peak: Double { value.withLock { $0 } }
        func sample() {
            let now = ViewsBenchmark.anonymousMB()
            value.withLock { $0 = max($0, now) }
        }
    }

    static func median(_ xs: [Double]) -> Double { LedgerBenchmark.median(xs) }
}
