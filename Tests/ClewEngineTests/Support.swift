import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Synchronization
@testable import ClewEngine

/// Events of a run as (type, payload object) pairs.
func runEvents(_ ledger: Ledger, _ outcome: RunOutcome) throws -> [(type: String, payload: [String: Any])] {
    try ledger.events(inStream: outcome.stream).map { e in
        (e.type, (try JSONSerialization.jsonObject(with: e.payload) as? [String: Any]) ?? [:])
    }
}

func events(_ list: [(type: String, payload: [String: Any])], _ type: String, task: String? = nil) -> [[String: Any]] {
    list.filter { $0.type == type && (task == nil || $0.payload["task"] as? String == task) }.map(\.payload)
}

/// A pipeline file written into `dir`, with optional scripts beside it.
func writePipeline(_ yaml: String, in dir: URL, name: String = "pipeline.yaml", scripts: [String: String] = [:]) throws -> URL {
    for (file, text) in scripts {
        try installExecutable(text, at: dir.appendingPathComponent(file))
    }
    let url = dir.appendingPathComponent(name)
    try yaml.write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// Counts calls across attempts (tasks are @Sendable closures).
final class Counter: Sendable {
    let value = Box(0)
    func next() -> Int { value.value.withLock { $0 += 1; return $0 } }
}

/// Whether a process exists and is not a zombie (a container's init may not reap orphans).
func isRunning(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}
