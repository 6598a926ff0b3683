public import Foundation
import Synchronization

/// The DAGs an engine knows by name: the ones shipped in the executable (Swift) and the ones loaded from
/// pipeline files.
public final class DAGRegistry: Sendable {
    let dags = Mutex([String: DAG]())

    public init(_ dags: [DAG] = []) {
        for dag in dags { register(dag) }
    }

    /// Adds or replaces a DAG by name.
    public func register(_ dag: DAG) {
        dags.withLock { $0[dag.name] = dag }
    }

    /// The DAG named `name`, if known.
    public func dag(named name: String) -> DAG? { dags.withLock { $0[name] } }

    /// Every DAG, by name.
    public var all: [DAG] { dags.withLock { $0.values.sorted { $0.name < $1.name } } }

    /// Loads every `*.yaml`/`*.yml` pipeline file in `directory` (not recursive).
    /// - Returns: the DAGs loaded; files that fail are reported in the thrown error, after the others loaded.
    /// - Throws: ``PipelineFileError`` listing every bad file.
    @discardableResult
    public func loadPipelines(in directory: URL) throws -> [DAG] {
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        var loaded: [DAG] = []
        var problems: [String] = []
        for file in files.sorted(by: { $0.path < $1.path }) where ["yaml", "yml"].contains(file.pathExtension) {
            do {
                let dag = try PipelineFile.load(file)
                register(dag)
                loaded.append(dag)
            } catch {
                problems.append("\(error)")
            }
        }
        if !problems.isEmpty { throw PipelineFileError(problems.joined(separator: "\n")) }
        return loaded
    }
}
