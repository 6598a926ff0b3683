import ArgumentParser
import ClewLedger
import Foundation

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an empty ledger directory.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try Ledger.create(at: ledger.url, options: ledger.options(readOnly: false))
            defer { l.close() }
            if output.json {
                print(try JSONOutput.text(["ledger": ledger.url.path, "id": l.id]))
            } else {
                print("created ledger \(l.id) in \(ledger.url.path)")
            }
        }
    }
}
