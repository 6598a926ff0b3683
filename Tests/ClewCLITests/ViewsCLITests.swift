import ClewBenchmarks
import ClewLedger
import ClewModel
import ClewProjections
import Foundation
import Testing

@Suite("Views CLI", .serialized)
struct ViewsCLITests {
    /// A ledger of whole synthetic runs in the engine's schema, written in-process.
    static func corpus(_ cli: CLI, events: Int) async throws {
        let ledger = try Ledger.create(at: cli.ledger)
        defer { ledger.close() }
        try await ViewsCorpus.generate(into: ledger, events: events)
    }

    @Test("runs, run show, chunks, lineage and values answer from the views, as text and JSON")
    func queries() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await Self.corpus(cli, events: 3_000)
        let runs = try await cli.run(["runs", "--json", "--limit", "5"])
        #expect(runs.status == 0, "\(runs.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]])
        #expect(list.count == 5)
        #expect(list.first?["run"] as? String != nil && list.first?["dag"] as? String == ViewsCorpus.dag)
        #expect(runs.stderr.contains("building them from the log"), "first use builds the views: \(runs.stderr)")
        let failed = try await cli.run(["runs", "--state", "failed", "--json"])
        #expect(failed.status == 0 && failed.stderr.isEmpty, "\(failed.stderr)")
        let show = try await cli.run(["run", "show", "scheduled__r3"])
        #expect(show.status == 0, "\(show.stderr)")
        #expect(show.stdout.contains("state     succeeded") && show.stdout.contains("aggregate"), "\(show.stdout)")
        let now = try await jsonObject(try cli.run(["run", "show", "\(ViewsCorpus.dag)/scheduled__r3", "--json"]).stdout)
        let first = try #require((now["run"] as? [String: Any])?["firstSeq"] as? Int)
        let asOf = try await cli.run(["run", "show", "\(ViewsCorpus.dag)/scheduled__r3", "--as-of", "\(first + 3)", "--json"])
        let then = try jsonObject(asOf.stdout)
        #expect((then["run"] as? [String: Any])?["state"] as? String == "running", "\(asOf.stdout)")
        #expect((then["tasks"] as? [Any])?.count == 1, "only the first task had been scheduled")
        let before = try await cli.run(["run", "show", "\(ViewsCorpus.dag)/scheduled__r3", "--as-of", "\(first - 1)"])
        #expect(before.status == 1 && before.stderr.contains("had not been queued"), "\(before.stderr)")
        let chunks = try await cli.run(["chunks", ViewsCorpus.dataset])
        #expect(chunks.status == 0 && chunks.stdout.contains("partitioning time:3600"), "\(chunks.stdout + chunks.stderr)")
        let report = try await jsonObject(try cli.run(["chunks", ViewsCorpus.dataset, "--json"]).stdout)
        #expect(((report["dataset"] as? [String: Any])?["chunks"] as? Int ?? 0) > 0)
        // As of a seq, from the chunk view's history: before any chunk, then after two runs' ten chunks each.
        let empty = try await jsonObject(try cli.run(["chunks", ViewsCorpus.dataset, "--as-of", "1", "--json"]).stdout)
        #expect((empty["dataset"] as? [String: Any])?["chunks"] as? Int == 0 && (empty["dataset"] as? [String: Any])?["partitioning"] as? String == "time:3600", "\(empty)")
        let early = try await jsonObject(try cli.run(["chunks", ViewsCorpus.dataset, "--as-of", "\(first + 3)", "--json"]).stdout)
        #expect((early["dataset"] as? [String: Any])?["chunks"] as? Int == 2 * ViewsCorpus.chunksPerRun, "\(early)")
        let datasetsThen = try await cli.run(["chunks", "--as-of", "\(first + 3)", "--json"])
        #expect(datasetsThen.status == 0 && datasetsThen.stdout.contains(ViewsCorpus.dataset), "\(datasetsThen.stdout + datasetsThen.stderr)")
        let ready = try await cli.run(["chunks", ViewsCorpus.dataset, "--status", "consumed", "--limit", "3"])
        #expect(ready.lines.count == 3, "\(ready.stdout)")
        let lineage = try await cli.run(["lineage", "dataset:\(ViewsCorpus.dataset)", "--down", "--depth", "1"])
        #expect(lineage.stdout.contains("--used--> task:\(ViewsCorpus.dag)/aggregate"), "\(lineage.stdout)")
        let values = try await cli.run(["values", "rows", "--min", "1000", "--max", "20000", "--limit", "4", "--json"])
        #expect(try JSONSerialization.jsonObject(with: Data(values.stdout.utf8)) as? [Any] != nil && values.status == 0)
        let status = try await cli.run(["views", "status", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
    }

    @Test("bad input gets a clear error and a non-zero exit, and the views stay intact")
    func badInput() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await Self.corpus(cli, events: 1_500)
        for (args, needle) in [
            (["runs", "--as-of", "soon"], "not a seq number or a UTC time"),
            (["runs", "--as-of", "99999999"], "the log has"),
            (["runs", "--state", "exploded"], "not a run state"),
            (["run", "show", "no_such_run"], "no run no_such_run"),
            (["chunks", "nope"], "no dataset nope"),
            (["chunks", ViewsCorpus.dataset, "--status", "weird"], "not a chunk status"),
            (["rebuild", "--view", "everything"], "not a view"),
            (["lineage", "somewhere"], "has no kind"),
            (["values", "rows", "--eq", "1", "--prefix", "a"], "give one of"),
        ] {
            let r = try await cli.run(args)
            #expect(r.status != 0, "\(args)")
            #expect(r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
        let verify = try await cli.run(["views", "verify"])
        #expect(verify.status == 0, "\(verify.stdout + verify.stderr)")
    }

    @Test("views verify names a damaged view (exit 2) and rebuild restores it")
    func verifyAndRebuild() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await Self.corpus(cli, events: 2_000)
        #expect(try await cli.run(["runs"]).status == 0)
        let views = cli.ledger.appendingPathComponent("views")
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: views.appendingPathComponent("chunks").path)
        let file = views.appendingPathComponent(target).appendingPathComponent("data.mdb")
        var bytes = try [UInt8](Data(contentsOf: file))
        // A chunk record (binary): its location, the 19 bytes it adds before the chunk's key (stored as
        // the key's window length, not as text), after their length (2 * 19 + 1).
        let needle = [UInt8(39)] + Array("/data/\(ViewsCorpus.dataset)/".utf8)
        let at = try #require(bytes.indices.first { bytes[$0..<min($0 + needle.count, bytes.count)].elementsEqual(needle) })
        bytes[at + 10] ^= 0x01
        try Data(bytes).write(to: file)
        let verify = try await cli.run(["views", "verify"])
        #expect(verify.status == 2, "\(verify.stdout + verify.stderr)")
        #expect(verify.stdout.contains("chunks   DIFFERS") && verify.stdout.contains("runs     ok"), "\(verify.stdout)")
        #expect(verify.stderr.contains("views differ from a fresh fold of the log: chunks"), "\(verify.stderr)")
        let rebuild = try await cli.run(["rebuild", "--view", "chunks"])
        #expect(rebuild.status == 0 && rebuild.stdout.contains("rebuilt chunks"), "\(rebuild.stdout + rebuild.stderr)")
        #expect(try await cli.run(["views", "verify"]).status == 0)
    }

    // The limit catches a hang; instrumented (ThreadSanitizer) processes build the corpus 5-10x slower.
    @Test("kill -9 during a rebuild leaves the old views in place and valid", .timeLimit(CLI.sanitizer == nil ? .minutes(5) : .minutes(30)))
    func killDuringRebuild() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        try await Self.corpus(cli, events: 40_000)
        #expect(try await cli.run(["views", "status"]).status == 0)
        let views = cli.ledger.appendingPathComponent("views")
        let before = try ViewName.allCases.map { try FileManager.default.destinationOfSymbolicLink(atPath: views.appendingPathComponent($0.rawValue).path) }
        var rng = SplitMix64(seed: 99)
        var killedMidway = 0
        for _ in 0..<4 {
            let live = try Set(ViewName.allCases.map { try FileManager.default.destinationOfSymbolicLink(atPath: views.appendingPathComponent($0.rawValue).path) })
            let (process, _, _) = try cli.start(["rebuild"])
            // Killed once the rebuild has begun its new generations (a fold of 40,000 events takes
            // about a second), at a random point of the first 300 ms of its fold.
            let began = Date()
            while process.isRunning, Date().timeIntervalSince(began) < 60,
                  try !FileManager.default.contentsOfDirectory(atPath: views.path).contains(where: { !$0.hasPrefix(".") && !live.contains($0) && $0.contains(".") }) {
                try await Task.sleep(for: .milliseconds(2))
            }
            try await Task.sleep(for: .milliseconds(Int(rng.next(below: 300))))
            if process.isRunning { killedMidway += 1 }
            kill(process.processIdentifier, SIGKILL)
            await CLI.exit(of: process)
            let verify = try await cli.run(["views", "verify"])
            #expect(verify.status == 0, "\(verify.stdout + verify.stderr)")
            for name in ViewName.allCases {
                let link = try FileManager.default.destinationOfSymbolicLink(atPath: views.appendingPathComponent(name.rawValue).path)
                #expect(FileManager.default.fileExists(atPath: views.appendingPathComponent(link).appendingPathComponent("data.mdb").path))
            }
        }
        #expect(killedMidway >= 3, "kills that landed mid-rebuild: \(killedMidway) of 4")
        // The next open clears the half-built generations.
        #expect(try await cli.run(["rebuild"]).status == 0)
        let after = try FileManager.default.contentsOfDirectory(atPath: views.path).filter { !$0.hasPrefix(".") }
        #expect(after.count == 8, "one symlink and one generation per view: \(after)")
        #expect(before.count == 4)
    }
}
