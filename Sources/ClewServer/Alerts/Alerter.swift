import AsyncHTTPClient
import ClewProjections
public import ClewEngine
public import ClewLedger
public import ClewModel
public import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// How the alerter sends.
public struct AlertOptions: Sendable {
    /// Tries per target before `alert.failed` is recorded.
    public var attempts = 5
    /// Wait before the second try, doubled each time.
    public var baseDelay: Duration = .seconds(1)
    /// Events older than this when the alerter reaches them are not alerted (a first start does not mail
    /// last month's failures).
    public var maxAge: Duration = .seconds(24 * 3600)
    /// Who the delivery events name.
    public var actor = "clew-alerts"
    /// The dashboard's address, for links in alerts (nil: no links).
    public var dashboardURL: String?
    public var logger = Logger(label: "clew.alerts", factory: { _ in SwiftLogNoOpLogHandler() })

    public init() {}
}

/// Sends alerts for what the log records, and records each delivery (docs/operations.md#alerts).
///
/// It reads the log in order from where the last delivery (or `alerts.read`) left it: a run that failed
/// (`run.failed`), an attempt that will be retried (`task.retrying`), an SLA miss (`sla.missed`) and a
/// quarantine (`lineage.quarantined`) are alerted to the targets of the DAG (its `alerts:`) and to the
/// defaults (`clew alerts defaults`) that take that rule: a JSON POST to each webhook and one e-mail to
/// the addresses, over the SMTP Connection of the defaults. Each is tried with backoff and recorded as
/// `alert.delivered` or `alert.failed` in stream `alerts`. Delivery is at least once: a receiver can
/// tell a repeat by the `X-Clew-Alert` id. One alerter sends for a ledger (`Ledger.lead("alerts")`).
public final class Alerter: Sendable {
    public let ledger: Ledger
    public let options: AlertOptions
    private let state = Mutex(State())

    /// What it knows of the targets: each from the latest event it read of them (never an older one).
    struct State {
        var dags: [String: (spec: AlertSpec?, seq: UInt64)] = [:]
        var defaults: AlertDefaults?
        var defaultsSeq: UInt64 = 0
        var defaultsRead = false
        /// Events read since the cursor was last recorded, not counting the alerter's own.
        var unrecorded = 0
        /// The next seq to read, once this alerter has read some.
        var next: UInt64?
    }

    public init(ledger: Ledger, options: AlertOptions = AlertOptions()) {
        self.ledger = ledger
        self.options = options
    }

    /// One alert: what it is about and what it says.
    public struct Alert: Sendable {
        public var rule: AlertRule
        public var dag: String
        public var run: String?
        public var task: String?
        public var subject: String
        public var lines: [(String, String)]
        public var source: Event

        /// The id receivers can drop repeats by.
        public var id: String { "\(source.seq)-\(rule.rawValue)-\(dag)" }
    }

    /// One recorded delivery.
    public struct Row: Sendable, Encodable {
        public var seq: UInt64
        public var time: String
        public var delivered: Bool
        public var delivery: AlertDelivery
    }

    /// The deliveries recorded, oldest first, at most `limit` (the newest), filtered.
    public static func deliveries(in ledger: Ledger, dag: String? = nil, rule: String? = nil, failedOnly: Bool = false, limit: Int = 100) throws -> [Row] {
        let rows = try ledger.events(inStream: StreamID.alerts).compactMap { e -> Row? in
            guard e.type != EventType.alertsRead, let d = try? JSONDecoder().decode(AlertDelivery.self, from: e.payload) else { return nil }
            if let dag, d.dag != dag { return nil }
            if let rule, d.rule != rule { return nil }
            if failedOnly, e.type != EventType.alertFailed { return nil }
            return Row(seq: e.seq, time: PartitionKey.string(micros: e.timestampMicros), delivered: e.type == EventType.alertDelivered, delivery: d)
        }
        return Array(rows.suffix(max(0, limit)))
    }

    // MARK: - Where to start

