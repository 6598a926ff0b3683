import Foundation
import Testing

@Suite("clew worker on a ledger directory")
struct WorkerCLITests {
    @Test("a run through a worker process records what a run in one process does: it succeeds, views list it, replay finds it identical")
    func throughAWorker() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let (worker, _, err) = try cli.start(["worker", "--queue", "q", "--slots", "2", "--name", "w1"])
        defer { kill(worker.processIdentifier, SIGTERM) }
        try await CLI.waitUntil("the worker to serve") { ((try? String(contentsOf: err, encoding: .utf8)) ?? "").contains("serving queue q") }
        let run = try await cli.run(["run", "numeric_flow", "--queue", "q", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let id = try jsonObject(run.stdout)["run"] as? String ?? "?"
        let log = try await cli.run(["log", "--stream", "run/numeric_flow/\(id)", "--json"])
        let events = log.lines.compactMap { try? jsonObject($0) }
        // Every attempt's events come from the worker, the run's own from the coordinator.
        let started = events.filter { $0["type"] as? String == "task.started" }
        #expect(!started.isEmpty && started.allSatisfy { $0["actor"] as? String == "clew-worker" }, "\(started)")
        let claims = try await cli.run(["log", "--type", "attempt.claimed", "--json"]).lines.compactMap { try? jsonObject($0) }
        #expect(claims.count == started.count, "one claim per attempt")
        #expect(claims.allSatisfy { ($0["payload"] as? [String: Any])?["worker"] as? String == "w1" })
        let replay = try await cli.run(["replay", id])
        #expect(replay.status == 0 && replay.stdout.contains("identical"), "\(replay.stdout) \(replay.stderr)")
        kill(worker.processIdentifier, SIGTERM)
        await CLI.exit(of: worker)
        #expect(worker.terminationStatus == 0 || worker.terminationStatus == 130, "the worker stops on SIGTERM: \(worker.terminationStatus)")
        #expect(try await cli.run(["verify"]).status == 0)
    }

    @Test("bad worker and queue options are refused with what is wrong, and nothing is recorded")
    func badOptions() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let before = try await cli.eventCount()
        for (args, says) in [
            (["worker", "--slots", "0"], "--slots 0 must be between 1 and 256"),
            (["worker", "--queue", "a/b"], "--queue 'a/b' must be a non-empty name"),
            (["worker", "--poll", "0"], "--poll 0.0 must be between"),
            (["run", "numeric_flow", "--queue", ""], "--queue '' must be a non-empty name"),
            (["run", "numeric_flow", "--queue", "q", "--lease", "0.1"], "--lease 0.1 must be between 0.3 and 86400 seconds"),
        ] {
            let r = try await cli.run(args)
            #expect(r.status != 0, "\(args)")
            #expect(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        let missing = try await cli.run(["worker", "--ledger", cli.directory.appendingPathComponent("nowhere").path], ledgerOption: false)
        #expect(missing.status != 0 && missing.stderr.contains("nowhere"), "\(missing.stderr)")
        #expect(try await cli.eventCount() == before)
    }
}
