import ArgumentParser
import ClewLedger
import ClewModel
import Foundation

/// Filters shared by `clew log` and `clew tail`.
struct EventFilter: ParsableArguments {
    @Option(name: .long, help: "Only events of this stream.")
    var stream: String?

    @Option(name: .long, help: "Only events of these types (repeatable).")
    var type: [String] = []

    @Option(name: .long, help: "Only events at or after this ISO 8601 time.")
    var since: String?

    @Option(name: .long, help: "Only events before this ISO 8601 time.")
    var until: String?

    func validate() throws {
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, EventLineParser.parseTime(value) == nil {
                throw ValidationError("\(name) \(value) is not an ISO 8601 time such as 2026-11-21T09:30:00Z")
            }
        }
    }

    func matches(_ event: Event) -> Bool {
        if let stream, event.stream != stream { return false }
        if !type.isEmpty, !type.contains(event.type) { return false }
        if let since, let d = EventLineParser.parseTime(since), event.time < d { return false }
        if let until, let d = EventLineParser.parseTime(until), event.time >= d { return false }
        return true
    }
}

struct Log: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print events, filtered by seq range, stream, type and time.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var filter: EventFilter
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "First seq.")
    var from: UInt64 = 1

    @Option(name: .long, help: "Last seq.")
    var to: UInt64?

    @Option(name: .long, help: "At most N events.")
    var limit: Int?

    func validate() throws {
        if let to, to < from { throw ValidationError("--to \(to) is before --from \(from)") }
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
    }

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            var printed = 0
            let limit = self.limit ?? .max
            let upper = to ?? .max
            func emit(_ e: Event) -> Bool {
                guard filter.matches(e) else { return true }
                Swift.print(output.json ? JSONOutput.line(e) : JSONOutput.humanLine(e))
                printed += 1
                return printed < limit
            }
            if let stream = filter.stream {
                // The stream index avoids scanning the whole log.
                var after = from > 0 ? from - 1 : 0
                outer: while printed < limit {
                    let batch = try l.events(inStream: stream, after: after, limit: 1_000)
                    for e in batch {
                        if e.seq > upper || !emit(e) { break outer }
                        after = e.seq
                    }
                    if batch.count < 1_000 { break }
                }
            } else if limit > 0 {
                try l.scan(from...upper) { emit($0) }
            }
        }
    }
}