    /// The seq to read from, and what was already delivered for the event at it (a delivery cut short
    /// between two targets of one event).
    func cursor() throws -> (seq: UInt64, done: Set<String>) {
        let recorded = try recordedCursor()
        // Ahead of what it recorded when it read on without sending; behind it if another process led since.
        if let next = state.withLock({ $0.next }), next > recorded.seq { return (next, []) }
        return recorded
    }

    func recordedCursor() throws -> (seq: UInt64, done: Set<String>) {
        let seqs = try ledger.seqs(inStream: StreamID.alerts)
        guard let last = seqs.last, let e = try ledger.event(at: last) else { return (1, []) }
        if e.type == EventType.alertsRead, let r = try? JSONDecoder().decode(AlertsRead.self, from: e.payload) { return (r.seq + 1, []) }
        guard let d = try? JSONDecoder().decode(AlertDelivery.self, from: e.payload) else { return (e.seq + 1, []) }
        var done = Set<String>()
        for s in seqs.reversed() {
            guard let ev = try ledger.event(at: s), let x = try? JSONDecoder().decode(AlertDelivery.self, from: ev.payload), x.sourceSeq == d.sourceSeq else { break }
            done.insert("\(x.dag) \(x.channel) \(x.target)")
        }
        return (d.sourceSeq, done)
    }

    // MARK: - Running

    /// Sends what the log holds now and has not been alerted, then returns what it recorded. Call it
    /// only while leading `alerts` (``Ledger/lead(_:poll:_:)``).
    /// - Parameter record: record how far it read (`alerts.read`) when it sent nothing since; without it,
    ///   only every 10,000 events (the next call goes on from memory).
    @discardableResult
    public func drain(record: Bool = true) async throws -> [AlertDelivery] {
        _ = try await ledger.pull()
        var (from, done) = try cursor()
        var out: [AlertDelivery] = []
        let end = try ledger.lastSeq
        while from <= end {
            let batch = try ledger.events(from...end, limit: 1_000)
            guard let last = batch.last else { break }
            for e in batch {
                out += await handle(e, skip: e.seq == from ? done : [])
            }
            done = []
            from = last.seq + 1
            state.withLock { $0.next = from }
        }
        if record || state.withLock({ $0.unrecorded }) >= 10_000 { try await recordRead(through: end) }
        return out
    }

    /// Sends alerts as the log grows (woken by each change, and every `poll`), until cancelled; then
    /// records how far it read. Call it only while leading `alerts`.
    public func follow(poll: Duration = .seconds(1), onDelivery: @Sendable (AlertDelivery) -> Void = { _ in }) async throws {
        var wakeups = ledger.changeSignals(every: poll).makeAsyncIterator()
        while !Task.isCancelled {
            for d in try await drain(record: false) { onDelivery(d) }
            if await wakeups.next() == nil { break }
        }
        try? await recordRead(through: (state.withLock { $0.next } ?? 1) - 1)
    }

    /// Records `alerts.read` when events were read since the cursor was last recorded.
    func recordRead(through seq: UInt64) async throws {
        let pending = state.withLock { s in
            defer { s.unrecorded = 0 }
            return s.unrecorded
        }
        guard pending > 0, seq > 0 else { return }
        _ = try await ledger.append(NewEvent(
            type: EventType.alertsRead, stream: StreamID.alerts, actor: options.actor, timestampMicros: Self.now(), payload: AlertsRead(seq: seq).payloadData))
    }

    /// Alerts for one event, delivered and recorded.
    func handle(_ e: Event, skip: Set<String>) async -> [AlertDelivery] {
        if e.stream != StreamID.alerts { state.withLock { $0.unrecorded += 1 } }
        noteConfiguration(e)
        let alerts = classify(e)
        guard !alerts.isEmpty else { return [] }
        if e.timestampMicros < Self.now() - options.maxAge.microseconds { return [] }
        var out: [AlertDelivery] = []
        for alert in alerts {
            let (webhooks, emails) = targets(for: alert)
            // Unstructured, so that stopping the alerter does not cut a delivery's retries short.
            for url in webhooks where !skip.contains("\(alert.dag) webhook \(Self.shown(url))") {
                out.append(await record(await Task { await self.deliverWebhook(alert, to: url) }.value))
            }
            if !emails.isEmpty, !skip.contains("\(alert.dag) email \(emails.joined(separator: ", "))") {
                out.append(await record(await Task { await self.deliverEmail(alert, to: emails) }.value))
            }

        }
        if !out.isEmpty { state.withLock { $0.unrecorded = 0 } }
        return out
    }

