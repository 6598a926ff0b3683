internal import CLMDB
public import ClewLedger
import ClewModel
import Crypto
import Synchronization
public import Foundation

/// `clew bench ledger`: the ledger's append and scan rates next to the physical limit measured in the
/// same run on the same machine: raw `MDB_APPEND` puts and cursor scans of equally sized, pre-encoded
/// records in a bare LMDB environment, committed durably in the same batch sizes.
public enum LedgerBenchmark {
    public struct Configuration: Sendable {
        /// Events per batch (one `append(contentsOf:)` call).
        public var batchSize = 1_000
        /// Concurrent appenders feeding the writer (group commit).
        public var appenders = 2
        /// Durable single-event appends timed for the latency percentiles.
        public var singles = 300
        /// Repetitions of each throughput phase; the median is reported.
        public var repetitions = 3
        /// Ledger options (compression level, dictionary training) for the ledger under test.
        public var ledgerOptions = Ledger.Options()
        public init() {}
    }

    /// Figures of one run. Rates are events per second; ratios are ledger / raw.
    public struct Result: Codable, Sendable {
        public var events: Int
        public var batchSize: Int
        public var appenders: Int
        public var appendEPS: Double
        public var rawAppendEPS: Double
        public var appendRatio: Double
        /// Processor time (user and system, all threads) per appended event, µs, median run: on two cores
        /// the wall time per event cannot fall below half of it.
        public var appendCPUus: Double
        /// Batches (append calls) per group commit in the appends, median run: up to `appenders` when the
        /// appenders' batches share commits, 1 when each commits alone.
        public var batchesPerCommit: Double
        /// The single writer's time per appended event inside its write transactions (leaf hashes and
        /// the puts of blocks, stream index entries, blobs and Merkle nodes), µs, median run.
        public var writerBodyUs: Double
        /// The writer's time per event beginning and committing them (LMDB's page writes and syncs), µs.
        public var writerCommitUs: Double
        /// The share of the appends' wall time the writer was busy (body, commit, map check): near 1, the
        /// serial writer is what the appenders wait for.
        public var writerBusy: Double
        /// The same for the raw puts.
        public var rawAppendCPUus: Double
        public var durableSingleP50us: Double
        public var durableSingleP99us: Double
        public var rawCommitP50us: Double
        /// One event read by a random seq (its block located and decoded), p50 and p99.
        public var readBySeqP50us: Double
        public var readBySeqP99us: Double
        public var scanEPS: Double
        public var rawScanEPS: Double
        public var scanRatio: Double
        /// Every block decompressed and nothing decoded: the floor under a scan of the compressed log.
        public var decompressEPS: Double
        /// `scan_eps` / `decompress_eps`: how close the scan is to that floor.
        public var scanToDecompressRatio: Double
        /// `decompress_eps` / `raw_scan_eps`: the best `scan_ratio` any decoder of these blocks can reach.
        public var decompressRatio: Double
        public var bytesPerEvent: Double
        public var recordBytesPerEvent: Double
        public var jsonlBytesPerEvent: Double
        public var bytesRatio: Double
        public var diskBytesPerEvent: Double
        /// Nanoseconds per event of the steps of an append, each timed alone on one thread.
        public var costNanoseconds: [String: Double]

        enum CodingKeys: String, CodingKey {
            case events, batchSize = "batch_size", appenders
            case appendEPS = "append_eps", rawAppendEPS = "raw_append_eps", appendRatio = "append_ratio"
            case batchesPerCommit = "batches_per_commit"
            case writerBodyUs = "writer_body_us_per_event", writerCommitUs = "writer_commit_us_per_event", writerBusy = "writer_busy"
            case appendCPUus = "append_cpu_us_per_event", rawAppendCPUus = "raw_append_cpu_us_per_event"
            case durableSingleP50us = "durable_single_p50_us", durableSingleP99us = "durable_single_p99_us"
            case rawCommitP50us = "raw_commit_p50_us"
            case readBySeqP50us = "read_by_seq_us_p50", readBySeqP99us = "read_by_seq_us_p99"
            case scanEPS = "scan_eps", rawScanEPS = "raw_scan_eps", scanRatio = "scan_ratio"
            case decompressEPS = "decompress_eps", scanToDecompressRatio = "scan_to_decompress_ratio"
            case decompressRatio = "decompress_ratio"
            case bytesPerEvent = "bytes_per_event", recordBytesPerEvent = "record_bytes_per_event"
            case jsonlBytesPerEvent = "jsonl_bytes_per_event", bytesRatio = "bytes_ratio"
            case diskBytesPerEvent = "disk_bytes_per_event", costNanoseconds = "cost_ns"
        }
    }

