import ClewEngine
import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Testing
@testable import ClewReplay

/// `#traced`: each binding of a DSL closure recorded with its line, loops summarized, replayed.
enum TracedDAGs {
    struct Handle: CustomStringConvertible { var description: String { "handle#7" } }  // not Encodable

    static func orders(factor: Double) -> DAG {
        DAG("traced_orders") {
            Op("source") { _ in (0..<20).map { Double(10 + $0) } }
            Op("total", after: "source", body: #traced { ctx in
                let amounts = try ctx.input("source", as: [Double].self)
                var total = 0.0
                for amount in amounts {
                    let scaled = amount * factor
                    total += scaled
                }
                let handle = Handle()
                let label = [1, 2, 3].map { n in n * 2 }  // a nested closure: its own scope, left as written
                _ = (handle, label)
                return total
            })
        }
    }
}

@Suite("#traced DSL closures")
struct TracedTests {
    static func steps(_ ledger: Ledger, _ run: RunOutcome, task: String) throws -> [[String: Any]] {
        try ledger.events(inStream: run.stream).filter { $0.type == EventType.variableRecorded }.compactMap {
            try JSONSerialization.jsonObject(with: $0.payload) as? [String: Any]
        }.filter { $0["task"] as? String == task }
    }

    @Test("every binding is a step with its line; a loop's bindings are summarized; a value that is not Encodable is described")
    func bindings() async throws {
        let dag = TracedDAGs.orders(factor: 1.5)
        try await withEngine([dag]) { engine, ledger, _ in
            let run = try await engine.run(dag)
            #expect(run.status == .succeeded)
            let steps = try Self.steps(ledger, run, task: "total")
            let names = steps.compactMap { $0["name"] as? String }
            #expect(names.first == "amounts")
            // total = 0, then 3 runs of each loop binding, their last values with the count, then the rest.
            #expect(names.filter { $0 == "amount" }.count == 4 && names.filter { $0 == "scaled" }.count == 4, "\(names)")
            #expect(names.filter { $0 == "total" }.count == 5, "\(names)")
            let lastScaled = try #require(steps.last { $0["name"] as? String == "scaled" })
            #expect(lastScaled["count"] as? Int == 20)
            #expect((lastScaled["value"] as? NSNumber)?.doubleValue == 43.5)
            let lastTotal = try #require(steps.last { $0["name"] as? String == "total" })
            #expect((lastTotal["value"] as? NSNumber)?.doubleValue == 585 && lastTotal["count"] as? Int == 20)
            #expect(steps.allSatisfy { ($0["source"] as? String ?? "").hasPrefix("TracedTests.swift:") }, "\(steps.map { $0["source"] ?? "-" })")
            let lines = Set(steps.compactMap { $0["source"] as? String })
            #expect(lines.count == 7, "one line per binding site: \(lines.sorted())")
            #expect(steps.contains { $0["name"] as? String == "handle" && $0["value"] as? String == "handle#7" })
            #expect(!names.contains("n"), "the nested closure is not traced")
            #expect(names.contains("label"))
        }
    }

    @Test("a traced run replays identical; another factor changes the recorded values")
    func replays() async throws {
        let dag = TracedDAGs.orders(factor: 1.5)
        try await withEngine([dag]) { engine, ledger, _ in
            let run = try await engine.run(dag)
            let report = try await replay(ledger, run, with: [dag])
            #expect(report.verdict == "identical", "\(report.divergence.map { "\($0)" } ?? "")")
            let changed = try await replay(ledger, run, with: [TracedDAGs.orders(factor: 2)])
            let d = try #require(changed.divergence)
            #expect(d.task == "total" && d.variable == "scaled", "\(d)")
        }
    }
}
