import ArgumentParser
import ClewLedger
import ClewModel
import ClewServer
import Foundation
import Synchronization

/// How a command that records runs sends their alerts (docs/operations.md#alerts).
struct AlertingOptions: ParsableArguments {
    @Flag(name: .customLong("no-alerts"), help: "Send no alerts from this process (another one may: `clew alerts follow`, serve, scheduler).")
    var disabled = false
    @Option(name: .long, help: "Tries per alert target before alert.failed is recorded.") var alertAttempts = 5
    @Option(name: .long, help: "First delay between alert tries, in milliseconds (doubled each time).") var alertDelayMs = 1000

    func validate() throws {
        guard alertAttempts >= 1 else { throw ValidationError("--alert-attempts must be at least 1") }
        guard alertDelayMs >= 0 else { throw ValidationError("--alert-delay-ms must not be negative") }
    }

    func alerter(_ l: Ledger, dashboard: String? = nil) -> Alerter {
        var o = AlertOptions()
        o.attempts = alertAttempts
        o.baseDelay = .milliseconds(alertDelayMs)
        o.dashboardURL = dashboard ?? ProcessInfo.processInfo.environment["CLEW_DASHBOARD_URL"]
        return Alerter(ledger: l, options: o)
    }

    /// Runs `body`, sending alerts beside it while this process leads `alerts` (none leads, or it took
    /// over), and once more when `body` ends, so a run's failure or SLA miss is mailed by `clew run`
    /// itself. Nothing is started when alerts are off, or when neither `dags` nor the defaults name a target.
    func around<T: Sendable>(_ l: Ledger, dags: [DAGSpec], _ body: () async throws -> T) async throws -> T {
        let configured = dags.contains { $0.alerts != nil } || ((try? l.seqs(inStream: StreamID.alertsConfig, limit: 1).isEmpty) == false)
        guard !disabled, configured, !l.isReadOnly else { return try await body() }
        let alerter = alerter(l)
        let stopping = Atomic<Bool>(false)
        let background = Task {
            _ = try? await l.lead("alerts", poll: .milliseconds(500)) {
                while true {
                    let last = stopping.load(ordering: .acquiring)
                    // Unstructured: stopping cancels the waits, never a drain under way.
                    if case .failure(let error) = await Task(operation: { try await alerter.drain(record: last) }).result {
                        Terminal.error("alerts: \(error)")
                    }

                    if last { return }
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        stopping.store(true, ordering: .releasing)
        // Wakes the sleep (or the wait for the lead, which another process holds: it sends then).
        background.cancel()
        await background.value
        return try result.get()
    }

    /// Sends alerts for the life of the calling task, whenever this process leads `alerts`.
    func background(_ l: Ledger, dashboard: String? = nil) -> Task<Void, Never>? {
        guard !disabled, !l.isReadOnly else { return nil }
        let alerter = alerter(l, dashboard: dashboard)
        return Task {
            while !Task.isCancelled {
                do {
                    let lost = try await l.lead("alerts", poll: .seconds(1)) {
                        do { try await alerter.follow() } catch { Terminal.error("alerts: \(error)") }
                    }
                    if !lost { return }
                } catch {
                    return
                }
            }
        }
    }
}
