public import Foundation

/// What an alert is sent for (docs/operations.md#alerts).
public enum AlertRule: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    /// A task failed for good (`task.failed` with no retry left).
    case failure
    /// A task attempt failed and will be tried again (`task.retrying`).
    case retry
    /// A task or the run missed its SLA (`sla.missed`).
    case slaMiss = "sla_miss"
    /// `clew impact --quarantine` marked runs of the DAG suspect (`lineage.quarantined`).
    case quarantine
    /// `clew culprit --record` named an attempt of the DAG as the culprit (`culprit.found`).
    case culprit

    /// Every rule but `retry`, which is noisy on DAGs that retry by design (Airflow's defaults alike).
    public static let defaults: [AlertRule] = [.culprit, .failure, .quarantine, .slaMiss]

    public static func < (a: AlertRule, b: AlertRule) -> Bool { a.rawValue < b.rawValue }

    /// Parses `failure,sla_miss` (also `sla-miss`), naming the known rules on a bad one.
    public static func parse(_ words: [String]) throws(AlertSpecError) -> [AlertRule] {
        var out: [AlertRule] = []
        for w in words.flatMap({ $0.split(separator: ",") }).map({ $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "-", with: "_") }) where !w.isEmpty {
            guard let r = AlertRule(rawValue: w) else {
                throw AlertSpecError("alert rule '\(w)' is not one of \(AlertRule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !out.contains(r) { out.append(r) }
        }
        return out.sorted()
    }
}

/// Where a DAG's alerts go: webhooks (a JSON POST each, retried with backoff) and e-mail addresses
/// (over the SMTP connection of the alert defaults), and for which rules. Set in a pipeline file's
/// `alerts:`, by the DSL's `.alerts(…)`, or for every DAG by `clew alerts defaults`.
public struct AlertSpec: Sendable, Hashable, Codable {
    public var webhooks: [String]
    public var emails: [String]
    /// Which rules alert (sorted); nil for ``AlertRule/defaults``.
    public var on: [AlertRule]?

    public init(webhooks: [String] = [], emails: [String] = [], on: [AlertRule]? = nil) {
        self.webhooks = webhooks
        self.emails = emails
        self.on = on?.sorted()
    }

    /// The rules that alert.
    public var rules: [AlertRule] { on ?? AlertRule.defaults }

    /// What is wrong with the targets: a webhook that is not an http(s) URL with a host, an address
    /// that is not `local@domain`; empty when every one is usable.
    public var problems: [String] {
        var out: [String] = []
        for w in webhooks {
            let u = URL(string: w)
            if u?.scheme.map({ ["http", "https"].contains($0.lowercased()) }) != true || (u?.host ?? "").isEmpty {
                out.append("alert webhook '\(w)' is not an http:// or https:// URL with a host")
            }
        }
        for e in emails where !Self.isAddress(e) {
            out.append("alert e-mail '\(e)' is not an address (local@domain, no spaces or angle brackets)")
        }
        return out
    }

    /// A plain `local@domain` address: what may go into an SMTP `RCPT TO:<…>` without quoting.
    public static func isAddress(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix(".") else { return false }
        return !s.contains { $0.isWhitespace || "<>()[]\\,;:\"".contains($0) || $0.asciiValue == nil }
    }
}

/// A bad alert rule or target.
public struct AlertSpecError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
