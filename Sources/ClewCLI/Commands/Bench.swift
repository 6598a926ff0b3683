import ArgumentParser
import ClewServer
import ClewBenchmarks
import ClewEngine
import ClewForensics
import ClewProjections
import ClewReplay
import ClewLedger
import ClewModel
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print figures next to the raw limit measured in the same run.",
        subcommands: [LedgerBench.self, EngineBench.self, ViewsBench.self, ChunksBench.self, ReplayBench.self, ForensicsBench.self, ServeBench.self, ClusterBench.self, PythonBench.self])

    struct LedgerBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ledger",
            abstract: "Append, durable-commit and scan rates of the ledger against raw LMDB puts and scans.")

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "Events to append (realistic pipeline events from the demo generator).")
        var events = 200_000

        @Option(name: .long, help: "Events per batch.")
        var batch = 1_000

        @Option(name: .long, help: "Concurrent appenders.")
        var appenders = 2

        @Option(name: .long, help: "Repetitions of each phase (medians are reported).")
        var repetitions = 3

        @Option(name: .long, help: "zstd level for blocks.")
        var level: Int32 = Ledger.Options().compressionLevel

        @Option(name: .long, help: "Scratch directory (removed afterwards).")
        var workDir: String?

        func validate() throws {
            if events < 1_000 { throw ValidationError("--events must be at least 1000") }
            if batch < 1 || appenders < 1 || repetitions < 1 {
                throw ValidationError("--batch, --appenders and --repetitions must be at least 1")
            }
        }

        func run() async throws {
            try await reportingErrors {
                let (drafts, jsonl) = DemoCorpus.events(count: events)
                var config = LedgerBenchmark.Configuration()
                config.batchSize = batch
                config.appenders = appenders
                config.repetitions = repetitions
                config.ledgerOptions.compressionLevel = level
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-\(getpid())")
                let r = try await LedgerBenchmark.run(events: drafts, jsonlBytes: jsonl, in: dir, configuration: config) {
                    Terminal.progress("bench: \($0)")
                }
                Terminal.endProgress()
                if output.json {
                    print(try JSONOutput.text(r))
                } else {
                    func f(_ x: Double) -> String { String(format: "%.0f", x) }
                    func r2(_ x: Double) -> String { String(format: "%.2f", x) }
                    print("events \(r.events), batches of \(r.batchSize), \(r.appenders) appenders, medians of \(repetitions)")
                    print("append   \(f(r.appendEPS)) ev/s   raw LMDB \(f(r.rawAppendEPS)) ev/s   ratio \(r2(r.appendRatio))")
                    print("append processor time \(r2(r.appendCPUus)) us/event (raw LMDB \(r2(r.rawAppendCPUus))), \(r2(r.batchesPerCommit)) batches per commit")
                    print(
                        "writer: \(r2(r.writerBodyUs)) us/event in its transactions, \(r2(r.writerCommitUs)) committing them; busy \(Int((r.writerBusy * 100).rounded()))% of the appends' time"
                    )
                    print("scan     \(f(r.scanEPS)) ev/s   raw LMDB \(f(r.rawScanEPS)) ev/s   ratio \(r2(r.scanRatio))")
                    print("decompress every block only \(f(r.decompressEPS)) ev/s: the floor is \(r2(r.decompressRatio)) of raw; scan reaches \(r2(r.scanToDecompressRatio)) of it")
                    print("durable single append p50 \(f(r.durableSingleP50us)) us (p99 \(f(r.durableSingleP99us)))   raw commit p50 \(f(r.rawCommitP50us)) us")
                    print("read one event by seq p50 \(f(r.readBySeqP50us)) us (p99 \(f(r.readBySeqP99us)))")
                    print("size     \(String(format: "%.1f", r.bytesPerEvent)) bytes/event in the block table vs \(String(format: "%.1f", r.jsonlBytesPerEvent)) as JSON lines (ratio \(r2(r.bytesRatio)))")
                    print("cost/event (ns, one thread): " + r.costNanoseconds.sorted { $0.key < $1.key }.map { "\($0.key) \(f($0.value))" }.joined(separator: ", "))
                }
            }
        }
    }

    struct EngineBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "engine",
            abstract: "Tasks per second for a DAG of trivial tasks, against the ledger's batched append rate for the same events.")

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "Tasks in the DAG (100 independent chains).")
        var tasks = 10_000

        @Option(name: .long, help: "Tasks running at once.")
        var concurrency = 16

        @Option(name: .long, help: "Repetitions (medians are reported).")
        var repetitions = 3

        @Option(name: .long, help: "Scratch directory (removed afterwards).")
        var workDir: String?

        func validate() throws {
            if tasks < 100 || tasks > 1_000_000 { throw ValidationError("--tasks must be between 100 and 1000000") }
            if concurrency < 1 || repetitions < 1 { throw ValidationError("--concurrency and --repetitions must be at least 1") }
        }

        func run() async throws {
            try await reportingErrors {
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-engine-\(getpid())")
                let r = try await EngineBenchmark.run(tasks: tasks, concurrency: concurrency, repetitions: repetitions, in: dir) {
                    Terminal.progress("bench: \($0)")
                }
                Terminal.endProgress()
                if output.json {
                    print(try JSONOutput.text(r))
                } else {
                    print("\(r.tasks) trivial tasks, concurrency \(r.concurrency), medians of \(r.repetitions)")
                    print(String(format: "engine   %.0f tasks/s (%.2f s per run), %.2f events/task", r.tasksPerSecond, r.runSeconds, r.eventsPerTask))
                    print(String(format: "ledger   %.0f events/s batched append of the same events", r.appendEventsPerSecond))
                    print(String(format: "engine_ratio %.2f (tasks/s x events/task / append rate; goal >= 0.3)", r.engineRatio))
                }
            }
        }
    }

    struct ViewsBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "views",
            abstract: "View rebuild rate against reading and decoding the same log, and a 1,000,000-chunk status summary.",
            discussion: "Generates the ledger once in --work-dir (kept, so later runs reuse it; delete it when done).")

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "Events in the generated ledger (about 1 chunk per 8 events).")
        var events = 10_000_000

        @Option(name: .long, help: "Repetitions (medians are reported).")
        var repetitions = 3

        @Option(name: .long, help: "Where the generated ledger is kept.")
        var workDir: String?

        func validate() throws {
            if events < 1_000 { throw ValidationError("--events must be at least 1000") }
            if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        }

        func run() async throws {
            try await reportingErrors {
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-views")
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                let r = try await ViewsBenchmark.run(
                    directory: dir, events: events, repetitions: repetitions, appender: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
                ) {
                    Terminal.progress("bench: \($0)")
                }
                Terminal.endProgress()
                if output.json {
                    print(try JSONOutput.text(r))
                } else {
                    print("\(r.events) events, \(r.chunks) chunks in \(ViewsCorpus.dataset), medians of \(r.repetitions)")
                    print(String(format: "rebuild          %.0f events/s (all four views)", r.rebuildEventsPerSecond))
                    print(String(format: "raw scan+decode  %.0f events/s (same log, same decoder, no projection)", r.rawScanDecodeEventsPerSecond))
                    print(String(format: "rebuild_ratio %.2f (goal >= 0.5)", r.rebuildRatio))
                    print(String(format: "rebuild parts    fold %.1fs, pack %.1fs", r.rebuildFoldSeconds, r.rebuildPackSeconds))
                    print(String(format: "processor time   rebuild %.1f us/event, raw scan+decode %.1f us/event", r.rebuildCPUMicrosPerEvent, r.rawCPUMicrosPerEvent))
                    if let w = r.rebuildWrittenBytesPerEvent {
                        print(String(format: "written          %.0f bytes/event by a rebuild (views: %.0f bytes/event)", w, Double(r.viewBytes) / Double(max(1, r.events))))
                    }
                    print(String(format: "chunk_status_query_ms %.3f p50, %.3f p99 (goal < 1)", r.chunkStatusQueryMillis, r.chunkStatusQueryP99Millis))
                    print(String(format: "views %.1f MiB, ledger %.1f MiB: views_bytes_ratio %.2f (goal <= 1.5)", Double(r.viewBytes) / 1_048_576, Double(r.ledgerBytes) / 1_048_576, r.viewsBytesRatio))
                    for (name, ms) in r.asOfQueryMillis.sorted(by: { $0.key < $1.key }) {
                        print(String(format: "as_of_query_ms %@ %.3f", name, ms))
                    }
                    print(String(format: "rebuild_heap_mb %.0f (%.0f before; goal <= 1024)", r.rebuildHeapMB, r.heapBeforeMB))
                    if let c = r.catchupMillis { print(String(format: "catchup_ms %.1f p50, %.1f p99 (goal < 50)", c, r.catchupP99Millis ?? 0)) }
                }
            }
        }
    }

    struct ChunksBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "chunks",
            abstract: "A dataset's status query, live and as of a past seq, on one dataset of 10,000,000 chunks.",
            discussion: "Generates the ledger once in --work-dir (kept, so later runs reuse it; delete it when done): two events per chunk.")

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "Chunks in the dataset.")
        var chunks = 10_000_000

        @Option(name: .long, help: "Queries timed, live and as of a random seq each.")
        var queries = 500

        @Option(name: .long, help: "Where the generated ledger is kept.")
        var workDir: String?

        func validate() throws {
            if chunks < 100 { throw ValidationError("--chunks must be at least 100") }
            if queries < 1 { throw ValidationError("--queries must be at least 1") }
        }

        func run() async throws {
            try await reportingErrors {
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-chunks")
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                let r = try await ChunksBenchmark.run(directory: dir, chunks: chunks, queries: queries) { Terminal.progress("bench: \($0)") }
                Terminal.endProgress()
                if output.json {
                    print(try JSONOutput.text(r))
                } else {
                    print("\(r.chunks) chunks in \(ViewsCorpus.dataset), \(r.events) events")
                    print(String(format: "rebuild          %.1f s (%.0f events/s)", r.rebuildSeconds, r.rebuildEventsPerSecond))
                    print(String(format: "chunk_status_query_ms %.3f p50, %.3f p99 (goal < 1)", r.chunkStatusQueryMillis, r.chunkStatusQueryP99Millis))
                    print(String(format: "as of a past seq      %.3f p50, %.3f p99 (goal < 10)", r.asOfChunkStatusMillis, r.asOfChunkStatusP99Millis))
                    print(String(format: "chunks view %.1f MiB (%.1f bytes/chunk), ledger %.1f MiB", Double(r.chunksViewBytes) / 1_048_576, r.chunksViewBytesPerChunk, Double(r.ledgerBytes) / 1_048_576))
                }
            }
        }
    }

    struct ReplayBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Replay time against the original run's, and debugger jumps on a 1,000,000-step recording.")

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "Steps the run records.")
        var steps = 1_000_000

        @Option(name: .long, help: "Tasks the steps are spread over.")
        var tasks = 10

        @Option(name: .long, help: "Repetitions of original run + replay (medians are reported).")
        var repetitions = 3

        @Option(name: .long, help: "Scratch directory (removed afterwards).")
        var workDir: String?

        func validate() throws {
            if steps < 100 { throw ValidationError("--steps must be at least 100") }
            if tasks < 1 || tasks > steps / 3 { throw ValidationError("--tasks must be between 1 and steps/3") }
            if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        }

        func run() async throws {
            try await reportingErrors {
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-replay-\(getpid())")
                let r = try await ReplayBenchmark.run(steps: steps, tasks: tasks, repetitions: repetitions, in: dir) {
                    Terminal.progress("bench: \($0)")
                }
                Terminal.endProgress()
                if output.json {
                    print(try JSONOutput.text(r))
                } else {
                    print("a run of \(r.tasks) tasks recording \(r.steps) steps, medians of \(r.repetitions); replay verdict: \(r.verdict)")
                    print(String(format: "original_s %.2f  replay_s %.2f  replay_ratio %.2f (goal <= 1.0)", r.originalSeconds, r.replaySeconds, r.replayRatio))
                    print(String(format: "load for debugging %.2f s; step_jump_ms %.3f p50, %.3f p99 over %d random jumps (goal < 5)", r.loadSeconds, r.stepJumpMillisP50, r.stepJumpMillisP99, r.jumps))
                }
                if r.verdict != "identical" { throw ExitCode(2) }
            }
        }
    }

    struct ServeBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "OpenLineage events ingested per second over loopback (single and batch) against the ledger's batched append of the same events.")

        @OptionGroup var output: OutputOptions
        @Option(name: .long, help: "OpenLineage events per phase and repetition.") var events = 4000
        @Option(name: .long, help: "Events per batch request.") var batchSize = 200
        @Option(name: .long, help: "Requests in flight at once.") var concurrency = 4
        @Option(name: .long, help: "Repetitions (medians are reported).") var repetitions = 3
        @Option(name: .long, help: "A directory of the OpenLineage spec to use instead of the built-in copy.") var openlineageSpec: String?
        @Option(name: .long, help: "Scratch directory (removed afterwards).") var workDir: String?

        func validate() throws {
            if events < 2 { throw ValidationError("--events must be at least 2") }
            if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
            if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
            if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        }

        func run() async throws {
            try await reportingErrors {
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-serve-\(getpid())")
                let r = try await ServeBenchmark.run(
                    events: events, batchSize: batchSize, concurrency: concurrency, repetitions: repetitions,
                    specDirectory: Serve.specDirectory(openlineageSpec), in: dir) { Terminal.progress("bench: \($0)") }
                Terminal.endProgress()
                if output.json {
                    Terminal.line(try JSONOutput.text(r))
                    return
                }
                Terminal.line(String(format: "single  %8.0f events/s (%8.0f native events/s)", r.single.events_per_s, r.single.native_events_per_s))
                Terminal.line(String(format: "batch   %8.0f events/s (%8.0f native events/s), %d per request", r.batch.events_per_s, r.batch.native_events_per_s, r.batch_size))
                Terminal.line(String(format: "append  %8.0f native events/s (same events, same batches, straight to the ledger)", r.append_native_events_per_s))
                Terminal.line(String(format: "latency %8.2f ms p50, %.2f ms p99 (one event per request, one at a time; goal p99 <= 5 ms)", r.single_latency_ms_p50, r.single_latency_ms_p99))
                Terminal.line(String(format: "ingest_ratio %.2f (goal >= 0.3), single_ratio %.2f; medians of %d", r.ingest_ratio, r.single_ratio, r.repetitions))
            }
        }
    }

    struct ForensicsBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "forensics",
            abstract: "Full-depth ancestry on a 1,000,000-node lineage graph, value search over 1,000,000+ values, row-lineage overhead.")

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "Nodes of the generated lineage graph.")
        var nodes = 1_000_000

        @Option(name: .long, help: "Traces and searches timed (each).")
        var queries = 1000

        @Option(name: .long, help: "Rows for the row-lineage overhead.")
        var rows = 1_000_000

        @Option(name: .long, help: "Scratch directory (removed afterwards).")
        var workDir: String?

        func validate() throws {
            if nodes < 100 { throw ValidationError("--nodes must be at least 100") }
            if queries < 1 { throw ValidationError("--queries must be at least 1") }
            if rows < 10 { throw ValidationError("--rows must be at least 10") }
        }

        struct Report: Encodable {
            var graph: ForensicsBenchmark.Result
            var rowlineage: RowsBenchmark.Result
            var trace_ms_p50: Double
            var search_ms_p50: Double
            var rowlineage_overhead: Double
        }

        func run() async throws {
            try await reportingErrors {
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-forensics-\(getpid())")
                let g = try await ForensicsBenchmark.run(nodes: nodes, queries: queries, in: dir) { Terminal.progress("bench: \($0)") }
                Terminal.progress("bench: row lineage over \(rows) rows")
                let r = RowsBenchmark.run(rows: rows, repetitions: 7)
                Terminal.endProgress()
                if output.json {
                    print(try JSONOutput.text(Report(graph: g, rowlineage: r, trace_ms_p50: g.traceMillisP50, search_ms_p50: g.searchMillisP50, rowlineage_overhead: r.overhead)))
                    return
                }
                print("lineage graph: \(g.nodes) nodes from \(g.events) events (\(g.values) values), built and folded in \(String(format: "%.1f", g.buildSeconds)) s")
                print(String(format: "trace_ms_p50 %.3f  p99 %.3f  (full-depth ancestry, %.0f nodes p50; goal < 10)  raw LMDB reads of the same edges %.3f ms (ratio %.2f)", g.traceMillisP50, g.traceMillisP99, g.traceNodesP50, g.traceFloorMillisP50, g.traceRatio))
                print(String(format: "search_ms_p50 %.3f  p99 %.3f  (equality, range, prefix; %.0f hits p50)", g.searchMillisP50, g.searchMillisP99, g.searchHitsP50))
                print(String(format: "rowlineage_overhead %.3f (goal < 0.3): filter→map→group over %d rows, tracked %.1f ms vs untracked %.1f ms, medians of %d", r.overhead, r.rows, r.trackedMillis, r.untrackedMillis, r.repetitions))
            }
        }
    }
}