    func record(_ d: AlertDelivery) async -> AlertDelivery {
        let type = d.error == nil ? EventType.alertDelivered : EventType.alertFailed
        do {
            _ = try await ledger.append(NewEvent(type: type, stream: StreamID.alerts, actor: options.actor, timestampMicros: Self.now(), payload: d.payloadData))
        } catch {
            options.logger.error("could not record an alert delivery", metadata: ["alert": "\(d.sourceSeq)", "why": "\(error)"])
        }
        if let error = d.error { options.logger.warning("alert not delivered", metadata: ["target": "\(d.target)", "why": "\(error)"]) }
        return d
    }

    // MARK: - What is alerted, and to whom

    /// Keeps the DAGs' targets and the defaults current as their events go by.
    func noteConfiguration(_ e: Event) {
        if e.type == EventType.dagRegistered, let r = try? JSONDecoder().decode(DAGRegistered.self, from: e.payload) {
            state.withLock { s in
                if e.seq > s.dags[r.dag]?.seq ?? 0 { s.dags[r.dag] = (r.definition?.alerts, e.seq) }
            }
        } else if e.type == EventType.alertsConfigured, let d = try? JSONDecoder().decode(AlertDefaults.self, from: e.payload) {
            state.withLock { s in
                guard e.seq > s.defaultsSeq else { return }
                s.defaults = d
                s.defaultsSeq = e.seq
                s.defaultsRead = true
            }
        }
    }

    /// The defaults now (the latest `alerts.configured`).
    public func defaults() -> AlertDefaults? {
        if let d = state.withLock({ $0.defaultsRead ? .some($0.defaults) : nil }) { return d }
        let latest = try? ledger.events(inStream: StreamID.alertsConfig).last
        let d = latest.flatMap { try? JSONDecoder().decode(AlertDefaults.self, from: $0.payload) }
        return state.withLock { s in
            if !s.defaultsRead {
                s.defaults = d
                s.defaultsSeq = latest?.seq ?? 0
                s.defaultsRead = true
            }
            return s.defaults
        }
    }

    /// Records `d` as the defaults of every DAG (`alerts.configured`), after checking it: webhooks are
    /// http(s) URLs, addresses plain `local@domain`, rules known, the SMTP Connection id well formed.
    /// - Throws: ``AlertSpecError`` naming every problem; nothing is recorded then.
    /// - Returns: the event's seq.
    public func setDefaults(_ d: AlertDefaults, by actor: String) async throws -> UInt64 {
        var problems = AlertSpec(webhooks: d.webhooks, emails: d.emails).problems
        do { _ = try AlertRule.parse(d.on ?? []) } catch { problems.append(error.description) }
        if let from = d.from, !AlertSpec.isAddress(from) { problems.append("from '\(from)' is not an address") }
        if let id = d.smtpConnection, (try? VariableStore.check(key: id, what: "connection id")) == nil { problems.append("smtp connection '\(id)' is not a connection id") }
        if !problems.isEmpty { throw AlertSpecError(problems.joined(separator: "; ")) }
        var normal = d
        normal.on = try d.on.map { try AlertRule.parse($0).map(\.rawValue) }
        let seq = try await ledger.append(NewEvent(
            type: EventType.alertsConfigured, stream: StreamID.alertsConfig, actor: actor, timestampMicros: Self.now(), payload: normal.payloadData))
        state.withLock { s in
            s.defaults = normal
            s.defaultsSeq = seq
            s.defaultsRead = true
        }
        return seq
    }

