public import ClewCore
import ClewModel
import Foundation
import Subprocess
import SystemPackage
import Synchronization

/// What a command task did.
struct CommandResult: Sendable {
    var exitCode: Int32?
    var signal: Int32?
    var stdout: String
    var stderr: String
    var stdoutBytes: Int
    var stderrBytes: Int
    var outputs: [(String, String)] = []
    var branch: [String]?
    var chunks: [(dataset: String, key: String, path: String)] = []
    var protocolErrors: [String] = []
    var durationMillis: Int
    var files: [TaskFile] = []

    var succeeded: Bool { exitCode == 0 && protocolErrors.isEmpty }
}

/// Runs a command task's executable in its own session (so a timeout or cancellation kills its whole
/// process group), with the engine's environment, reading the line protocol from stdout as it arrives.
enum CommandRunner {
    /// Bytes of stdout and of stderr kept (first and last halves).
    static let captureLimit = 16 << 10

    /// Finds the program: a path (relative to `directory`) or a name on PATH.
    /// - Throws: ``EngineError`` naming the missing or non-executable program.
    static func resolve(_ program: String, in directory: String?) throws -> String {
        let fm = FileManager.default
        if program.contains("/") {
            let path = program.hasPrefix("/") ? program : URL(fileURLWithPath: directory ?? fm.currentDirectoryPath).appendingPathComponent(program).standardized.path
            guard fm.fileExists(atPath: path) else { throw EngineError("executable \(path) does not exist") }
            guard fm.isExecutableFile(atPath: path) else { throw EngineError("\(path) is not executable (chmod +x?)") }
            return path
        }
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in searchPath.split(separator: ":") where dir.hasPrefix("/") {
            let candidate = "\(dir)/\(program)"
            if fm.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw EngineError("executable '\(program)' was not found on PATH")
    }

    static func run(
        _ spec: CommandSpec, environment: [String: String], workingDirectory: String, context: TaskContext
    ) async throws -> CommandResult {
        var argv = spec.argv
        if argv.count == 1, argv[0].contains(" ") { argv = ["/bin/sh", "-c", argv[0]] }
        let program = try resolve(argv[0], in: workingDirectory)
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(2))]
        var env: [Environment.Key: String?] = [:]
        for (k, v) in spec.environment.merging(environment, uniquingKeysWith: { _, b in b }) {
            if let key = Environment.Key(rawValue: k) { env[key] = v }
        }
        let started = ContinuousClock.now
        struct Collected: Sendable {
            var stdout = BoundedText(limit: CommandRunner.captureLimit)
            var stderr = BoundedText(limit: CommandRunner.captureLimit)
            var outputs: [(String, String)] = []
            var branch: [String]?
            var chunks: [(dataset: String, key: String, path: String)] = []
            var errors: [String] = []
        }
        let collected = Box(Collected())
        let outcome = try await Subprocess.run(
            .path(FilePath(program)),
            arguments: Arguments(Array(argv.dropFirst())),
            environment: .inherit.updating(env),
            workingDirectory: FilePath(workingDirectory),
            platformOptions: options,
            input: .none,
            output: .sequence,
            error: .sequence
        ) { execution in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await line in execution.standardOutput.strings(bufferingPolicy: .maxLineLength(1 << 20)) {
                        let command: LineCommand?
                        do { command = try LineCommand.parse(line) } catch {
                            collected.value.withLock { $0.errors.append("\(error)") }
                            continue
                        }
                        switch command {
                        case nil: collected.value.withLock { $0.stdout.append(line) }
                        case .variable(let name, let value, let kind, let at, let count)?:
                            if let step = try? context.nextStep() {
                                context.sink.variable(
                                    step: step, name: name, kind: kind, value: RecordedValue(text: value, name: name, type: "command"), source: at, count: count)
                            }
                        case .output(let name, let value)?: collected.value.withLock { $0.outputs.append((name, value)) }
                        case .expect(let name, let passed, let message)?: context.expect(name, passed, message)
                        case .branch(let tasks)?: collected.value.withLock { $0.branch = ($0.branch ?? []) + tasks }
                        case .chunk(let dataset, let key, let path)?: collected.value.withLock { $0.chunks.append((dataset, key, path)) }
                        }
                    }
                }
                group.addTask {
                    for try await line in execution.standardError.strings(bufferingPolicy: .maxLineLength(1 << 20)) {
                        collected.value.withLock { $0.stderr.append(line) }
                    }
                }
                try await group.waitForAll()
            }
        }
        let elapsed = ContinuousClock.now - started
        let c = collected.value.withLock { $0 }
        var result = CommandResult(
            stdout: c.stdout.text, stderr: c.stderr.text, stdoutBytes: c.stdout.total, stderrBytes: c.stderr.total,
            outputs: c.outputs, branch: c.branch, chunks: c.chunks, protocolErrors: c.errors,
            durationMillis: Int(elapsed.milliseconds))
        switch outcome.terminationStatus {
        case .exited(let code): result.exitCode = code
        case .signaled(let sig): result.signal = sig
        }
        result.files = outputFiles(in: context.outputDirectory)
        return result
    }

    /// Files the command left in its output directory, with their digests (at most 200).
    static func outputFiles(in dir: URL) -> [TaskFile] {
        guard let walker = FileManager.default.enumerator(atPath: dir.path) else { return [] }
        var out: [TaskFile] = []
        while let rel = walker.nextObject() as? String, out.count < 200 {
            let url = dir.appendingPathComponent(rel)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            out.append(TaskFile(path: rel, sha256: ContentDigest.sha256(file: url) ?? "unreadable", bytes: FileDigest.size(url) ?? 0))
        }
        return out.sorted { $0.path < $1.path }
    }
}

/// A shared, locked value for child tasks.
final class Box<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}

/// An engine failure, with a message naming what was wrong.
public struct EngineError: ClewError {
    public var description: String
    public var category: ErrorCategory
    public init(_ category: ErrorCategory = .invalidInput, _ description: String) {
        self.description = description
        self.category = category
    }
    public init(_ description: String) { self.init(.invalidInput, description) }
}
