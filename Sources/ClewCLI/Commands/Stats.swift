import ArgumentParser
import ClewLedger
import Foundation

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Counts and sizes of the ledger.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let s = try l.stats()
            if output.json { print(try JSONOutput.text(s)) } else { StatsPrinter.print(s) }
        }
    }
}

enum StatsPrinter {
    static func print(_ s: LedgerStats) {
        func mib(_ n: Int) -> String { String(format: "%.2f MiB", Double(n) / 1_048_576) }
        Swift.print("ledger        \(s.id)")
        Swift.print("events        \(s.events) in \(s.streams) streams")
        if let f = s.firstTime, let t = s.lastTime { Swift.print("time span     \(f) .. \(t)") }
        Swift.print("root hash     \(s.rootHash)")
        Swift.print("block table   \(mib(s.eventTableBytes)) (\(String(format: "%.1f", s.bytesPerEvent)) bytes/event)")
        Swift.print("in use        \(mib(s.usedBytes)) of a \(mib(s.mapSize)) map (file \(mib(s.fileBytes)))")
        Swift.print("merkle nodes  \(s.merkleNodes)   blobs \(s.blobs)   dictionaries \(s.dictionaries)   checkpoints \(s.checkpoints)")
    }
}
