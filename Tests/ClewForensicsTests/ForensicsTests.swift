import ClewCore
import ClewEngine
import ClewForensics
import ClewLedger
import ClewProjections
import ClewTestSupport
import Foundation
import Testing

/// Forensics in process, on a ledger the engine writes: numeric_flow batches 1-7, where batch 7's
/// `convert_units` uses a factor a thousand times too small and finishes without an error.
@Suite("Forensics in process")
struct ForensicsTests {
    static func withBatches(_ body: (Forensics, [Int: String]) async throws -> Void) async throws {
        try await withEngine([DemoDAGs.numericFlow], prefix: "clew-forensics") { engine, ledger, _ in
            var runs: [Int: String] = [:]
            for batch in 1...7 { runs[batch] = try await engine.run(DemoDAGs.numericFlow, params: ["batch": String(batch)]).runID }
            let views = try Views.open(ledger: ledger)
            defer { views.close() }
            try await body(Forensics(ledger: ledger, views: views), runs)
        }
    }

    @Test("culprit names batch 7's anomalous factor against batches 1-6, and nothing in a normal batch")
    func culprit() async throws {
        try await Self.withBatches { f, runs in
            let bad = try f.culprit(try f.node("numeric_flow/\(try #require(runs[7]))"))
            let c = try #require(bad.culprit, "\(bad.summary)")
            #expect(c.kind == "anomaly" && c.variable == "factor" && c.value == 0.0001, "\(c)")
            #expect(c.attempt?.task == "convert_units" && c.attempt?.run == runs[7])
            #expect(c.history?.max == 0.001)
            let normal = try f.culprit(try f.node("numeric_flow/\(try #require(runs[2]))"))
            #expect(normal.culprit == nil, "\(normal.summary)")
        }
    }

    @Test("trace and impact follow the lineage both ways from a run's output")
    func traceAndImpact() async throws {
        try await Self.withBatches { f, runs in
            let run = try f.node("numeric_flow/\(try #require(runs[7]))")
            let down = try f.trace(run, direction: .down)
            #expect(down.nodes.count > 1 && !down.edges.isEmpty, "\(down.nodes.map(\.id))")
            guard let value = down.nodes.map(\.id).first(where: { $0.hasPrefix("value:") }) else {
                Issue.record("no value downstream of \(run): \(down.nodes.map(\.id))")
                return
            }
            let up = try f.trace(value, direction: .up)
            #expect(up.nodes.contains { $0.id.hasPrefix("attempt:numeric_flow/\(runs[7]!)/") || $0.id == run }, "\(up.nodes.map(\.id))")
            let impact = try f.impact(value)
            #expect(impact.source == value)
        }
    }

    @Test("names that match nothing are not found, and each error carries its category")
    func unknownNodes() async throws {
        try await Self.withBatches { f, _ in
            do {
                _ = try f.node("no_such_thing_anywhere")
                Issue.record("an unknown name resolved")
            } catch let e as ForensicsError {
                #expect(e.category == .notFound, "\(e)")
            }
            #expect(throws: ForensicsError.self) { try f.impact("run:numeric_flow/x") }
            do { _ = try f.impact("run:numeric_flow/x") } catch { #expect(ErrorCategory.of(error) == .invalidInput, "\(error)") }
        }
    }
}
