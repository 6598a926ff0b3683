import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation

/// `clew replay-call DAG/RUN --task T`: a traced Python function that ran in an Airflow task (or any
/// producer sending the `clew_steps` facet with its call), run again on this host on its recorded
/// arguments, its steps compared with the record; with `--set`, a counterfactual on changed arguments.
struct ReplayCall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay-call",
        abstract: "Run again the @clew.trace Python function a recorded attempt called (in Airflow) on its recorded arguments, and compare.",
        discussion: """
            The attempt's `call` step (sent by Clew's Python package from an Airflow task: the function's file, name and \
            arguments as JSON) says what to run; --python names an interpreter that can import that file (for an Airflow \
            DAG file, Airflow's). Its steps are compared with the recorded ones in order: exit 0 when identical, 2 at the \
            first difference (named). With --set ARG=JSON the arguments are changed first and the variables whose last \
            value changed are listed (a counterfactual; nothing is recorded).
            """)

    @Argument(help: "The run: RUN or DAG/RUN.")
    var run: String

    @Option(name: .long, help: "The task whose traced call to run again.")
    var task: String

    @Option(name: .long, help: "Which attempt (default: the last with a call).")
    var attempt: Int?

    @Option(name: .long, help: "The Python interpreter that can import the function's file.")
    var python = "python3"

    @Option(name: .customLong("set"), help: "Counterfactual: an argument's new value (ARG=JSON; not JSON: a string). Repeatable.")
    var overrides: [String] = []

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        for o in overrides where !o.contains("=") { throw ValidationError("--set \(o): expected ARG=JSON") }
    }

    struct Step: Codable, Equatable {
        var name: String
        var kind: String
        var value: String
        var source: String?
    }

    struct Report: Encodable {
        var run: String
        var task: String
        var attempt: Int
        var function: String
        var file: String
        var verdict: String
        var stepsCompared: Int
        var difference: Difference?
        var changed: [Change]?

        struct Difference: Encodable {
            var step: Int
            var expected: Step?
            var actual: Step?
        }

        struct Change: Encodable {
            var name: String
            var original: String?
            var replayed: String?
        }

        enum CodingKeys: String, CodingKey {
            case run, task, attempt, function, file, verdict, stepsCompared = "steps_compared", difference, changed
        }
    }

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let key = try RecordedRun.resolve(run, in: l)
            let recording = try RecordedRun.load(key, from: l)
            try Inspect.requireRan(task, attempt: attempt, in: recording, key)
            let attempts = recording.attempts.filter { $0.task == task && (attempt == nil || $0.attempt == attempt) }
            guard let recorded = attempts.last(where: { $0.steps.contains { $0.kind == "call" } }),
                let callStep = recorded.steps.first(where: { $0.kind == "call" })
            else {
                throw CLIFailure(
                    message: "\(task) in \(key) recorded no call to run again: its function was not traced with @clew.trace in an Airflow task with CLEW_URL set, it is defined inside another function, or its arguments were not JSON or exceeded 1 MiB (docs/python.md, replay-call)")
            }
            let call = try JSONTree.parse(Data(callStep.value.text.utf8))
            guard let file = call["file"]?.string, let function = call["function"]?.string, case .object(let recordedArguments)? = call["arguments"] else {
                throw CLIFailure(message: "the call recorded at step \(callStep.step) of \(recorded.id) does not name a file, a function and arguments")
            }
            guard FileManager.default.fileExists(atPath: file) else {
                throw CLIFailure(message: "\(function) was defined in \(file), which is not on this host; run replay-call where the DAG's files are")
            }
            var arguments = recordedArguments
            for o in overrides {
                let name = String(o.prefix { $0 != "=" }), text = String(o.dropFirst(name.count + 1))
                guard arguments[name] != nil else {
                    throw CLIFailure(message: "--set \(name): \(function) has no argument \(name) (it has \(arguments.keys.sorted().joined(separator: ", ")))")
                }
                arguments[name] = (try? JSONTree.parse(Data(text.utf8))) ?? .string(text)
            }
            let replayed = try await Self.call(python: python, file: file, function: function, arguments: .object(arguments), task: task)
            let original = recorded.steps.filter { $0.kind != "call" }.map {
                Step(name: $0.name, kind: $0.kind, value: Self.canonical($0.value.text), source: $0.source)
            }
            var report = Report(
                run: key.description, task: task, attempt: recorded.attempt, function: function, file: file, verdict: "identical",
                stepsCompared: min(original.count, replayed.count))
            if overrides.isEmpty {
                if let i = (0..<max(original.count, replayed.count)).first(where: { i in
                    i >= original.count || i >= replayed.count || original[i].name != replayed[i].name || original[i].kind != replayed[i].kind
                        || original[i].value != replayed[i].value
                }) {
                    report.verdict = "diverged"
                    report.stepsCompared = i
                    report.difference = .init(step: i + 1, expected: i < original.count ? original[i] : nil, actual: i < replayed.count ? replayed[i] : nil)
                }
            } else {
                report.verdict = "counterfactual"
                func last(_ steps: [Step]) -> [String: String] {
                    Dictionary(steps.filter { $0.kind == "variable" }.map { ($0.name, $0.value) }, uniquingKeysWith: { _, b in b })
                }
                let before = last(original), after = last(replayed)
                report.changed = Set(before.keys).union(after.keys).sorted().compactMap { name in
                    before[name] == after[name] ? nil : Report.Change(name: name, original: before[name], replayed: after[name])
                }
            }
            if output.json {
                print(try JSONOutput.text(report))
            } else {
                print("replay-call \(function) of \(recorded.id) in \(key) (\(file)): \(report.verdict.uppercased() == "DIVERGED" ? "DIVERGED" : report.verdict) — \(report.stepsCompared) steps compared")
                if let d = report.difference {
                    print("  first difference at step \(d.step):")
                    print("    expected: \(d.expected.map { "\($0.name) = \($0.value)\($0.source.map { " at \($0)" } ?? "")" } ?? "no more steps")")
                    print("    actual:   \(d.actual.map { "\($0.name) = \($0.value)\($0.source.map { " at \($0)" } ?? "")" } ?? "no more steps")")
                }
                if let changed = report.changed {
                    print("\(changed.count) variable(s) changed")
                    if !changed.isEmpty { print(Show.table(["VARIABLE", "ORIGINAL", "REPLAYED"], changed.map { [$0.name, $0.original ?? "—", $0.replayed ?? "—"] })) }
                }
            }
            if report.verdict == "diverged" { throw ExitCode(2) }
        }
    }

    static func canonical(_ text: String) -> String { (try? JSONTree.parse(Data(text.utf8)).text) ?? text }

    /// Runs `function` of `file` in `python` with `arguments`, as a Clew task (so the package prints its
    /// steps), and returns the steps it reported.
    static func call(python: String, file: String, function: String, arguments: JSONTree, task: String) async throws -> [Step] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clew-replay-call-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("call.py"), args = dir.appendingPathComponent("arguments.json")
        try Data(runner.utf8).write(to: script)
        try Data(arguments.text.utf8).write(to: args)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, script.path, file, function, args.path]
        var env = ProcessInfo.processInfo.environment
        env["CLEW_RUN_ID"] = "replay-call"
        env["CLEW_TASK_ID"] = task
        env["CLEW_URL"] = nil
        p.environment = env
        p.currentDirectoryURL = URL(fileURLWithPath: file).deletingLastPathComponent()
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw CLIFailure(message: "cannot start \(python): \(error)") }
        async let stderrData = Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: await stderrData, as: UTF8.self)
        p.waitUntilExit()
        var steps: [Step] = []
        for line in stdout.split(separator: "\n", omittingEmptySubsequences: true) {
            if case .variable(let name, let value, let kind, let at, _)? = try? LineCommand.parse(String(line)) {
                steps.append(Step(name: name, kind: kind, value: canonical(value), source: at))
            }
        }
        if p.terminationStatus != 0 {
            let last = stderr.split(separator: "\n").suffix(3).joined(separator: " | ")
            if steps.isEmpty { throw CLIFailure(message: "\(function) could not be run again in \(python): \(last)") }
            steps.append(Step(name: "error", kind: "variable", value: canonical(#"""# + String(last.prefix(200)).replacingOccurrences(of: "\"", with: "'") + #"""#)))
        }
        return steps
    }

    /// Imports the function's file as a module (its directory first on the path) and calls the traced
    /// function with the arguments; the package prints the steps, as in a command task.
    static let runner = """
        import importlib.util, json, os, sys
        path, function, arguments = sys.argv[1], sys.argv[2], sys.argv[3]
        sys.path.insert(0, os.path.dirname(path))
        spec = importlib.util.spec_from_file_location("clew_replayed", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        target = module
        for part in function.split("."):
            target = getattr(target, part)
        with open(arguments, encoding="utf-8") as f:
            target(**json.load(f))
        sys.stdout.flush()
        """
}
