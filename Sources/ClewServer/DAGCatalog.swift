public import ClewEngine
public import ClewModel
public import ClewProjections

/// A DAG as `clew dags`, the API and the dashboard show it.
public struct CatalogDAG: Sendable {
    public var name: String
    public var version: String
    public var spec: DAGSpec?
    /// This executable can run it (the trigger button, `POST /api/runs`): it ships in the executable or in
    /// the pipeline directory. DAGs only the ledger knows (earlier pipelines, OpenLineage producers) cannot.
    public var runnable: Bool
    /// Where its definition comes from (`swift`, `pipeline:<file>`, `openlineage:<namespace>`, …).
    public var origin: String

    /// The schedule as written (`@daily`, `0 6 * * *`, `every 3600s`), if any.
    public var schedule: String? { spec?.schedule?.description }
}

/// The DAGs an executable knows: those it can run and those registered in the ledger, merged by name
/// (the runnable definition wins). One merge for the CLI, the API and the dashboard.
public enum DAGCatalog {
    /// `registry`'s DAGs and `registered` (``RegisteredDAG/all(in:)``), merged by name, sorted.
    public static func merge(registry: DAGRegistry, registered: [RegisteredDAG]) -> [CatalogDAG] {
        var byName: [String: CatalogDAG] = [:]
        for r in registered { byName[r.name] = ledgerOnly(r) }
        for d in registry.all { byName[d.name] = runnable(d) }
        return byName.values.sorted { $0.name < $1.name }
    }

    static func all(_ engine: Engine, _ views: Views) throws -> [CatalogDAG] {
        merge(registry: engine.registry, registered: try views.registeredDAGs())
    }

    static func named(_ name: String, _ engine: Engine, _ views: Views) throws -> CatalogDAG? {
        if let d = engine.registry.dag(named: name) { return runnable(d) }
        return try views.registeredDAGs().first { $0.name == name }.map(ledgerOnly)
    }

    private static func runnable(_ d: DAG) -> CatalogDAG {
        CatalogDAG(name: d.name, version: d.version, spec: d.spec, runnable: true, origin: d.spec.origin)
    }

    private static func ledgerOnly(_ r: RegisteredDAG) -> CatalogDAG {
        CatalogDAG(name: r.name, version: r.version, spec: r.definition, runnable: false, origin: r.definition?.origin ?? "ledger")
    }
}
