import ArgumentParser
import ClewBenchmarks
import ClewPostgres
import Foundation

extension Bench {
    struct ClusterBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster",
            abstract: "Appends through the PostgreSQL shared log against raw batched INSERTs of the same rows, same server, same run.",
            discussion: """
                Creates (and drops) databases of its own on the server of --postgres (default: $CLEW_TEST_POSTGRES, else \
                the one tools/postgres.sh starts). Clients are separate `clew` processes.
                """)

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "A PostgreSQL URL whose user may create databases.")
        var postgres: String = ProcessInfo.processInfo.environment["CLEW_TEST_POSTGRES"] ?? "postgres://clew:clew@127.0.0.1:5432/clew?sslmode=disable"

        @Option(name: .long, help: "Events per measurement (split among the clients).")
        var events = 100_000

        @Option(name: .long, help: "Events per batch.")
        var batch = 1_000

        @Option(name: .long, parsing: .upToNextOption, help: "Client process counts to measure.")
        var clients: [Int] = [1, 2, 4]

        @Option(name: .long, help: "Repetitions (medians are reported).")
        var repetitions = 3

        @Option(name: .long, parsing: .upToNextOption, help: "Worker process counts to measure tasks/s with (0: no worker figures).")
        var workers: [Int] = [1, 3]

        @Option(name: .long, help: "Scratch directory for the replica (removed afterwards).")
        var workDir: String?

        @Option(name: .long, help: .hidden)
        var clientOf: String?

        @Option(name: .long, help: .hidden)
        var clientSeed = 0

        @Flag(name: .long, help: .hidden)
        var raw = false

        func validate() throws {
            if events < 1_000 { throw ValidationError("--events must be at least 1000") }
            if batch < 1 || repetitions < 1 || clients.contains(where: { $0 < 1 }) {
                throw ValidationError("--batch, --repetitions and --clients must be at least 1")
            }
            _ = try PostgresLocation(clientOf ?? postgres)
        }

        func run() async throws {
            try await reportingErrors {
                if let url = clientOf {
                    let t = try await ClusterBenchmark.client(url: url, count: events, batch: batch, raw: raw, seed: clientSeed)
                    print(try JSONOutput.text(t))
                    return
                }
                var c = ClusterBenchmark.Configuration()
                c.events = events
                c.batch = batch
                c.clients = clients
                c.repetitions = repetitions
                let dir = URL(fileURLWithPath: workDir ?? NSTemporaryDirectory()).appendingPathComponent("clew-bench-cluster-\(getpid())")
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: dir) }
                let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
                let batch = self.batch
                var r = try await ClusterBenchmark.run(
                    admin: try PostgresLocation(postgres), configuration: c, workDir: dir,
                    spawn: { url, k, each, raw in try await Self.spawn(exe, url: url, clients: k, each: each, batch: batch, raw: raw, dir: dir) },
                    progress: { Terminal.progress("bench: \($0)") })
                let counts = workers.filter { $0 > 0 }
                if !counts.isEmpty {
                    let f = try await WorkerBench.measure(
                        admin: try PostgresLocation(postgres), exe: exe, dir: dir, repetitions: repetitions, workerCounts: counts,
                        progress: { Terminal.progress("bench: \($0)") })
                    let local = median(f.localTasksPerSecond)
                    r.claim_p50_ms = median(f.claimMillis)
                    r.local_tasks_per_s = local
                    r.tasks_per_s = Dictionary(uniqueKeysWithValues: f.tasksPerSecond.map { ("\($0.key)", median($0.value)) })
                    r.tasks_ratio = r.tasks_per_s?.mapValues { $0 / max(local, 1e-9) }
                    r.recovery_ms_p50 = median(f.recoveryMillis)
                    r.expiry_to_claim_ms_p50 = median(f.expiryToClaimMillis)
                }
                Terminal.endProgress()
                if output.json {
                    print(try JSONOutput.text(r))
                } else {
                    print("\(events) events per measurement, batches of \(batch), medians of \(repetitions), one PostgreSQL on this machine")
                    for k in clients {
                        print(String(
                            format: "%d client(s): shared log %.0f events/s, raw batched INSERTs %.0f: pg_append_ratio %.2f (goal >= 0.5)", k,
                            r.pg_append_eps["\(k)"] ?? 0, r.raw_insert_eps["\(k)"] ?? 0, r.pg_append_ratio["\(k)"] ?? 0))
                    }
                    print(String(
                        format: "durable single append p50 %.0f us, one-row INSERT %.0f us: %.2fx", r.durable_single_p50_us, r.raw_single_p50_us,
                        r.durable_single_ratio))
                    print(String(
                        format: "a new host's replica copies %.0f events/s, SELECT of the same rows %.0f: %.2f", r.replica_copy_eps, r.raw_select_eps,
                        r.replica_copy_ratio))
                    if let local = r.local_tasks_per_s, let tps = r.tasks_per_s {
                        print(String(format: "workers: attempt queued to claimed p50 %.1f ms", r.claim_p50_ms ?? 0))
                        for (k, v) in tps.sorted(by: { Int($0.key) ?? 0 < Int($1.key) ?? 0 }) {
                            print("\(k) worker(s): " + String(format: "%.0f tasks/s, the same run in one process %.0f: %.2f", v, local, v / max(local, 1e-9)))
                        }
                        print(String(
                            format: "a worker killed mid-task: next attempt claimed %.0f ms after the kill (lease 1 s), %.0f ms after the lease's expiry",
                            r.recovery_ms_p50 ?? 0, r.expiry_to_claim_ms_p50 ?? 0))
                    }
                }
            }
        }

        /// Starts `clients` client processes at once and collects their timings.
        static func spawn(_ exe: URL, url: String, clients: Int, each: Int, batch: Int, raw: Bool, dir: URL) async throws -> [ClusterBenchmark.ClientTiming] {
            var running: [(Process, URL, URL, AsyncStream<Void>)] = []
            for i in 0..<clients {
                let out = dir.appendingPathComponent("client-\(i).out"), err = dir.appendingPathComponent("client-\(i).err")
                _ = FileManager.default.createFile(atPath: out.path, contents: nil)
                _ = FileManager.default.createFile(atPath: err.path, contents: nil)
                let p = Process()
                p.executableURL = exe
                p.arguments = ["bench", "cluster", "--client-of", url, "--client-seed", "\(i + 1)", "--events", "\(each)", "--batch", "\(batch)"]
                    + (raw ? ["--raw"] : [])
                p.standardOutput = try FileHandle(forWritingTo: out)
                p.standardError = try FileHandle(forWritingTo: err)
                let (exited, signal) = AsyncStream<Void>.makeStream()
                p.terminationHandler = { _ in
                    signal.yield()
                    signal.finish()
                }
                try p.run()
                running.append((p, out, err, exited))
            }
            var timings: [ClusterBenchmark.ClientTiming] = []
            for (p, out, err, exited) in running {
                for await _ in exited {}
                guard p.terminationStatus == 0, let data = FileManager.default.contents(atPath: out.path),
                    let t = try? JSONDecoder().decode(ClusterBenchmark.ClientTiming.self, from: data)
                else {
                    let reason = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
                    throw CLIFailure(message: "a benchmark client exited with \(p.terminationStatus): \(reason)")
                }
                timings.append(t)
            }
            return timings
        }
    }
}

/// The median of `values` (0 for none).
private func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
