public import Foundation

/// `sla.missed` (stream of the run): tasks that had not succeeded by their SLA, or a run that had not
/// ended by the DAG's, the moment it is known.
public struct SLAMissed: EventPayload, Equatable {
    public static let eventTypes = [EventType.slaMissed]
    public var dag: String
    public var run: String
    /// `task` (the tasks' own SLA) or `dag` (the whole run's).
    public var scope: String
    /// The tasks that missed it, with their state when it was seen (for `dag`, the tasks not done then).
    public var tasks: [SLATask]
    public var slaMillis: Int
    /// The run's first start plus the SLA, microseconds since the epoch.
    public var deadlineMicros: Int64
    /// When the miss was seen.
    public var detectedMicros: Int64
    /// How late: the end minus the deadline for what ended late, when it was seen minus the deadline for
    /// what was still running (it can only grow).
    public var lateByMillis: Int64
    /// `run` (the run's own process) or `scheduler` (a run whose process stopped or is on another host).
    public var seenBy: String

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dag, run, scope, tasks, slaMillis = "sla_ms", deadlineMicros = "deadline_us", detectedMicros = "detected_us"
        case lateByMillis = "late_by_ms", seenBy = "seen_by"
    }

    public init(
        dag: String, run: String, scope: String, tasks: [SLATask], slaMillis: Int, deadlineMicros: Int64, detectedMicros: Int64,
        lateByMillis: Int64, seenBy: String
    ) {
        self.dag = dag
        self.run = run
        self.scope = scope
        self.tasks = tasks
        self.slaMillis = slaMillis
        self.deadlineMicros = deadlineMicros
        self.detectedMicros = detectedMicros
        self.lateByMillis = lateByMillis
        self.seenBy = seenBy
    }
}

/// One task of an `sla.missed`.
public struct SLATask: Codable, Sendable, Hashable {
    public var task: String
    /// pending, running, succeeded (late), skipped (late), failed …
    public var state: String

    public init(task: String, state: String) {
        self.task = task
        self.state = state
    }
}

/// `alert.delivered` / `alert.failed` (stream `alerts`): one alert to one target, after its attempts.
public struct AlertDelivery: EventPayload, Equatable {
    public static let eventTypes = [EventType.alertDelivered, EventType.alertFailed]
    /// The event the alert is about.
    public var sourceSeq: UInt64
    public var sourceType: String
    /// failure, retry, sla_miss, quarantine.
    public var rule: String
    public var dag: String
    public var run: String?
    public var task: String?
    /// `webhook` or `email`.
    public var channel: String
    /// The URL without query or credentials, or the addresses.
    public var target: String
    /// The SMTP host that took (or refused) the message.
    public var host: String?
    public var attempts: Int
    /// HTTP status, or the SMTP reply code, of the last attempt.
    public var statusCode: Int?
    public var error: String?
    /// The alert's subject line.
    public var subject: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case sourceSeq = "source_seq", sourceType = "source_type", rule, dag, run, task, channel, target, host, attempts
        case statusCode = "status_code", error, subject
    }

    public init(
        sourceSeq: UInt64, sourceType: String, rule: String, dag: String, run: String?, task: String?, channel: String, target: String,
        host: String? = nil, attempts: Int, statusCode: Int? = nil, error: String? = nil, subject: String? = nil
    ) {
        self.sourceSeq = sourceSeq
        self.sourceType = sourceType
        self.rule = rule
        self.dag = dag
        self.run = run
        self.task = task
        self.channel = channel
        self.target = target
        self.host = host
        self.attempts = attempts
        self.statusCode = statusCode
        self.error = error
        self.subject = subject
    }
}

/// `alerts.configured` (stream `alerts/config`): where every DAG's alerts go, besides its own targets.
public struct AlertDefaults: EventPayload, Equatable {
    public static let eventTypes = [EventType.alertsConfigured]
    public var webhooks: [String]
    public var emails: [String]
    /// The rules that alert (nil: failure, quarantine, sla_miss).
    public var on: [String]?
    /// The Connection that names the SMTP server (default `smtp_default`).
    public var smtpConnection: String?
    /// The sender address (default `clew@<host>`).
    public var from: String?
    public var reason: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case webhooks, emails, on, smtpConnection = "smtp_connection", from, reason
    }

    public init(webhooks: [String] = [], emails: [String] = [], on: [String]? = nil, smtpConnection: String? = nil, from: String? = nil, reason: String? = nil) {
        self.webhooks = webhooks
        self.emails = emails
        self.on = on
        self.smtpConnection = smtpConnection
        self.from = from
        self.reason = reason
    }
}

/// `alerts.read` (stream `alerts`): the alerter read the log up to `seq` and had nothing more to send.
public struct AlertsRead: EventPayload, Equatable {
    public static let eventTypes = [EventType.alertsRead]
    public var seq: UInt64

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case seq
    }

    public init(seq: UInt64) { self.seq = seq }
}

