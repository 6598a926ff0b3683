import ClewTestSupport
import Foundation
import Testing

/// The long reliability runs of docs/reliability.md (tools/soak.py, tools/load.py), each run short here so
/// that the scripts and what they check stay working between the long runs.
@Suite("Soak and load scripts, short runs")
struct ReliabilityTests {
    static func script(_ name: String) -> String {
        CLI.packageRoot.appendingPathComponent("tools/\(name)").path
    }

    /// The `soak: {...}` or `load: {...}` line of a script's output.
    static func figures(_ output: String, _ prefix: String) throws -> [String: Any] {
        let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("\(prefix): {") }, "\(output)")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.dropFirst(prefix.count + 2).utf8)) as? [String: Any])
    }

    @Test("soak: kill -9 rounds of each kind, then writers at once: every acknowledged event kept, the ledger and views verify")
    func soak() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clew-soak-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try await Program.run(
            "/usr/bin/python3",
            [Self.script("soak.py"), "--clew", CLI.binary.path, "--rounds", "8", "--rounds-per-ledger", "4", "--minutes", "0.25",
             "--appenders", "2", "--workdir", dir.path],
            in: FileManager.default.temporaryDirectory, limit: .seconds(600))
        #expect(run.status == 0, "\(run.output)")
        let figures = try Self.figures(run.output, "soak")
        let phase1 = try #require(figures["phase1"] as? [String: [String: Int]])
        for kind in ["append", "run", "ingest", "rebuild"] {
            #expect(phase1[kind]?["rounds"] == 2, "\(kind): \(phase1)")
        }
        // What was acknowledged is what is present (a kill may leave more: a commit done, its ack unsent).
        #expect((phase1["append"]?["present"] ?? 0) >= (phase1["append"]?["acknowledged"] ?? 1))
        let phase2 = try #require(figures["phase2"] as? [String: Int])
        #expect((phase2["append_acknowledged"] ?? 0) > 0 && (phase2["ol_acknowledged"] ?? 0) > 0 && (phase2["reads"] ?? 0) > 0, "\(phase2)")
    }

    @Test("load: wrk on read endpoints and ingest, twice: no error, every acknowledged ingest recorded, memory flat in the second cycle, the ledger verifies")
    func load() async throws {
        let run = try await Program.run(
            "/usr/bin/python3",
            [Self.script("load.py"), "--clew", CLI.binary.path, "--seconds", "2", "--seed-runs", "1", "--connections", "8",
             // Memory is judged by the long run (docs/reliability.md, load); 2-second phases only catch a
             // gross leak.
             "--max-growth-mib", "512"],
            in: FileManager.default.temporaryDirectory, limit: .seconds(600))
        #expect(run.status == 0, "\(run.output)")
        let figures = try Self.figures(run.output, "load")
        let phases = try #require(figures["phases"] as? [String: [String: Any]])
        #expect(phases.count == 24, "\(phases.keys.sorted())")
        for (name, phase) in phases {
            #expect(phase["errors"] as? Int == 0, "\(name): \(phase)")
        }
        // Not every phase: on a loaded machine (or under TSan) a 2-second phase of a slow endpoint can end
        // before its first answer.
        #expect(phases.values.filter { ($0["rps"] as? Int ?? 0) > 0 }.count >= 18, "\(phases)")
        let acknowledged = try #require(figures["ingest_acknowledged"] as? Int)
        #expect(acknowledged > 0)
        #expect((figures["ingest_recorded"] as? Int ?? 0) >= acknowledged)
    }
}
