import ArgumentParser
public import ClewEngine
import ClewLedger
import ClewModel
import Dispatch
import Foundation

/// The DAGs this executable ships: the demos, plus those a package passes to
/// ``ClewCommand/main(registering:)``, bound for the command's task (no module-level state to mutate).
enum ShippedDAGs {
    @TaskLocal static var all: [DAG] = DemoDAGs.all
}

extension ClewCommand {
    /// Runs the CLI with your own Swift DAGs known to `clew dags`, `clew run`, `clew scheduler` …
    ///
    /// ```swift
    /// @main struct MyPipelines {
    ///     static func main() async { await ClewCommand.main(registering: [nightlyETL, hourlyRollup]) }
    /// }
    /// ```
    public static func main(registering dags: [DAG]) async {
        await ShippedDAGs.$all.withValue(DemoDAGs.all + dags) { await main(nil) }
    }
}

/// Where pipeline files are read from.
struct PipelineOptions: ParsableArguments {
    @Option(name: .long, help: "Directory of pipeline files (*.yaml) to load besides the DAGs shipped in the executable.")
    var pipelines: String = "./pipelines"

    @Option(name: .long, help: "Directory for task output (default: <ledger>/data).")
    var dataDir: String?

    /// The shipped DAGs plus every pipeline file in the directory (a missing default directory is fine).
    func registry(strict: Bool = true) throws -> (DAGRegistry, [String]) {
        let registry = DAGRegistry(ShippedDAGs.all)
        var problems: [String] = []
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: pipelines, isDirectory: &isDir), isDir.boolValue {
            do { try registry.loadPipelines(in: URL(fileURLWithPath: pipelines)) } catch {
                if strict { throw CLIFailure(message: "\(error)") }
                problems.append("\(error)")
            }
        } else if pipelines != "./pipelines" {
            throw CLIFailure(message: "--pipelines \(pipelines) is not a directory")
        }
        return (registry, problems)
    }

    func engine(_ ledger: Ledger, _ registry: DAGRegistry) -> Engine {
        Engine(ledger: ledger, registry: registry, options: Engine.Options(dataDirectory: dataDir.map { URL(fileURLWithPath: $0) } ?? ledger.directory.appendingPathComponent("data")))
    }

    /// A DAG by name, or loaded from a pipeline file path.
    func resolve(_ target: String, in registry: DAGRegistry) throws -> DAG {
        if target.hasSuffix(".yaml") || target.hasSuffix(".yml") || target.contains("/") {
            guard FileManager.default.fileExists(atPath: target) else { throw CLIFailure(message: "pipeline file \(target) does not exist") }
            let dag = try PipelineFile.load(URL(fileURLWithPath: target))
            registry.register(dag)
            return dag
        }
        guard let dag = registry.dag(named: target) else {
            throw CLIFailure(message: "no DAG named '\(target)' (known: \(registry.all.map(\.name).joined(separator: ", "))); pass a pipeline file path to run one")
        }
        return dag
    }
}

/// `--param k=v`, repeatable.
struct ParamOptions: ParsableArguments {
    @Option(name: .customLong("param"), help: ArgumentHelp("A run param (repeatable).", valueName: "name=value"))
    var params: [String] = []

    func dictionary() throws -> [String: String] {
        var out: [String: String] = [:]
        for p in params {
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                throw ValidationError("--param '\(p)' must look like name=value")
            }
            out[String(p[..<eq])] = String(p[p.index(after: eq)...])
        }
        return out
    }
}

/// Runs `body` in a task that SIGINT/SIGTERM cancel, so runs end with `run.cancelled` and killed commands.
func withInterruption<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await body() }
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let sources = [SIGINT, SIGTERM].map { sig in
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            Terminal.error("interrupted; stopping running tasks…")
            task.cancel()
        }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    return try await task.value
}

/// Prints a run's outcome: the run id on stdout (or JSON), a summary on stderr.
func report(_ outcome: RunOutcome, json: Bool) throws {
    if json {
        struct Report: Encodable {
            var dag, run, stream, status: String
            var tasks: [String: String]
            var errors: [String: String]
        }
        let report = Report(
            dag: outcome.dag, run: outcome.runID, stream: outcome.stream, status: outcome.status.rawValue,
            tasks: outcome.tasks.mapValues(\.rawValue), errors: outcome.errors)
        Terminal.line(String(decoding: try JSON.canonical(report), as: UTF8.self))
    } else {
        Terminal.line(outcome.runID)
        let counts = Dictionary(grouping: outcome.tasks.values, by: \.rawValue).map { "\($0.value.count) \($0.key)" }.sorted()
        var text = "run \(outcome.runID) of \(outcome.dag): \(outcome.status.rawValue) (\(counts.joined(separator: ", ")))\n"
        for (task, error) in outcome.errors.sorted(by: { $0.key < $1.key }).prefix(10) { text += "  \(task): \(error)\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }
}

extension RunOutcome.Status {
    var exitCode: Int32 {
        switch self {
        case .succeeded: return 0
        case .failed: return 3
        case .cancelled: return 130
        }
    }
}
