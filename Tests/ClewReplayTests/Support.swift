import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import ClewTestSupport
import Foundation

/// Replays a run with the DAGs given (today's code).
func replay(
    _ ledger: Ledger, _ outcome: RunOutcome, with dags: [DAG], environment: RunEnvironment = .current, options: ReplayOptions = ReplayOptions()
) async throws -> ReplayReport {
    let recording = try RecordedRun.load(RunKey(dag: outcome.dag, run: outcome.runID), from: ledger)
    return try await Replayer(ledger: ledger, registry: DAGRegistry(dags), environment: environment).replay(recording, options: options)
}

/// The events of a run that a replay derives again: what `steps_compared` counts for a full replay.
func comparableEvents(_ ledger: Ledger, _ key: RunKey) throws -> Int {
    var n = 0
    for e in try ledger.events(inStream: key.stream) {
        switch e.type {
        case EventType.taskStarted, EventType.valueConsumed, EventType.variableRecorded, EventType.expectationEvaluated,
            EventType.valueProduced, EventType.taskSucceeded, EventType.taskFailed:
            n += 1
        case EventType.taskSkipped:
            // a skip decided by the task itself (trigger condition) is an outcome; one decided by the scheduler is not
            if let o = try JSONSerialization.jsonObject(with: e.payload) as? [String: Any], o["attempt"] != nil { n += 1 }
        default:
            break
        }
    }
    return n
}

/// The fixture pipeline (command tasks) copied into `dir`.
func copyFixturePipelines(to dir: URL) throws -> URL {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pipelines")
    let target = dir.appendingPathComponent("pipelines")
    try copyTree(source, to: target)  // in a child process: the scripts are executed (ETXTBSY)
    for script in try FileManager.default.contentsOfDirectory(atPath: target.appendingPathComponent("scripts").path) {
        chmod(target.appendingPathComponent("scripts/\(script)").path, 0o755)
    }
    return target
}
