import ArgumentParser
import ClewLedger
import ClewModel
import Foundation

struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the last events; with -f, keep printing new ones as they are appended (by any process).")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var filter: EventFilter
    @OptionGroup var output: OutputOptions

    @Option(name: .short, help: "How many of the last events to print first.")
    var n: UInt64 = 10

    @Flag(name: .shortAndLong, help: "Follow: wait for new events.")
    var follow = false

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let last = try l.lastSeq
            let first = last >= n ? last - n + 1 : 1
            if n > 0, last > 0 {
                try l.scan(first...last) { e in
                    if filter.matches(e) { Terminal.line(output.json ? JSONOutput.line(e) : JSONOutput.humanLine(e)) }
                    return true
                }
            }
            guard follow else { return }
            for try await e in l.follow(after: last) where filter.matches(e) {
                Terminal.line(output.json ? JSONOutput.line(e) : JSONOutput.humanLine(e))
            }
        }
    }
}
