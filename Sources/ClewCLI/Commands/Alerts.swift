import ArgumentParser
import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import ClewServer
import Foundation

/// `clew alerts`: where alerts go, sending them, and what was sent (docs/operations.md#alerts).
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "Alert defaults, sending alerts, and every delivery (webhook and e-mail) recorded.",
        discussion: """
            A run that failed, a task attempt that will be retried, an SLA miss and a quarantine are alerted to the \
            targets of their DAG (alerts: in a pipeline file, .alerts(…) in Swift) and to the defaults set here. \
            `clew run`, `clew scheduler` and `clew serve` send them (one process of a ledger at a time); \
            `clew alerts follow` does only that. E-mail goes through the SMTP Connection smtp_default \
            (clew connections set smtp_default --host HOST --port 587 --login USER --password-env VAR \
            --extra security=starttls --extra from=clew@example.com).
            """,
        subcommands: [AlertsDefaults.self, AlertsList.self, AlertsDeliver.self, AlertsFollow.self, AlertsTest.self])
}

struct AlertsDefaults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "defaults", abstract: "Show the alert targets of every DAG, or set them (recorded as alerts.configured).")
    @Option(name: .long, help: "A webhook URL (repeatable).") var webhook: [String] = []
    @Option(name: .long, help: "An e-mail address (repeatable).") var email: [String] = []
    @Option(name: .long, help: "Which rules alert: failure, retry, sla_miss, quarantine, culprit (default: all but retry).") var on: [String] = []
    @Option(name: .long, help: "The Connection of the SMTP server (default smtp_default).") var smtp: String?
    @Option(name: .long, help: "The sender address (default: the Connection's extra from, else clew@<host>).") var from: String?
    @Flag(name: .long, help: "Remove every default target.") var clear = false
    @Option(name: .long, help: "Why (recorded).") var reason: String?
    @Option(name: .long, help: "Who sets them (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    var setting: Bool { clear || !webhook.isEmpty || !email.isEmpty || !on.isEmpty || smtp != nil || from != nil }

    func validate() throws {
        if clear, !webhook.isEmpty || !email.isEmpty { throw ValidationError("--clear removes every target; give no --webhook or --email with it") }
    }

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(create: setting)
            defer { l.close() }
            let current = Alerter(ledger: l).defaults()
            guard setting else {
                guard let current else {
                    Terminal.error("no alert defaults are set (clew alerts defaults --webhook URL --email ADDRESS)")
                    if output.json { Terminal.line("null") }
                    return
                }
                if output.json { Terminal.line(try JSONOutput.text(current)); return }
                Self.print(current)
                return
            }
            var next = clear ? AlertDefaults() : AlertDefaults(webhooks: webhook, emails: email)
            // Options not given keep their value.
            if !clear, webhook.isEmpty, email.isEmpty, let current {
                next.webhooks = current.webhooks
                next.emails = current.emails
            }
            next.on = on.isEmpty ? (clear ? nil : current?.on) : on
            next.smtpConnection = smtp ?? (clear ? nil : current?.smtpConnection)
            next.from = from ?? (clear ? nil : current?.from)
            next.reason = reason
            let alerter = Alerter(ledger: l)
            let seq: UInt64
            do { seq = try await alerter.setDefaults(next, by: VariablesCommand.actor(by)) } catch let e as AlertSpecError { throw CLIFailure(message: e.description) }
            next = alerter.defaults() ?? next
            if output.json { Terminal.line(try JSONOutput.text(next)); return }
            Terminal.error("alert defaults set (seq \(seq))")
            Self.print(next)
        }
    }

    static func print(_ d: AlertDefaults) {
        Terminal.line("webhooks: \(d.webhooks.isEmpty ? "-" : d.webhooks.joined(separator: ", "))")
        Terminal.line("emails:   \(d.emails.isEmpty ? "-" : d.emails.joined(separator: ", "))")
        Terminal.line("on:       \((d.on ?? AlertRule.defaults.map(\.rawValue)).joined(separator: ", "))")
        Terminal.line("smtp:     \(d.smtpConnection ?? "smtp_default")\(d.from.map { ", from \($0)" } ?? "")")
    }
}

