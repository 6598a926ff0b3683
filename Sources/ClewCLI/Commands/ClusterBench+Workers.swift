import ClewBenchmarks
import ClewLedger
import ClewModel
import ClewPostgres
import Foundation

/// `clew bench cluster`'s worker figures, with real `clew worker` and `clew run` processes on the
/// benchmark's server: claim latency, the shard demo's tasks/s through 1 and 3 workers against the same
/// run in one process, and recovery from a worker killed in the middle of a task.
enum WorkerBench {
    struct Figures {
        var claimMillis: [Double] = []
        var tasksPerSecond: [Int: [Double]] = [:]
        var localTasksPerSecond: [Double] = []
        var recoveryMillis: [Double] = []
        var expiryToClaimMillis: [Double] = []
    }

    /// A pipeline whose middle task takes 2 s (the one a worker is killed in), written beside the run.
    static let chain = """
        dag: bench_chain
        description: clew bench cluster's recovery measurement
        tasks:
          first:
            run: "true"
          slow:
            after: first
            run: "sleep 2"
          last:
            after: slow
            run: "true"
        """

    static func measure(
        admin: PostgresLocation, exe: URL, dir: URL, repetitions: Int, workerCounts: [Int], progress: @Sendable (String) -> Void
    ) async throws -> Figures {
        var f = Figures()
        let pipelines = dir.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        try Data(chain.utf8).write(to: pipelines.appendingPathComponent("bench_chain.yaml"))
        for rep in 1...repetitions {
            try await ClusterBenchmark.withDatabase(admin) { url in
                let ledger = ["--ledger", url]
                func cache(_ name: String) -> [String] { ["--cache", dir.appendingPathComponent("\(name)-\(rep)").path] }
                _ = try await Child.run(exe, ["init"] + ledger + cache("coordinator"), dir: dir)
                let shard = ["run", "shard_etl", "--param", "fail_first_attempt=false", "--json"] + ledger + cache("coordinator")
                progress("rep \(rep)/\(repetitions): the shard demo in one process")
                let local = try await Child.run(exe, shard, dir: dir)
                let reader = try await Reader(url: url, at: dir.appendingPathComponent("reader-\(rep)"))
                defer { reader.close() }
                f.localTasksPerSecond.append(try await reader.tasksPerSecond(run: try Child.runID(local)))
                for k in workerCounts {
                    progress("rep \(rep)/\(repetitions): the shard demo through \(k) worker(s)")
                    let workers = try await (0..<k).asyncMap { i in
                        try await Child.worker(exe, ["--queue", "bench", "--slots", "4", "--name", "w\(i)"] + ledger + cache("worker\(i)"), dir: dir)
                    }
                    let queued = try await Child.run(exe, shard + ["--queue", "bench"], dir: dir)
                    for w in workers { await w.stop() }
                    let run = try Child.runID(queued)
                    f.tasksPerSecond[k, default: []].append(try await reader.tasksPerSecond(run: run))
                    f.claimMillis += try await reader.claimMillis(dag: "shard_etl", run: run)
                }
                progress("rep \(rep)/\(repetitions): a worker killed in the middle of a task")
                let p = ["--pipelines", pipelines.path]
                let workers = try await (0..<2).asyncMap { i in
                    try await Child.worker(exe, ["--queue", "bench", "--name", "r\(i)"] + p + ledger + cache("recovery\(i)"), dir: dir)
                }
                let chainRun = try Child.start(exe, ["run", "bench_chain", "--queue", "bench", "--lease", "1", "--json"] + p + ledger + cache("coordinator"), dir: dir)
                var victim: Child?
                let deadline = ContinuousClock.now + .seconds(60)
                while victim == nil, ContinuousClock.now < deadline {
                    victim = workers.first { $0.stderr.contains(" slow attempt 1") }
                    try await Task.sleep(for: .milliseconds(5))
                }
                guard let victim else { throw CLIFailure(message: "bench: no worker claimed the slow task within 60 s") }
                let killed = Int64(Date().timeIntervalSince1970 * 1_000_000)
                kill(victim.process.processIdentifier, SIGKILL)
                try await chainRun.finish()
                for w in workers { await w.stop() }
                let run = try Child.runID(chainRun)
                let (expired, claimed) = try await reader.recovery(dag: "bench_chain", run: run, task: "slow")
                f.recoveryMillis.append(Double(claimed - killed) / 1000)
                f.expiryToClaimMillis.append(Double(claimed - expired) / 1000)
            }
        }
        return f
    }

