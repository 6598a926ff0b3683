import ClewCLI
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import ClewServer
public import Foundation
import Synchronization

/// What the fuzzer feeds bytes to (tools/fuzz.sh TARGET; docs/reliability.md): each of Clew's parsers of
/// outside input, called as the product calls it. Bad input must end in a thrown error; a trap, a crash
/// or a hang is a bug. The regression test runs every file of `Fixtures/fuzz/TARGET/` through the same
/// function, so each crash the fuzzer finds, once its input is added there, stays fixed.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Canonical event bytes (`CanonicalEvent(bytes:)`: the envelope decoder bundles and proofs use).
    case envelope
    /// `clew append`'s JSON lines.
    case appendLines = "append-lines"
    /// A pipeline file (YAML), loaded as `clew` loads `pipelines/*.yaml`.
    case pipeline
    /// An OpenLineage request body, checked against the spec and mapped onto a scratch ledger.
    case openlineage
    /// The debugger's condition and watch expressions.
    case expression
    /// A run bundle (`clew import`): zstd, header, lines, proofs.
    case bundle
    /// Times, schedules and durations from outside: `as_of`, `--partition`, chunk keys, event `time`,
    /// `schedule:`, `sla:` and timeouts. Accepted when any of the parsers takes the text.
    case times

    /// Runs one input. Returns whether it was accepted (no error), which the regression test checks
    /// for its `ok-` and `bad-` seeds.
    @discardableResult
    public func run(_ data: Data) -> Bool {
        do {
            switch self {
            case .envelope:
                let event = try CanonicalEvent(bytes: data)
                _ = event.leafHash
            case .appendLines:
                _ = try EventLineParser().parse(String(decoding: data, as: UTF8.self))
            case .pipeline:
                _ = try PipelineFile.parse(String(decoding: data, as: UTF8.self), path: "fuzz.yaml")
            case .openlineage:
                let intake = try Scratch.shared.intake()
                let batch = data.first == UInt8(ascii: "[")
                _ = try blocking { try await intake.take(data, batch: batch) }
            case .expression:
                let text = String(decoding: data, as: UTF8.self)
                let parsed = try ClewReplay.Expression(parsing: text)
                // What an expression prints must parse back to itself: the debugger shows it, and a
                // user copies it into the next condition.
                let again = try ClewReplay.Expression(parsing: parsed.description)
                guard again.description == parsed.description else {
                    fatalError("expression \(text.debugDescription) prints as \(parsed.description.debugDescription), which parses as \(again.description.debugDescription)")
                }
            case .bundle:
                _ = try RunBundle.read(data, name: "fuzz.clewrun")
            case .times:
                let text = String(decoding: data, as: UTF8.self)
                var accepted = false
                if let micros = PartitionKey.parse(text) {
                    _ = PartitionKey.string(micros: micros)
                    accepted = true
                }
                if let micros = Views.parseTime(text) {
                    _ = ISO8601.string(micros: micros)
                    accepted = true
                }
                if let date = EventLineParser.parseTime(text), let micros = NewEvent.micros(date) {
                    _ = ISO8601.string(micros: micros)
                    accepted = true
                }
                if let schedule = try? ScheduleSpec(parsing: text) {
                    // From the epoch and from a year before the end of the range: no trap either way.
                    _ = schedule.next(after: 0)
                    _ = schedule.next(after: 253_370_764_800_000_000)
                    _ = schedule.partitions(from: 1_796_000_000_000_000, endingBy: 1_796_000_000_000_000 + 86_400_000_000)
                    accepted = true
                }
                if (try? ScheduleSpec.parseMillis(text, what: "fuzz")) != nil { accepted = true }
                guard accepted else { return false }
            }
            return true
        } catch {
            return false
        }
    }

    /// A ledger in a temporary directory for the targets that append. It is replaced by a fresh one
    /// every ``inputsPerLedger`` inputs, so that a long run's memory (the ledger's map pages count in its
    /// RSS) stays within libFuzzer's limit.
    final class Scratch: Sendable {
        static let shared = Scratch()
        static let inputsPerLedger = 20_000
        private struct State {
            var intake: OpenLineageIntake?
            var directory: URL?
            var inputs = 0
            var generation = 0
        }
        private let state = Mutex(State())

        func intake() throws -> OpenLineageIntake {
            try state.withLock { state in
                if let intake = state.intake, state.inputs < Scratch.inputsPerLedger {
                    state.inputs += 1
                    return intake
                }
                if let old = state.directory { try? FileManager.default.removeItem(at: old) }
                state.generation += 1
                let dir = FileManager.default.temporaryDirectory
                    .appendingPathComponent("clew-fuzz-\(getpid())-\(state.generation)")
                try? FileManager.default.removeItem(at: dir)
                // No fsync: a commit per input at disk speed made the first input time out on a busy disk.
                var options = Ledger.Options()
                options.noSync = true
                let intake = try OpenLineageIntake(ledger: try Ledger.create(at: dir, options: options))
                state = State(intake: intake, directory: dir, inputs: 1, generation: state.generation)
                return intake
            }
        }
    }
}

/// Runs `body` to its end from synchronous code (libFuzzer calls its target on a plain thread).
private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let box = Box<T>()
    Task.detached {
        do { box.set(.success(try await body())) } catch { box.set(.failure(error)) }
        done.signal()
    }
    done.wait()
    return try box.get()
}

private final class Box<T: Sendable>: @unchecked Sendable {
    // @unchecked: written once by the task before it signals, read after the wait.
    private var result: Result<T, any Error>?
    func set(_ r: Result<T, any Error>) { result = r }
    func get() throws -> T { try result!.get() }
}
