import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

extension LedgerOptions {
    /// The ledger, its views and the forensic queries over them.
    func openForensics() async throws -> (Ledger, Forensics) {
        let (l, views) = try await openViews()
        return (l, Forensics(ledger: l, views: views))
    }
}