struct AlertsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Alert deliveries, newest last: what, to whom, whether it arrived.")
    @Option(name: .long, help: "Only alerts about this DAG.") var dag: String?
    @Option(name: .long, help: "Only alerts of this rule (failure, retry, sla_miss, quarantine).") var rule: String?
    @Flag(name: .long, help: "Only alerts that could not be delivered.") var failed = false
    @Option(name: .long, help: "At most this many (the newest).") var limit = 100
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            try Alerter.deliveries(in: l, dag: dag, rule: rule, failedOnly: failed, limit: limit)
        }, text: { rows in
            if rows.isEmpty { Terminal.error("no alerts were sent\(dag.map { " about \($0)" } ?? "")") }
            for r in rows {
                let d = r.delivery
                let how = r.delivered ? "sent" : "FAILED (\(d.error ?? "?"))"
                Terminal.line("\(r.seq)  \(r.time)  \(Show.pad(d.rule, 10)) \(Show.pad(d.channel, 7)) \(Show.clip(d.target, 40))  \(how) after \(d.attempts) tr\(d.attempts == 1 ? "y" : "ies")  #\(d.sourceSeq) \(d.subject ?? "")")
            }
        })
    }
}

struct AlertsDeliver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliver", abstract: "Send every alert the log calls for that was not sent yet, then exit (for cron; waits while another process sends).")
    @OptionGroup var alerting: AlertingOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open()
            defer { l.close() }
            let alerter = alerting.alerter(l)
            let box = DeliveriesBox()
            _ = try await withInterruption {
                try await l.lead("alerts", poll: .milliseconds(500)) {
                    do { box.value = try await alerter.drain() } catch { box.error = error }
                }
            }
            if let error = box.error { throw error }
            try AlertsFollow.show(box.value, json: output.json)
            if box.value.contains(where: { $0.error != nil }) { throw ExitCode(3) }
        }
    }
}

/// What a drain under the lead returned, carried out of the lead's closure.
final class DeliveriesBox: @unchecked Sendable {
    var value: [AlertDelivery] = []
    var error: (any Error)?
}

struct AlertsFollow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow", abstract: "Send alerts as the log grows, until stopped (one process of a ledger sends; the others wait to take over).")
    @OptionGroup var alerting: AlertingOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let replication = following(l)
            defer { replication.cancel() }
            let alerter = alerting.alerter(l)
            let json = output.json
            Terminal.error("alerts: waiting to lead (one process of \(l.location) sends)")
            try await withInterruption {
                while !Task.isCancelled {
                    let lost = try await l.lead("alerts", poll: .seconds(1)) {
                        Terminal.error("alerts: sending")
                        do { try await alerter.follow { try? Self.show([$0], json: json) } } catch { Terminal.error("alerts: \(error)") }
                    }
                    if !lost { break }
                    Terminal.error("alerts: lost the lead; waiting to take it again")
                }
            }
        }
    }

    static func show(_ deliveries: [AlertDelivery], json: Bool) throws {
        for d in deliveries {
            if json { Terminal.line(try JSONOutput.text(d)); continue }
            Terminal.line("\(d.error == nil ? "sent" : "FAILED") \(d.rule) \(d.channel) \(d.target): \(d.subject ?? "")\(d.error.map { " (\($0))" } ?? "")")
        }
    }
}

struct AlertsTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test", abstract: "Send a test e-mail through the SMTP Connection (nothing is recorded), to check its settings.")
    @Argument(help: "The address to send to.") var to: String
    @Option(name: .long, help: "The Connection (default: the defaults' SMTP Connection, else smtp_default).") var smtp: String?
    @OptionGroup var ledger: LedgerOptions

    func run() async throws {
        try await reportingErrors {
            guard AlertSpec.isAddress(to) else { throw CLIFailure(message: "'\(to)' is not an address") }
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let reply = try await Alerter(ledger: l).sendTest(to: to, connection: smtp)
            Terminal.line("sent: \(reply)")
        }
    }
}
