import ClewTestSupport
import Foundation
import Testing

/// The HTTP API against its own description: schemathesis (PyPI) generates requests from
/// docs/openapi.yaml, valid and invalid, and sends them to a real `clew serve` as nobody, a viewer, an
/// operator and an admin (tools/api_conformance.sh). The router's routes and the spec's operations are
/// compared in RouterTests.
@Suite("HTTP API conformance (schemathesis)")
struct ConformanceTests {
    @Test("every operation, as each role: no 5xx, only documented statuses, bodies match their content types and schemas; the ledger verifies afterwards")
    func schemathesis() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let server = try await Server.start(cli, extra: ["--pipelines", OperationsTests.pipelines, "--no-alerts"])
        defer { server.terminate() }
        let viewer = try await server.mint("conformance-viewer", "viewer")
        let operatorToken = try await server.mint("conformance-operator", "operator")
        // Something to list: a finished run, its tasks, datasets and lineage.
        let run = try #require(try await server.post("/api/runs", token: operatorToken, #"{"dag":"numeric_flow","params":{"batch":"2"}}"#).object["run"] as? String)
        _ = try await server.waitForRun("numeric_flow", run, token: viewer)

        let check = try await Program.run(
            CLI.packageRoot.appendingPathComponent("tools/api_conformance.sh").path,
            [server.base, server.adminToken, operatorToken, viewer, "4"], in: cli.directory, limit: .seconds(900))
        #expect(check.status == 0, "\(check.output)")
        // Each pass tested every operation of the spec (with a token, all but the endless event stream; the
        // admin pass all but revoking, which the last pass does).
        let tested = check.output.split(separator: "\n").filter { $0.hasPrefix("operations tested: ") }
        #expect(tested.count == 5, "\(check.output)")
        #expect(tested.first?.hasPrefix("operations tested: 63,") == true && tested.dropFirst().prefix(2).allSatisfy { $0.hasPrefix("operations tested: 62,") }, "\(tested)")

        // Thousands of bad requests later, what was recorded is intact.
        try await server.stop()
        let verify = try await cli.run(["verify"])
        #expect(verify.status == 0, "\(verify.stderr)")
        let views = try await cli.run(["views", "verify"])
        #expect(views.status == 0, "\(views.stderr)")
        let shown = try await cli.run(["run", "show", "numeric_flow/\(run)", "--json"])
        #expect(shown.status == 0 && shown.stdout.contains("succeeded"), "\(shown.stderr)")
    }
}