/// `pool.set` / `pool.deleted` (stream `pools`): a named number of slots every run, process and host
/// shares; the actor says who.
public struct PoolChanged: EventPayload, Equatable {
    public static let eventTypes = [EventType.poolSet, EventType.poolDeleted]
    public var pool: String
    public var slots: Int?
    public var description: String?
    public var reason: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case pool, slots, description, reason
    }

    public init(pool: String, slots: Int? = nil, description: String? = nil, reason: String? = nil) {
        self.pool = pool
        self.slots = slots
        self.description = description
        self.reason = reason
    }
}

/// `pool.waiting` / `pool.acquired` / `pool.released` (stream `pool/<name>`): one task attempt's claim
/// on a pool's slots, named by `holder`, and where it runs (a claim of a process that is gone on this
/// host, or of a run that ended, no longer counts).
public struct PoolSlotEvent: EventPayload, Equatable {
    public static let eventTypes = [EventType.poolWaiting, EventType.poolAcquired, EventType.poolReleased]
    public var pool: String
    /// `<dag>/<run>/<task>#<attempt>`, unique per claim.
    public var holder: String
    public var slots: Int?
    public var priority: Int?
    public var dag: String?
    public var run: String?
    public var task: String?
    public var attempt: Int?
    public var host: String?
    public var pid: Int?
    /// `pool.acquired`: how long it waited.
    public var waitedMillis: Int64?
    /// `pool.released`: why (the attempt ended, it was cancelled while waiting, the run was resubmitted).
    public var reason: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case pool, holder, slots, priority, dag, run, task, attempt, host, pid, waitedMillis = "waited_ms", reason
    }

    public init(
        pool: String, holder: String, slots: Int? = nil, priority: Int? = nil, dag: String? = nil, run: String? = nil, task: String? = nil,
        attempt: Int? = nil, host: String? = nil, pid: Int? = nil, waitedMillis: Int64? = nil, reason: String? = nil
    ) {
        self.pool = pool
        self.holder = holder
        self.slots = slots
        self.priority = priority
        self.dag = dag
        self.run = run
        self.task = task
        self.attempt = attempt
        self.host = host
        self.pid = pid
        self.waitedMillis = waitedMillis
        self.reason = reason
    }
}

/// One source file of a DAG version: its path (relative to the pipeline file's directory), the SHA-256
/// of its bytes, and the digest of the value holding its (redacted) text.
public struct SourceFile: Codable, Sendable, Hashable {
    public var path: String
    public var sha256: String
    public var value: String
    public var bytes: Int

    public init(path: String, sha256: String, value: String, bytes: Int) {
        self.path = path
        self.sha256 = sha256
        self.value = value
        self.bytes = bytes
    }

    /// `text` with the value of every secret-looking assignment (`password: x`, `API_TOKEN=x`,
    /// `{"secret": "x"}`, `env: {DB_PASSWORD: x}`) replaced by `[REDACTED]`: what is stored of a source
    /// file. A key is secret-looking by the engine's redaction rules (``Redaction/isSecret(_:)``).
    public static func redacted(_ text: String) -> String {
        let ns = text as NSString
        var out = ""
        var last = 0
        for m in assignment.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            guard Redaction.isSecret(ns.substring(with: m.range(at: 1))) else { continue }
            let value = m.range(at: 3)
            out += ns.substring(with: NSRange(location: last, length: value.location - last)) + "[REDACTED]"
            last = value.location + value.length
        }
        return out + ns.substring(from: last)
    }

    /// A key, then `:` or `=` (after an optional closing quote), then its value: quoted, or up to a space,
    /// comma, brace, bracket or comment.
    nonisolated(unsafe) static let assignment = try! NSRegularExpression(
        pattern: #"([A-Za-z_][A-Za-z0-9_.\-]*)(["']?[ \t]*[:=][ \t]*)("[^"\n]*"|'[^'\n]*'|[^\s,}\]#]+)"#)
}

/// `culprit.found` (stream `culprits`): the earliest failing, invalid or anomalous ancestor `clew culprit
/// --record` found for a target; the actor says who looked.
public struct CulpritFound: EventPayload, Equatable {
    public static let eventTypes = [EventType.culpritFound]
    /// What was examined: a run, chunk, value or node id.
    public var target: String
    /// failed, expectation_failed, chunk_invalid or anomaly.
    public var kind: String
    public var dag: String?
    public var run: String?
    public var task: String?
    public var attempt: Int?
    /// `DATASET/KEY` for a chunk finding.
    public var chunk: String?
    /// The event the finding is.
    public var findingSeq: UInt64
    public var detail: String
    public var variable: String?
    public var value: Double?
    public var reason: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case target, kind, dag, run, task, attempt, chunk, findingSeq = "finding_seq", detail, variable, value, reason
    }

    public init(
        target: String, kind: String, dag: String? = nil, run: String? = nil, task: String? = nil, attempt: Int? = nil, chunk: String? = nil,
        findingSeq: UInt64, detail: String, variable: String? = nil, value: Double? = nil, reason: String? = nil
    ) {
        self.target = target
        self.kind = kind
        self.dag = dag
        self.run = run
        self.task = task
        self.attempt = attempt
        self.chunk = chunk
        self.findingSeq = findingSeq
        self.detail = detail
        self.variable = variable
        self.value = value
        self.reason = reason
    }
}
