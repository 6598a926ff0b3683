import AsyncHTTPClient
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1

/// Runs triggered over HTTP: started in the background, cancellable, and reported to a callback URL
/// when they end.
actor RunManager {
    struct Active {
        var task: Task<Void, Never>
        var queuedMicros: Int64
        var kind: String
    }

    /// What `POST /api/runs` answered, and what a poll sees before the views know the run.
    struct Accepted: Codable, Sendable {
        var dag: String
        var run: String
        var state: String
        var links: [String: String]
    }

    let engine: Engine
    let ledger: Ledger
    let configuration: ServerConfiguration
    private var active: [RunKey: Active] = [:]
    private let logger: Logger

    init(engine: Engine, ledger: Ledger, configuration: ServerConfiguration) {
        self.engine = engine
        self.ledger = ledger
        self.configuration = configuration
        logger = configuration.logger
    }

    func isActive(_ key: RunKey) -> Bool { active[key] != nil }

    var activeRuns: [RunKey] { active.keys.sorted() }

    /// Starts `dag` with `params`; the run id is fixed before this returns.
    func trigger(_ dag: DAG, params: [String: String], callback: URL?, by identity: Identity) throws -> Accepted {
        let runID = try engine.newRunID(dag: dag.name, partition: nil, trigger: "manual")
        let key = RunKey(dag: dag.name, run: runID)
        start(key, kind: "run", callback: callback) { engine in
            try await engine.run(dag, params: params, runID: runID, trigger: "api:\(identity.name)")
        }
        return Self.accepted(key, state: "queued")
    }

    /// Resubmits a failed, cancelled or interrupted run (or re-runs `rerun` tasks of a succeeded one).
    func resubmit(_ key: RunKey, params: [String: String], rerun: Set<String>, callback: URL?) throws -> Accepted {
        guard active[key] == nil else { throw APIError(.conflict, "run \(key.run) of \(key.dag) is still running; cancel it or wait") }
        start(key, kind: "resubmit", callback: callback) { engine in
            try await engine.resubmit(dag: key.dag, run: key.run, params: params, rerun: rerun)
        }
        return Self.accepted(key, state: "resubmitted")
    }

    /// Cancels a run in flight: its tasks are stopped and `run.cancelled` is recorded.
    /// - Returns: false when the run is not running in this server.
    func cancel(_ key: RunKey) -> Bool {
        guard let run = active[key] else { return false }
        run.task.cancel()
        return true
    }

    func cancelAll() async {
        let tasks = active.values.map(\.task)
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
    }

    static func accepted(_ key: RunKey, state: String) -> Accepted {
        let base = "/api/runs/\(Routes.escape(key.dag))/\(Routes.escape(key.run))"
        return Accepted(dag: key.dag, run: key.run, state: state, links: ["self": base, "cancel": base + "/cancel", "page": "/runs/\(Routes.escape(key.dag))/\(Routes.escape(key.run))"])
    }

    private func start(_ key: RunKey, kind: String, callback: URL?, _ body: @escaping @Sendable (Engine) async throws -> RunOutcome) {
        let engine = self.engine
        let task = Task {
            let report: CallbackReport
            do {
                let outcome = try await body(engine)
                report = CallbackReport(dag: key.dag, run: key.run, status: outcome.status.rawValue, tasks: outcome.tasks.mapValues(\.rawValue), errors: outcome.errors, failed_tasks: outcome.failedTasks)
            } catch {
                report = CallbackReport(dag: key.dag, run: key.run, status: "error", tasks: [:], errors: ["run": "\(error)"], failed_tasks: [])
                self.logger.error("run \(key.run) of \(key.dag) could not run: \(error)")
            }
            self.finished(key)
            if let callback { await self.deliver(report, to: callback) }
        }
        active[key] = Active(task: task, queuedMicros: TokenStore.now(), kind: kind)
    }

    private func finished(_ key: RunKey) { active[key] = nil }

    /// Posts the outcome to the callback URL, retrying with exponential backoff on errors and non-2xx
    /// answers, and records what happened as `run.callback` in the run's stream.
    nonisolated func deliver(_ report: CallbackReport, to url: URL) async {
        var attempts = 0
        var lastStatus: Int?
        var lastError: String?
        var delay = configuration.callbackBaseDelay
        let body: Data = (try? JSON.canonical(report)) ?? Data()
        while attempts < configuration.callbackAttempts {
            attempts += 1
            do {
                var request = HTTPClientRequest(url: url.absoluteString)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "User-Agent", value: "clew-serve")
                request.headers.add(name: "X-Clew-Attempt", value: String(attempts))
                request.body = .bytes(ByteBuffer(bytes: body))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                lastStatus = Int(response.status.code)
                _ = try? await response.body.collect(upTo: 1 << 16)
                if (200..<300).contains(response.status.code) {
                    lastError = nil
                    break
                }
                lastError = "HTTP \(response.status.code)"
            } catch {
                lastStatus = nil
                lastError = "\(error)"
            }
            if attempts < configuration.callbackAttempts {
                try? await Task.sleep(for: delay)
                delay *= 2
            }
        }
        var shown = URLComponents(url: url, resolvingAgainstBaseURL: false)
        shown?.query = nil
        shown?.user = nil
        shown?.password = nil
        let record = CallbackRecord(url: shown?.string ?? "?", attempts: attempts, delivered: lastError == nil, status_code: lastStatus, error: lastError, outcome: report.status)
        do {
            _ = try await ledger.append(NewEvent(
                type: EventType.runCallback, stream: StreamID.run(dag: report.dag, run: report.run), actor: "clew-serve",
                timestampMicros: TokenStore.now(), payload: try JSON.canonical(record)))
        } catch {
            logger.error("could not record the callback of \(report.run): \(error)")
        }
    }
}

/// What a callback URL receives when a run ends.
struct CallbackReport: Codable, Sendable {
    var dag: String
    var run: String
    /// succeeded, failed, cancelled, or error (the run could not start).
    var status: String
    var tasks: [String: String]
    var errors: [String: String]
    var failed_tasks: [String]
}

/// The `run.callback` payload (the URL without query or credentials).
struct CallbackRecord: Codable, Sendable {
    var url: String
    var attempts: Int
    var delivered: Bool
    var status_code: Int?
    var error: String?
    var outcome: String
}