    /// A DAG's own targets, from its latest registered definition.
    func dagAlerts(_ dag: String) -> AlertSpec? {
        if let known = state.withLock({ $0.dags[dag] }) { return known.spec }
        let latest = try? ledger.events(inStream: StreamID.dag(dag)).last { $0.type == EventType.dagRegistered }
        let spec = latest.flatMap { try? JSONDecoder().decode(DAGRegistered.self, from: $0.payload) }?.definition?.alerts
        return state.withLock { s in
            if s.dags[dag] == nil { s.dags[dag] = (spec, latest?.seq ?? 0) }
            return s.dags[dag]!.spec
        }
    }

    func targets(for alert: Alert) -> (webhooks: [String], emails: [String]) {
        var webhooks: [String] = []
        var emails: [String] = []
        if let d = defaults() {
            let rules = (try? AlertRule.parse(d.on ?? [])).flatMap { $0.isEmpty ? nil : $0 } ?? AlertRule.defaults
            if rules.contains(alert.rule) {
                webhooks += d.webhooks
                emails += d.emails
            }
        }
        if let own = dagAlerts(alert.dag), own.rules.contains(alert.rule) {
            webhooks += own.webhooks
            emails += own.emails
        }
        var seen = Set<String>()
        return (webhooks.filter { seen.insert($0).inserted }, emails.filter { seen.insert($0.lowercased()).inserted })
    }

    /// The alerts an event calls for (none for most).
    public func classify(_ e: Event) -> [Alert] {
        func runOf(_ stream: String) -> (dag: String, run: String)? { RunKey(stream: stream).map { ($0.dag, $0.run) } }

        let time = PartitionKey.string(micros: e.timestampMicros)
        switch e.type {
        case EventType.runFailed:
            guard let (dag, run) = runOf(e.stream) else { return [] }
            let end = try? JSONDecoder().decode(RunEnded.self, from: e.payload)
            let errors = failures(in: e.stream, before: e.seq)
            let failed = end?.failedTasks ?? errors.map(\.0)
            var lines: [(String, String)] = [("DAG", dag), ("Run", run), ("Failed", failed.isEmpty ? "(none named)" : failed.joined(separator: ", "))]
            for (task, error) in errors { lines.append(("  \(task)", error)) }
            lines.append(("Ended", time))
            lines.append(("Look", "clew why --dag \(dag) --run \(run)"))
            return [Alert(rule: .failure, dag: dag, run: run, task: failed.first, subject: "run \(run) of \(dag) failed: \(failed.joined(separator: ", "))", lines: lines, source: e)]
        case EventType.taskRetrying:
            guard let (dag, run) = runOf(e.stream), let t = try? JSONDecoder().decode(TaskEvent.self, from: e.payload) else { return [] }
            let attempt = t.attempt.map(String.init) ?? "?"
            let lines: [(String, String)] = [
                ("DAG", dag), ("Run", run), ("Task", t.task), ("Attempt", "\(attempt) failed; attempt \(t.nextAttempt.map(String.init) ?? "?") follows in \(Self.duration(millis: Int64(t.backoffMillis ?? 0)))"),
                ("Why", t.reason ?? "?"), ("At", time),
            ]
            return [Alert(rule: .retry, dag: dag, run: run, task: t.task, subject: "task \(t.task) of \(dag) failed attempt \(attempt), retrying (run \(run))", lines: lines, source: e)]
        case EventType.slaMissed:
            guard let m = try? JSONDecoder().decode(SLAMissed.self, from: e.payload) else { return [] }
            let names = m.tasks.map { "\($0.task) (\($0.state))" }.joined(separator: ", ")
            let what = m.scope == "dag" ? "run \(m.run) of \(m.dag) missed its SLA of \(Self.duration(millis: Int64(m.slaMillis)))"
                : "\(m.tasks.map(\.task).joined(separator: ", ")) of \(m.dag) missed the SLA of \(Self.duration(millis: Int64(m.slaMillis))) (run \(m.run))"
            let lines: [(String, String)] = [
                ("DAG", m.dag), ("Run", m.run), (m.scope == "dag" ? "Not done" : "Tasks", names.isEmpty ? "-" : names),
                ("SLA", Self.duration(millis: Int64(m.slaMillis))), ("Deadline", PartitionKey.string(micros: m.deadlineMicros)),
                ("Late by", "\(Self.duration(millis: m.lateByMillis)) when seen by the \(m.seenBy)"), ("Look", "clew sla --dag \(m.dag)"),
            ]
            return [Alert(rule: .slaMiss, dag: m.dag, run: m.run, task: m.tasks.first?.task, subject: what, lines: lines, source: e)]
        case EventType.culpritFound:
            guard let c = try? JSONDecoder().decode(CulpritFound.self, from: e.payload), let dag = c.dag else { return [] }
            let at = c.task.map { "task \($0)\(c.attempt.map { " attempt \($0)" } ?? "")" } ?? c.chunk.map { "chunk \($0)" } ?? "?"
            let lines: [(String, String)] = [
                ("Target", c.target), ("Culprit", "\(c.kind) at \(at)\(c.run.map { " of run \($0)" } ?? "")"), ("Detail", c.detail),
                ("Finding", "event #\(c.findingSeq)"), ("Why", c.reason ?? "-"), ("By", e.actor), ("Look", "clew culprit \(c.target)"),
            ]
            return [Alert(rule: .culprit, dag: dag, run: c.run, task: c.task, subject: "culprit of \(c.target): \(c.kind) at \(at) of \(dag)", lines: lines, source: e)]
        case EventType.lineageQuarantined:
            guard let q = try? JSONDecoder().decode(LineageQuarantined.self, from: e.payload) else { return [] }
            var byDAG: [String: [String]] = [:]
            for r in q.runs ?? [] {
                let parts = r.split(separator: "/", maxSplits: 1).map(String.init)
                if parts.count == 2 { byDAG[parts[0], default: []].append(parts[1]) }
            }
            return byDAG.keys.sorted().map { dag in
                let runs = byDAG[dag]!.sorted()
                let lines: [(String, String)] = [
                    ("Quarantine", q.quarantine), ("From", q.source ?? "?"), ("Why", q.reason ?? "-"), ("DAG", dag), ("Runs", runs.joined(separator: ", ")),
                    ("Rebuild", (q.rebuild ?? [:]).filter { $0.key.hasPrefix(dag + "/") }.map { "\($0.key): \($0.value.joined(separator: ", "))" }.sorted().joined(separator: "; ")),
                    ("By", e.actor), ("At", time),
                ]
                return Alert(rule: .quarantine, dag: dag, run: runs.first, task: nil, subject: "quarantine \(q.quarantine) marks \(runs.count) run(s) of \(dag) suspect", lines: lines, source: e)
            }
        default:
            return []
        }
    }

