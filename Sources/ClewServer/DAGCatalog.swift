import ClewEngine
import ClewModel
import ClewProjections

/// A DAG as the server shows it.
struct CatalogDAG: Sendable {
    var name: String
    var version: String
    var spec: DAGSpec?
    /// This server can run it (the trigger button, `POST /api/runs`): it ships in the executable or in the
    /// pipeline directory. DAGs only the ledger knows (earlier pipelines, OpenLineage producers) cannot.
    var runnable: Bool
    /// Where its definition comes from (`swift`, `pipeline:<file>`, `openlineage:<namespace>`, …).
    var origin: String

    /// The schedule as written (`@daily`, `0 6 * * *`, `every 3600s`), if any.
    var schedule: String? { spec?.schedule?.description }
}

/// The DAGs the server knows: those it can run and those registered in the ledger, merged by name (the
/// runnable definition wins).
enum DAGCatalog {
    static func all(_ engine: Engine, _ views: Views) throws -> [CatalogDAG] {
        var byName: [String: CatalogDAG] = [:]
        for r in try views.registeredDAGs() {
            byName[r.name] = CatalogDAG(name: r.name, version: r.version, spec: r.definition, runnable: false, origin: r.definition?.origin ?? "ledger")
        }
        for d in engine.registry.all {
            byName[d.name] = CatalogDAG(name: d.name, version: d.version, spec: d.spec, runnable: true, origin: d.spec.origin)
        }
        return byName.values.sorted { $0.name < $1.name }
    }

    static func named(_ name: String, _ engine: Engine, _ views: Views) throws -> CatalogDAG? {
        if let d = engine.registry.dag(named: name) {
            return CatalogDAG(name: d.name, version: d.version, spec: d.spec, runnable: true, origin: d.spec.origin)
        }
        return try views.registeredDAGs().first { $0.name == name }.map {
            CatalogDAG(name: $0.name, version: $0.version, spec: $0.definition, runnable: false, origin: $0.definition?.origin ?? "ledger")
        }
    }
}