    /// The benchmark database's events, read from a replica of its own.
    struct Reader {
        let ledger: Ledger

        init(url: String, at dir: URL) async throws {
            let log = try await PostgresLog.connect(try PostgresLocation(url), create: false)
            ledger = try await Ledger.replica(of: log, at: dir)
        }

        func close() { ledger.close() }

        /// Tasks succeeded per second between the run's start and its end.
        func tasksPerSecond(run: String) async throws -> Double {
            _ = try await ledger.pull()
            let events = try ledger.events(inStream: StreamID.run(dag: "shard_etl", run: run))
            guard let start = events.first(where: { $0.type == EventType.runStarted })?.timestampMicros,
                let end = events.last(where: { $0.type == EventType.runSucceeded })?.timestampMicros
            else { throw CLIFailure(message: "bench: run \(run) of shard_etl did not succeed") }
            let tasks = events.filter { $0.type == EventType.taskSucceeded }.count
            return Double(tasks) / (Double(max(end - start, 1)) / 1e6)
        }

        /// For every attempt of the run: from `attempt.queued` to `attempt.claimed`, in ms.
        func claimMillis(dag: String, run: String) async throws -> [Double] {
            _ = try await ledger.pull()
            var out: [Double] = []
            for q in try ledger.events(inStream: StreamID.queue("bench")) where q.type == EventType.attemptQueued {
                let a = try JSONDecoder().decode(AttemptEvent.self, from: q.payload)
                guard a.run == run, let claim = try ledger.events(inStream: a.stream, limit: 1).first else { continue }
                out.append(Double(claim.timestampMicros - q.timestampMicros) / 1000)
            }
            return out
        }

        /// When the first attempt's lease was expired, and when the second attempt was claimed.
        func recovery(dag: String, run: String, task: String) async throws -> (Int64, Int64) {
            _ = try await ledger.pull()
            let first = try ledger.events(inStream: StreamID.attempt(dag: dag, run: run, task: task, attempt: 1))
            let second = try ledger.events(inStream: StreamID.attempt(dag: dag, run: run, task: task, attempt: 2), limit: 1)
            guard let expired = first.first(where: { $0.type == EventType.attemptExpired })?.timestampMicros, let claimed = second.first?.timestampMicros else {
                throw CLIFailure(message: "bench: the killed worker's attempt of \(task) was not expired and claimed again")
            }
            return (expired, claimed)
        }
    }

    /// A `clew` child process with its output in files.
    struct Child {
        let process: Process
        let out: URL
        let err: URL
        var stderr: String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }
        var stdout: String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }

        static func start(_ exe: URL, _ args: [String], dir: URL) throws -> Child {
            let id = UUID().uuidString.prefix(8)
            let out = dir.appendingPathComponent("child-\(id).out"), err = dir.appendingPathComponent("child-\(id).err")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            let p = Process()
            p.executableURL = exe
            p.arguments = args
            p.currentDirectoryURL = dir
            p.standardOutput = try FileHandle(forWritingTo: out)
            p.standardError = try FileHandle(forWritingTo: err)
            p.standardInput = FileHandle.nullDevice
            try p.run()
            return Child(process: p, out: out, err: err)
        }

        static func run(_ exe: URL, _ args: [String], dir: URL) async throws -> Child {
            let c = try start(exe, args, dir: dir)
            try await c.finish()
            return c
        }

        /// A worker, once it says it serves its queue.
        static func worker(_ exe: URL, _ args: [String], dir: URL) async throws -> Child {
            let c = try start(exe, ["worker"] + args, dir: dir)
            let deadline = ContinuousClock.now + .seconds(60)
            while !c.stderr.contains("serving queue"), c.process.isRunning, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            guard c.process.isRunning, c.stderr.contains("serving queue") else { throw CLIFailure(message: "bench: a worker did not start: \(c.stderr)") }
            return c
        }

        func finish() async throws {
            while process.isRunning { try await Task.sleep(for: .milliseconds(5)) }
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CLIFailure(message: "bench: `clew \(process.arguments?.first ?? "")` exited with \(process.terminationStatus): \(stderr)")
            }
        }

        func stop() async {
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
        }

        static func runID(_ c: Child) throws -> String {
            guard let data = c.stdout.data(using: .utf8), let o = try JSONSerialization.jsonObject(with: data) as? [String: Any], let run = o["run"] as? String
            else { throw CLIFailure(message: "bench: `clew run` printed no run id: \(c.stdout) \(c.stderr)") }
            return run
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
