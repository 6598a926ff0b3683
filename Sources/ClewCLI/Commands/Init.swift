import ArgumentParser
import ClewLedger
import ClewPostgres
import Foundation

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an empty ledger: a directory, or the tables of a shared log in a PostgreSQL database.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l: Ledger
            if ledger.isShared {
                let location = try PostgresLocation(ledger.ledger)
                if let existing = try? await PostgresLog.connect(location, create: false) {
                    existing.close()
                    throw LedgerError(.alreadyExists, "\(location) already holds Clew ledger \(existing.id)")
                }
                l = try await ledger.open(create: true)
            } else {
                l = try Ledger.create(at: ledger.url, options: ledger.options(readOnly: false))
            }
            defer { l.close() }
            if output.json {
                var out = ["ledger": l.location, "id": l.id]
                if ledger.isShared { out["replica"] = l.directory.path }
                print(try JSONOutput.text(out))
            } else {
                print("created ledger \(l.id) in \(l.location)")
            }
        }
    }
}