    /// Runs the benchmark in fresh directories under `workDirectory` (removed afterwards).
    /// - Parameters:
    ///   - events: the events to append (realistic pipeline events).
    ///   - jsonlBytes: the size of the same events as JSON lines.
    public static func run(
        events: [NewEvent], jsonlBytes: Int, in workDirectory: URL, configuration: Configuration = Configuration(),
        progress: (String) -> Void = { _ in }
    ) async throws -> Result {
        let fm = FileManager.default
        try fm.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: workDirectory) }
        let batches = stride(from: 0, to: events.count, by: configuration.batchSize).map {
            Array(events[$0..<min($0 + configuration.batchSize, events.count)])
        }

        // Each repetition appends to a fresh ledger, then makes the raw LMDB baseline of the same records,
        // then scans: the ledger and its baseline are measured back to back, not minutes apart, so a
        // change of the machine's load (it is shared) falls on both.
        var appendTimes: [Double] = []
        var appendCPU: [Double] = []
        var batchesPerCommit: [Double] = []
        var writerBody: [Double] = []
        var writerCommit: [Double] = []
        var writerBusy: [Double] = []
        var rawTimes: [Double] = []
        var rawCPU: [Double] = []
        var rawScanTimes: [Double] = []
        var rawCommitLatencies: [Double] = []
        var scanTimes: [Double] = []
        var decompressTimes: [Double] = []
        var kept: Ledger?
        var sizes: (records: Int, table: Int, used: Int) = (0, 0, 0)
        var record: [UInt8] = []
        // Raw LMDB: the same number of records of the mean stored size, MDB_APPEND, durable commits per batch.
        func rawRepetition(_ rep: Int) throws {
            let valueSize = record.count
            progress("raw LMDB append \(rep + 1)/\(configuration.repetitions)")
            let dir = workDirectory.appendingPathComponent("raw-\(rep)")
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            var options = Environment.Options()
            options.mapSize = max(64 << 20, events.count * (valueSize + 64) * 2)
            let env = try Environment(path: dir.path, options: options)
            let db = try env.openDatabase("events")
            var seq: UInt64 = 0
            let start = DispatchTime.now().uptimeNanoseconds
            let cpu = ViewsBenchmark.processorSeconds()
            for batch in batches {
                try env.write { txn in
                    for _ in batch {
                        seq += 1
                        _ = try withUnsafeBytes(of: seq.bigEndian) { k in
                            try record.withUnsafeBytes { try txn.put(db, k, $0, flags: MDB_APPEND) }
                        }
                    }
                }
            }
            rawTimes.append(seconds(since: start))
            rawCPU.append(ViewsBenchmark.processorSeconds() - cpu)
            for _ in 0..<(rep == 0 ? configuration.singles : 0) {
                seq += 1
                let t = DispatchTime.now().uptimeNanoseconds
                _ = try env.write { txn in
                    try withUnsafeBytes(of: seq.bigEndian) { k in
                        try record.withUnsafeBytes { try txn.put(db, k, $0, flags: MDB_APPEND) }
                    }
                }
                rawCommitLatencies.append(seconds(since: t) * 1e6)
            }
            progress("raw LMDB scan \(rep + 1)/\(configuration.repetitions)")
            var scratch = [UInt8](repeating: 0, count: valueSize + 64)
            let scanStart = DispatchTime.now().uptimeNanoseconds
            var checksum: UInt64 = 0
            try env.read { txn in
                try txn.withCursor(db) { c in
                    var e = try c.first()
                    while let entry = e {
                        // Copy every byte out, as a reader handing records to a caller must.
                        scratch.withUnsafeMutableBytes { $0.copyMemory(from: entry.value) }
                        checksum &+= UInt64(scratch[entry.value.count - 1]) &+ entry.key.bigEndianUInt64
                        e = try c.next()
                    }
                }
            }
            rawScanTimes.append(seconds(since: scanStart) * Double(events.count) / Double(seq))
            if checksum == 42 { progress("") }  // keeps the loop from being optimised away
            env.close()
            try? fm.removeItem(at: dir)
        }
        // Ledger scans: read and decode every event of the kept ledger; then decompression alone.
        func scanRepetition(_ rep: Int, _ ledger: Ledger) throws {
            progress("ledger scan \(rep + 1)/\(configuration.repetitions)")
            var count = 0
            var bytes = 0
            let start = DispatchTime.now().uptimeNanoseconds
            try ledger.scan { event in
                count += 1
                bytes &+= event.payload.count &+ event.stream.utf8.count
                return true
            }
            scanTimes.append(seconds(since: start))
            precondition(count == events.count, "scan saw \(count) of \(events.count) events")
            progress("block decompression \(rep + 1)/\(configuration.repetitions)")
            let t = DispatchTime.now().uptimeNanoseconds
            let blocks = try ledger.decompressEveryBlock()
            decompressTimes.append(seconds(since: t) * Double(events.count) / Double(max(1, blocks)))
        }
        for rep in 0..<configuration.repetitions {
            progress("ledger append \(rep + 1)/\(configuration.repetitions)")
            let dir = workDirectory.appendingPathComponent("ledger-\(rep)")
            let ledger = try Ledger.create(at: dir, options: configuration.ledgerOptions)
            let start = DispatchTime.now().uptimeNanoseconds
            let cpu = ViewsBenchmark.processorSeconds()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<configuration.appenders {
                    group.addTask {
                        for i in stride(from: worker, to: batches.count, by: configuration.appenders) {
                            try await ledger.append(contentsOf: batches[i])
                        }
                    }
                }
                try await group.waitForAll()
            }
            let wall = seconds(since: start)
            appendTimes.append(wall)
            appendCPU.append(ViewsBenchmark.processorSeconds() - cpu)
            let commits = ledger.commitStats
            batchesPerCommit.append(Double(commits.requests) / Double(max(1, commits.groups)))
            writerBody.append(Double(commits.bodyNanos) / 1e3 / Double(max(1, commits.events)))
            writerCommit.append(Double(commits.commitNanos) / 1e3 / Double(max(1, commits.events)))
            writerBusy.append(Double(commits.roomNanos + commits.bodyNanos + commits.commitNanos) / 1e9 / wall)
            ledger.waitForIdle()
            if rep == 0 {
                kept = ledger
                // Record sizes as stored, for the raw baseline and the size figures.
                sizes = try ledger.storedSizes()
                record = [UInt8](repeating: 0x5a, count: max(1, sizes.records / max(1, events.count) - 8))
            } else {
                ledger.close()
                try? fm.removeItem(at: dir)
            }
            try rawRepetition(rep)
            try scanRepetition(rep, kept!)
        }
        let ledger = kept!
        defer { ledger.close() }
        let (recordBytes, tableBytes, usedBytes) = sizes
        progress("component costs")
        let costs = try ledger.componentCosts(events, batches: batches)

        // Durable single-event appends (latency of one acknowledged event).
        progress("durable single appends")
        var latencies: [Double] = []
        for i in 0..<configuration.singles {
            let t = DispatchTime.now().uptimeNanoseconds
            try await ledger.append(events[i % events.count])
            latencies.append(seconds(since: t) * 1e6)
        }

        // Random single-event reads: each locates its block and decodes it alone.
        progress("random reads by seq")
        var reads: [Double] = []
        var rng = SplitMix64(seed: 11)
        for _ in 0..<2_000 {
            let seq = 1 + rng.next(below: UInt64(events.count))
            let t = DispatchTime.now().uptimeNanoseconds
            let event = try ledger.event(at: seq)
            precondition(event?.seq == seq, "event \(seq) did not read back")
            reads.append(seconds(since: t) * 1e6)
        }

        let n = Double(events.count)
        let appendEPS = n / median(appendTimes)
        let rawAppendEPS = n / median(rawTimes)
        let scanEPS = n / median(scanTimes)
        let rawScanEPS = n / median(rawScanTimes)
        let decompressEPS = n / median(decompressTimes)
        return Result(
            events: events.count, batchSize: configuration.batchSize, appenders: configuration.appenders,
            appendEPS: appendEPS, rawAppendEPS: rawAppendEPS, appendRatio: appendEPS / rawAppendEPS,
            appendCPUus: median(appendCPU) * 1e6 / n, batchesPerCommit: median(batchesPerCommit),
            writerBodyUs: median(writerBody), writerCommitUs: median(writerCommit), writerBusy: median(writerBusy), rawAppendCPUus: median(rawCPU) * 1e6 / n,
            durableSingleP50us: percentile(latencies, 0.5), durableSingleP99us: percentile(latencies, 0.99),
            rawCommitP50us: percentile(rawCommitLatencies, 0.5),
            readBySeqP50us: percentile(reads, 0.5), readBySeqP99us: percentile(reads, 0.99),
            scanEPS: scanEPS, rawScanEPS: rawScanEPS, scanRatio: scanEPS / rawScanEPS,
            decompressEPS: decompressEPS, scanToDecompressRatio: scanEPS / decompressEPS, decompressRatio: decompressEPS / rawScanEPS,
            bytesPerEvent: Double(tableBytes) / n, recordBytesPerEvent: Double(recordBytes) / n,
            jsonlBytesPerEvent: Double(jsonlBytes) / n, bytesRatio: Double(tableBytes) / Double(jsonlBytes),
            diskBytesPerEvent: Double(usedBytes) / n, costNanoseconds: costs)
    }


    static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// The median every benchmark reports (the upper one for an even count; 0 for none).
    package static func median(_ xs: [Double]) -> Double { percentile(xs, 0.5) }

    package static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
    }
}