    /// Each failed task of the run and its last error, from the run's events before `seq`.
    func failures(in stream: String, before seq: UInt64) -> [(String, String)] {
        guard let events = try? ledger.events(inStream: stream) else { return [] }
        var last: [String: String] = [:]
        var order: [String] = []
        for e in events where e.seq < seq && (e.type == EventType.taskFailed || e.type == EventType.taskBlocked) {
            guard let t = try? JSONDecoder().decode(TaskEvent.self, from: e.payload) else { continue }
            if last[t.task] == nil { order.append(t.task) }
            last[t.task] = String((t.error ?? t.reason ?? "failed").prefix(500))
        }
        return order.map { ($0, last[$0]!) }
    }

    // MARK: - Delivering

    static func shown(_ url: String) -> String {
        guard var c = URLComponents(string: url) else { return "?" }
        c.query = nil
        c.user = nil
        c.password = nil
        return c.string ?? "?"
    }

    func delivery(_ alert: Alert, channel: String, target: String) -> AlertDelivery {
        AlertDelivery(
            sourceSeq: alert.source.seq, sourceType: alert.source.type, rule: alert.rule.rawValue, dag: alert.dag, run: alert.run, task: alert.task,
            channel: channel, target: target, attempts: 0, subject: "[clew] " + alert.subject)
    }

