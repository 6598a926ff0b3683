import ClewTestSupport
import Foundation
import Testing

/// Pools (docs/operations.md#pools): slots shared by every process, priority order, `queued (pool)`.
@Suite("Operations: pools", .serialized)
struct PoolsTests {
    static var pipelines: String { OperationsTests.pipelines }

    /// The pool's claims in log order: the most attempts holding slots at once, and who acquired in which order.
    static func replay(_ cli: CLI, pool: String) async throws -> (peak: Int, acquired: [String], waited: Int) {
        let log = try await cli.run(["log", "--stream", "pool/\(pool)", "--json"])
        var held = Set<String>()
        var peak = 0
        var acquired: [String] = []
        var waited = 0
        for line in log.stdout.split(separator: "\n") {
            let e = try jsonObject(String(line))
            let p = e["payload"] as? [String: Any] ?? [:]
            let holder = p["holder"] as? String ?? "?"
            switch e["type"] as? String {
            case "pool.acquired":
                held.insert(holder)
                acquired.append(p["task"] as? String ?? "?")
                peak = max(peak, held.count)
            case "pool.released": held.remove(holder)
            case "pool.waiting": waited += 1
            default: break
            }
        }
        return (peak, acquired, waited)
    }

    @Test("a pool of 2 slots holds two processes' six tasks at 2 at a time; waiting tasks show queued (pool); then in priority order; bad input refused")
    func pools() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)

        // Bad input: refused, naming it, nothing recorded.
        let before = try await cli.eventCount()
        let zero = try await cli.run(["pools", "set", "db", "--slots", "0"])
        #expect(zero.status == 1 && zero.stderr.contains("slots must be 1-100000, not 0"), "\(zero.stderr)")
        let name = try await cli.run(["pools", "set", "db pool", "--slots", "2"])
        #expect(name.status == 1 && name.stderr.contains("pool name 'db pool'"), "\(name.stderr)")
        let missing = try await cli.run(["pools", "delete", "nope"])
        #expect(missing.status == 1 && missing.stderr.contains("no pool 'nope' is set"), "\(missing.stderr)")
        #expect(try await cli.eventCount() == before)

        // A task whose pool is not set fails, naming it; nothing waits forever.
        let unset = try await cli.run(["run", "ops_pool", "--pipelines", Self.pipelines, "--json"])
        #expect(unset.status == 3)
        #expect(unset.stdout.contains("pool 'db' is not set (clew pools set db --slots N)"), "\(unset.stdout)")

        #expect(try await cli.run(["pools", "set", "db", "--slots", "2", "--reason", "the warehouse takes two loads"]).status == 0)
        let (p1, _, _) = try cli.start(["run", "ops_pool", "--pipelines", Self.pipelines, "--json"])
        let (p2, _, _) = try cli.start(["run", "ops_pool", "--pipelines", Self.pipelines, "--json"])
        // While they run: some task of the two runs shows queued (pool) in the views.
        try await CLI.waitUntil("a task queued for the pool") {
            try await cli.run(["log", "--type", "task.queued", "--json"]).stdout.contains("pool db")
        }
        #expect(try await CLI.wait(for: p1, args: ["run"]) == 0)
        #expect(try await CLI.wait(for: p2, args: ["run"]) == 0)
        let (peak, acquired, waited) = try await Self.replay(cli, pool: "db")
        #expect(acquired.count == 6 && peak == 2, "six attempts, never more than two at once: \(acquired) peak \(peak)")
        #expect(waited >= 1, "the third task of a run waited: \(waited)")
        let runs = try jsonArray(try await cli.run(["runs", "--dag", "ops_pool", "--json"]).stdout)
        #expect(runs.filter { $0["state"] as? String == "succeeded" }.count == 2, "\(runs)")
        let show = try await cli.run(["pools", "show", "db", "--json"])
        let occupancy = try jsonObject(show.stdout)
        #expect((occupancy["holders"] as? [Any])?.isEmpty == true && (occupancy["waiting"] as? [Any])?.isEmpty == true, "all given back: \(show.stdout)")

        // Priority: three tasks queue behind a holder in another process, then get the slot high, mid, low.
        #expect(try await cli.run(["pools", "set", "solo", "--slots", "1"]).status == 0)
        // The hold task keeps the slot until the test creates the release file.
        let release = cli.directory.appendingPathComponent("release").path
        let (holder, _, _) = try cli.start(["run", "ops_pool_hold", "--pipelines", Self.pipelines], environment: ["CLEW_TEST_RELEASE": release])
        try await CLI.waitUntil("the hold task to take the slot") { try await Self.replay(cli, pool: "solo").acquired == ["hold"] }
        let (queued, _, _) = try cli.start(["run", "ops_pool_priority", "--pipelines", Self.pipelines])
        try await CLI.waitUntil("three tasks waiting for solo") { try await Self.replay(cli, pool: "solo").waited == 3 }
        let list = try await cli.run(["pools", "list", "--json"])
        let solo = try #require(try jsonArray(list.stdout).first { $0["pool"] as? String == "solo" })
        #expect((solo["waiting"] as? [[String: Any]])?.map { $0["task"] as? String } == ["high", "mid", "low"], "the queue in priority order: \(list.stdout)")
        // The runs view shows them queued (pool), with why.
        let runID = try #require(try jsonArray(try await cli.run(["runs", "--dag", "ops_pool_priority", "--json"]).stdout).first?["run"] as? String)
        let shown = try jsonObject(try await cli.run(["run", "show", "ops_pool_priority/\(runID)", "--json"]).stdout)
        let states = (shown["tasks"] as? [[String: Any]] ?? []).map { "\($0["state"] as? String ?? "?"): \($0["reason"] as? String ?? "")" }
        #expect(states.count == 3 && states.allSatisfy { $0.hasPrefix("queued (pool): pool solo: 1 of 1 slots in use") }, "\(states)")
        #expect(FileManager.default.createFile(atPath: release, contents: Data()))
        #expect(try await CLI.wait(for: holder, args: ["run"]) == 0)
        #expect(try await CLI.wait(for: queued, args: ["run"]) == 0)
        #expect(try await Self.replay(cli, pool: "solo").acquired == ["hold", "high", "mid", "low"])
    }

    @Test("a killed holder's slots are free again: its claim no longer counts once its process is gone")
    func killedHolder() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        #expect(try await cli.run(["pools", "set", "solo", "--slots", "1"]).status == 0)
        // The hold task waits for a file that never comes: it holds the slot until it is killed.
        let release = cli.directory.appendingPathComponent("never").path
        let (holder, _, _) = try cli.start(["run", "ops_pool_hold", "--pipelines", Self.pipelines], environment: ["CLEW_TEST_RELEASE": release])
        try await CLI.waitUntil("the hold task to take the slot") { try await Self.replay(cli, pool: "solo").acquired == ["hold"] }
        kill(holder.processIdentifier, SIGKILL)
        _ = await CLI.exit(of: holder)
        // Its shell loop (own process group) outlives it; end it too.
        #expect(FileManager.default.createFile(atPath: release, contents: Data()))
        let o = try jsonObject(try await cli.run(["pools", "show", "solo", "--json"]).stdout)
        #expect((o["holders"] as? [Any])?.isEmpty == true && (o["stale"] as? [Any])?.count == 1, "\(o)")
        let run = try await cli.run(["run", "ops_pool_priority", "--pipelines", Self.pipelines])
        #expect(run.status == 0, "\(run.stderr)")
    }
}
