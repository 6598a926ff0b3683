import ArgumentParser
import ClewLedger
import ClewModel
import Foundation

/// The retention policy kept in the ledger directory (`retention.json`), or for a shared log in the
/// shared log itself (setting `retention`, the same JSON, for every host), applied by `clew retention`.
struct RetentionPolicy: Codable, Equatable {
    /// Payloads older than this many days go.
    var keepDays: Int
    /// Only events of these types (all but the protected ones when empty).
    var types: [String]
    /// Only events of streams starting with one of these (all when empty).
    var streamPrefixes: [String]

    enum CodingKeys: String, CodingKey { case keepDays = "keep_days", types, streamPrefixes = "stream_prefixes" }

    static func url(_ ledger: URL) -> URL { ledger.appendingPathComponent("retention.json") }

    /// The setting that holds a shared log's policy.
    static let setting = "retention"

    /// The policy `ledger` keeps, if any.
    static func load(_ ledger: Ledger) async throws -> RetentionPolicy? {
        let data: Data
        let place: String
        if let log = ledger.sharedLog {
            guard let text = try await log.setting(setting) else { return nil }
            data = Data(text.utf8)
            place = "the retention setting of \(log.location)"
        } else {
            guard let file = FileManager.default.contents(atPath: url(ledger.directory).path) else { return nil }
            data = file
            place = url(ledger.directory).path
        }
        do { return try JSONDecoder().decode(RetentionPolicy.self, from: data) } catch {
            throw CLIFailure(message: "\(place) is not a retention policy: \(error)")
        }
    }

    /// Keeps `self` as `ledger`'s policy.
    func save(_ ledger: Ledger) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        if let log = ledger.sharedLog {
            try await log.setSetting(Self.setting, to: String(decoding: data, as: UTF8.self))
        } else {
            try data.write(to: Self.url(ledger.directory), options: .atomic)
        }
    }

    /// Types whose payloads retention never removes: definitions, the audit trail, tokens, the ledger's own
    /// records, and what lineage is made of (consumption, chunk life, dataset descriptions, quarantines,
    /// imports). `clew erase` can still remove them on an explicit request.
    static let protected: Set<String> = [
        EventType.dagRegistered, EventType.auditRecorded, EventType.tokenCreated, EventType.tokenRevoked, EventType.ledgerMigrated,
        EventType.payloadsErased, EventType.lineageQuarantined, EventType.valueConsumed, EventType.chunkStatusChanged,
        EventType.chunkLeaseAcquired, EventType.chunkLeaseReleased, EventType.datasetDescribed, EventType.runImported,
    ]
}

struct Retention: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove payloads older than a cut-off (once, or by the policy kept in the ledger), keeping the events and every proof.",
        discussion: """
            With --before, removes the payloads of events older than the time given; with --keep-days, saves that \
            as the ledger's policy (retention.json in the ledger directory; for a PostgreSQL ledger, in the shared \
            log, for every host) and applies it; with neither, applies \
            the saved policy. Definitions, the audit trail, tokens, the ledger's own records and lineage-bearing \
            events (value.consumed, chunk.*, dataset.described, lineage.quarantined, run.imported) are never \
            touched. Each run is recorded as a ledger.payloads_erased event; see `clew erase`.
            """)

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "Remove payloads of events before this time (ISO 8601, e.g. 2026-06-01T00:00:00Z).")
    var before: String?

    @Option(name: .long, help: "Save a policy: keep this many days of payloads (and apply it now).")
    var keepDays: Int?

    @Option(name: .long, help: "Only events of this type (repeatable).")
    var type: [String] = []

    @Option(name: .long, help: "Only events of streams starting with this (repeatable).")
    var streamPrefix: [String] = []

    @Flag(name: .long, help: "List what would be removed; remove nothing.")
    var dryRun = false

    func validate() throws {
        if before != nil && keepDays != nil { throw ValidationError("give --before or --keep-days, not both") }
        if let before, EventLineParser.parseTime(before) == nil {
            throw ValidationError("--before must be an ISO 8601 time such as 2026-06-01T00:00:00Z, got \(before)")
        }
        if let keepDays, keepDays < 1 { throw ValidationError("--keep-days must be at least 1") }
        if let t = type.first(where: RetentionPolicy.protected.contains) {
            throw ValidationError("\(t) is protected from retention (use `clew erase` for an explicit request)")
        }
    }

    struct Report: Encodable {
        var cutoff: String
        var policy: RetentionPolicy?
        var events: [UInt64]
        var dryRun: Bool
        var erasure: ErasureReport?

        enum CodingKeys: String, CodingKey { case cutoff, policy, events, dryRun = "dry_run", erasure }
    }

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: dryRun)
            var closed = false
            defer { if !closed { l.close() } }
            var policy: RetentionPolicy?
            let cutoff: Date
            if let before {
                cutoff = EventLineParser.parseTime(before)!
            } else {
                if let keepDays {
                    policy = RetentionPolicy(keepDays: keepDays, types: type, streamPrefixes: streamPrefix)
                } else if let saved = try await RetentionPolicy.load(l) {
                    policy = saved
                } else {
                    throw CLIFailure(message: "the ledger has no retention policy; give --before TIME, or --keep-days N to set one")
                }
                cutoff = Date().addingTimeInterval(-Double(policy!.keepDays) * 86_400)
            }
            let types = Set(policy?.types ?? type)
            let prefixes = policy?.streamPrefixes ?? streamPrefix
            let cutoffMicros = Int64(cutoff.timeIntervalSince1970 * 1_000_000)
            let description = ISO8601.string(micros: cutoffMicros)
            var report = Report(cutoff: description, policy: policy, events: [], dryRun: dryRun, erasure: nil)
            try l.scan { e in
                if e.timestampMicros < cutoffMicros, !e.payloadErased, !e.payload.isEmpty, !RetentionPolicy.protected.contains(e.type),
                    types.isEmpty || types.contains(e.type), prefixes.isEmpty || prefixes.contains(where: e.stream.hasPrefix)
                {
                    report.events.append(e.seq)
                }
                return true
            }
            if !dryRun, !report.events.isEmpty {
                let reason = "retention: payloads before \(description)" + (policy.map { " (policy: keep \($0.keepDays) days)" } ?? "")
                let events = report.events
                report.erasure = try await l.erasePayloads(of: events) {
                    Erase.record(events, stream: nil, reason: reason, actor: "clew-retention")
                }
            }
            if !dryRun, let policy, keepDays != nil { try await policy.save(l) }
            let directory = l.directory
            l.close()
            closed = true
            let rebuilt = !dryRun && report.erasure != nil ? try await Erase.rebuildViews(ledger, at: directory) : false

            if output.json { print(try JSONOutput.text(report)) } else if dryRun {
                print("would remove the payloads of \(report.events.count) event(s) before \(description)")
            } else if let e = report.erasure {
                print("removed the payloads of \(e.erased.count) event(s) before \(description) (\(e.bytes) bytes); recorded at seq \(e.recordSeq)")
                if rebuilt { print("  the views were rebuilt without them") }
            } else {
                print("no payloads before \(description) to remove")
            }
        }
    }
}