    /// The text of an alert: its subject, then aligned fields.
    public static func text(_ alert: Alert, dashboard: String?) -> String {
        let width = (alert.lines.map(\.0.count).max() ?? 0) + 2
        var out = alert.subject + ".\n\n"
        for (k, v) in alert.lines { out += (k + ":").padding(toLength: width, withPad: " ", startingAt: 0) + v + "\n" }
        if let dashboard, let run = alert.run {
            out += "Page:".padding(toLength: width, withPad: " ", startingAt: 0) + dashboard + "/runs/\(alert.dag)/\(run)\n"
        }
        out += "\nEvent \(alert.source.type) #\(alert.source.seq) in \(alert.source.stream); alert id \(alert.id).\n"
        return out
    }

    func deliverWebhook(_ alert: Alert, to url: String) async -> AlertDelivery {
        let d = delivery(alert, channel: "webhook", target: Self.shown(url))
        var body: [String: Any] = [
            "id": alert.id, "rule": alert.rule.rawValue, "dag": alert.dag, "subject": "[clew] " + alert.subject,
            "text": Self.text(alert, dashboard: options.dashboardURL),
            "event": ["seq": alert.source.seq, "type": alert.source.type, "stream": alert.source.stream, "time": PartitionKey.string(micros: alert.source.timestampMicros)],
        ]
        if let run = alert.run { body["run"] = run }
        if let task = alert.task { body["task"] = task }
        if let payload = try? JSONSerialization.jsonObject(with: alert.source.payload) { body["payload"] = payload }
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        return await tries(d) { d in
            do {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "User-Agent", value: "clew-alerts")
                request.headers.add(name: "X-Clew-Alert", value: alert.id)
                request.headers.add(name: "X-Clew-Attempt", value: String(d.attempts))
                request.body = .bytes(ByteBuffer(bytes: data))
                let response = try await Self.http.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 1 << 16)
                d.statusCode = Int(response.status.code)
                if (200..<300).contains(response.status.code) { return .delivered }
                d.error = "HTTP \(response.status.code)"
                // A refusal other than "too many" or "timed out" will not change on a retry.
                return (400..<500).contains(response.status.code) && ![408, 429].contains(response.status.code) ? .givenUp : .again
            } catch {
                d.statusCode = nil
                d.error = "\(error)"
                return .again
            }
        }
    }

    enum Try { case delivered, again, givenUp }

    /// Tries `once` up to ``AlertOptions/attempts`` times, waiting ``AlertOptions/baseDelay`` before the
    /// second and doubling it, until it delivers or gives up (it sets the delivery's status and error).
    func tries(_ delivery: AlertDelivery, _ once: (inout AlertDelivery) async -> Try) async -> AlertDelivery {
        var d = delivery
        var delay = options.baseDelay
        while d.attempts < options.attempts {
            d.attempts += 1
            switch await once(&d) {
            case .delivered:
                d.error = nil
                return d
            case .givenUp:
                return d
            case .again:
                if d.attempts < options.attempts {
                    try? await Task.sleep(for: delay)
                    delay *= 2
                }
            }
        }
        return d
    }

    func deliverEmail(_ alert: Alert, to addresses: [String]) async -> AlertDelivery {
        var d = delivery(alert, channel: "email", target: addresses.joined(separator: ", "))
        let id = defaults()?.smtpConnection ?? "smtp_default"
        let settings: SMTPSettings
        let from: String
        do {
            (settings, from) = try smtp(id)
        } catch {
            d.error = "\(error)"
            return d
        }
        d.host = "\(settings.host):\(settings.port)"
        let message = Self.mail(alert, from: from, to: addresses, text: Self.text(alert, dashboard: options.dashboardURL))
        return await tries(d) { d in
            do {
                let reply = try await SMTPClient.send(message, from: from, to: addresses, with: settings)
                d.statusCode = Int(reply.prefix(3))
                return .delivered
            } catch let error as SMTPError {
                d.statusCode = error.code
                d.error = error.description
                return error.isTransient ? .again : .givenUp
            } catch {
                d.statusCode = nil
                d.error = "\(error)"
                return .again
            }
        }
    }

    /// The SMTP server of Connection `id`: one of its hosts, its port, login, password (read through its
    /// reference), and from `extra`: `security` (auto, starttls, tls, none), `ca_file`, `from`.
    func smtp(_ id: String) throws -> (SMTPSettings, from: String) {
        let store = ConnectionStore(ledger: ledger)
        guard let c = try store.get(id), let host = c.hosts.randomElement() else {
            throw AlertSpecError("no SMTP Connection '\(id)' is set (clew connections set \(id) --host HOST --port 587 …)")
        }
        let security: SMTPSettings.Security
        if let s = c.extra["security"] {
            guard let parsed = SMTPSettings.Security(rawValue: s) else {
                throw AlertSpecError("Connection \(id): extra security '\(s)' is not one of \(SMTPSettings.Security.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            security = parsed
        } else {
            security = .auto
        }
        let password = try c.passwordReference.map { try VariableReference($0).read(for: "the password of Connection '\(id)'") }
        let settings = SMTPSettings(
            host: host, port: c.port ?? (security == .tls ? 465 : 25), security: security, login: c.login, password: password, trustRoots: c.extra["ca_file"])
        let from = defaults()?.from ?? c.extra["from"] ?? "clew@\(ProcessInfo.processInfo.hostName)"
        return (settings, from)
    }

    /// Sends a test message through Connection `connection` (default: the defaults', else `smtp_default`).
    /// - Returns: the server's last reply.
    public func sendTest(to address: String, connection: String?) async throws -> String {
        let (settings, from) = try smtp(connection ?? defaults()?.smtpConnection ?? "smtp_default")
        let event = Event(seq: 0, timestampMicros: Self.now(), actor: options.actor, stream: StreamID.alerts, type: "alert.test", payload: Data("{}".utf8))
        let alert = Alert(rule: .failure, dag: "-", run: nil, task: nil, subject: "test message from clew", lines: [("Server", "\(settings.host):\(settings.port)"), ("Security", settings.security.rawValue)], source: event)
        return try await SMTPClient.send(Self.mail(alert, from: from, to: [address], text: Self.text(alert, dashboard: nil)), from: from, to: [address], with: settings)
    }

    /// An RFC 5322 message: headers (a subject that is not ASCII is RFC 2047 encoded) and the text.
    static func mail(_ alert: Alert, from: String, to: [String], text: String) -> String {
        let subject = "[clew] " + alert.subject
        let encoded = subject.allSatisfy { $0.isASCII && !$0.isNewline } ? subject : "=?utf-8?B?\(Data(subject.utf8).base64EncodedString())?="
        let date = DateFormatter()
        date.locale = Locale(identifier: "en_US_POSIX")
        date.timeZone = TimeZone(identifier: "UTC")
        date.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let domain = from.split(separator: "@").last.map(String.init) ?? "clew"
        return [
            "From: Clew <\(from)>", "To: \(to.joined(separator: ", "))", "Subject: \(encoded)", "Date: \(date.string(from: Date()))",
            "Message-ID: <\(alert.id).\(UInt32.random(in: 0...UInt32.max))@\(domain)>", "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "X-Clew-Alert: \(alert.id)", "", text,
        ].joined(separator: "\r\n")
    }

    /// `850 ms`, `1.2 s`, `3 min 5 s`, `2 h 10 min`.
    public static func duration(millis: Int64) -> String {
        if millis < 1_000 { return "\(millis) ms" }
        if millis < 60_000 { return String(format: "%.1f s", Double(millis) / 1000) }
        if millis < 3_600_000 { return "\(millis / 60_000) min \((millis % 60_000) / 1000) s" }
        return "\(millis / 3_600_000) h \((millis % 3_600_000) / 60_000) min"
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    /// A client that reports a refused or unreachable receiver at once, so that each try is one try (the
    /// shared client retries the connection until the request's deadline); it lives as long as the process.
    static let http: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.connectionPool.retryConnectionEstablishment = false
        config.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()
}

extension Duration {
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
