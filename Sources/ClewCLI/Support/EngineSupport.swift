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

    func engine(_ ledger: Ledger, _ registry: DAGRegistry, dispatch: DispatchOptions? = nil) -> Engine {
        var options = Engine.Options(dataDirectory: dataDirectory(ledger))
        options.queue = dispatch?.queue
        if let lease = dispatch?.lease { options.leaseMillis = Int(lease * 1000) }
        return Engine(ledger: ledger, registry: registry, options: options)
    }

    func dataDirectory(_ ledger: Ledger) -> URL {
        dataDir.map { URL(fileURLWithPath: $0) } ?? ledger.directory.appendingPathComponent("data")
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

/// `--queue`: run task attempts on `clew worker`s instead of in this process.
struct DispatchOptions: ParsableArguments {
    @Option(name: .long, help: "Queue every task attempt for the workers of this queue (`clew worker --queue`) instead of running it here.")
    var queue: String?

    @Option(name: .long, help: "With --queue: seconds a worker holds an attempt without a heartbeat before it is expired and queued again.")
    var lease: Double = 15

    func validate() throws {
        if let queue, queue.isEmpty || queue.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ValidationError("--queue '\(queue)' must be a non-empty name without spaces or '/'")
        }
        guard lease >= 0.3, lease <= 86_400 else { throw ValidationError("--lease \(lease) must be between 0.3 and 86400 seconds") }
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

/// Write end of the pipe the SIGINT/SIGTERM handler writes a byte to (a signal handler can only do
/// async-signal-safe work and capture nothing). Set before the handler is installed.
nonisolated(unsafe) private var interruptPipe: Int32 = -1

/// Runs `body` in a task that SIGINT/SIGTERM cancel, so runs end with `run.cancelled` and killed commands.
///
/// The handler is installed with `sigaction` before the task starts and writes to a pipe, so a signal
/// that arrives at any point of the run is kept until it is read: with dispatch signal sources (which
/// register later, on libdispatch's own thread) a Ctrl-C sent right after the first task started was
/// lost on a loaded machine and the run went on. The previous handlers are restored afterwards.
func withInterruption<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw CLIFailure(message: "cannot create a pipe for Ctrl-C handling (errno \(errno))") }
    interruptPipe = fds[1]
    var previous: [Int32: sigaction] = [:]
    for sig in [SIGINT, SIGTERM] {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            var byte: UInt8 = 1
            _ = write(interruptPipe, &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        var old = sigaction()
        sigaction(sig, &action, &old)
        previous[sig] = old
    }
    let task = Task { try await body() }
    let source = DispatchSource.makeReadSource(fileDescriptor: fds[0], queue: .global())
    source.setEventHandler {
        var buffer = [UInt8](repeating: 0, count: 16)
        _ = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
        Terminal.error("interrupted; stopping running tasks…")
        task.cancel()
    }
    source.setCancelHandler { close(fds[0]) }
    source.resume()
    defer {
        for (sig, old) in previous {
            var old = old
            sigaction(sig, &old, nil)
        }
        source.cancel()
        interruptPipe = -1
        close(fds[1])
    }
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
