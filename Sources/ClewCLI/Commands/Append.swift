import ArgumentParser
import ClewLedger
import Foundation

struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append events read as JSON lines from standard input.",
        discussion: """
            Each line is an object: {"type": "task.started", "stream": "run/etl/7", "actor": "worker-1", \
            "time": "2026-11-21T09:30:00Z", "payload": {...}}. actor and time are optional; payload is any JSON. \
            Every line is checked before anything is written: one bad line appends nothing. The events of one \
            call get consecutive seqs and are committed atomically (or in durable groups of --commit-every).
            """)

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "Actor for lines that name none.")
    var actor = "clew-cli"

    @Option(name: .long, help: "Commit in durable groups of N events, printing each acknowledged range as it lands.")
    var commitEvery: Int?

    func validate() throws {
        if let commitEvery, commitEvery < 1 { throw ValidationError("--commit-every must be at least 1") }
    }

    func run() async throws {
        try await reportingErrors {
            let input = FileHandle.standardInput.readDataToEndOfFile()
            guard let text = String(data: input, encoding: .utf8) else {
                throw CLIFailure(message: "standard input is not UTF-8 text; nothing was appended")
            }
            let events: [NewEvent]
            do { events = try EventLineParser(defaultActor: actor).parse(text) } catch {
                throw CLIFailure(message: "\(error); nothing was appended")
            }
            let l = try await ledger.open()
            defer { l.close() }
            if let commitEvery {
                var start = 0
                while start < events.count {
                    let end = min(start + commitEvery, events.count)
                    let seqs = try await l.append(contentsOf: Array(events[start..<end]))
                    Terminal.line(summary(seqs))
                    start = end
                }
                if events.isEmpty { Terminal.line(summary(0..<0)) }
            } else {
                let seqs = try await l.append(contentsOf: events)
                Terminal.line(summary(seqs))
            }
        }
    }

    private func summary(_ seqs: Range<UInt64>) -> String {
        if output.json {
            return seqs.isEmpty
                ? #"{"count":0}"#
                : #"{"count":\#(seqs.count),"first":\#(seqs.lowerBound),"last":\#(seqs.upperBound - 1)}"#
        }
        if seqs.isEmpty { return "appended 0 events" }
        return seqs.count == 1
            ? "appended 1 event: seq \(seqs.lowerBound)"
            : "appended \(seqs.count) events: seqs \(seqs.lowerBound)-\(seqs.upperBound - 1)"
    }
}
