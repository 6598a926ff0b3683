package import ClewLedger
package import Foundation

/// OpenLineage request bodies checked and applied to a ledger as `POST /api/v1/lineage` (and `/batch`)
/// apply them, without HTTP or audit: what the `openlineage` fuzz target drives (tools/fuzz.sh).
package struct OpenLineageIntake: Sendable {
    let ingest: OpenLineageIngest

    /// - Throws: when the OpenLineage spec built into the binary cannot be loaded.
    package init(ledger: Ledger) throws {
        ingest = OpenLineageIngest(ledger: ledger, schema: try OpenLineageSchema.embedded())
    }

    /// Checks `body` and applies its events; returns how many changed runs, tasks, chunks or datasets.
    /// - Throws: the 400 the route would answer for a bad body; a ledger error if the append fails.
    package func take(_ body: Data, batch: Bool) async throws -> Int {
        let checked = try OpenLineageRoutes.checkedEvents(body, batch: batch, schema: ingest.schema)
        return try await ingest.ingest(checked, audit: nil).applied
    }
}
