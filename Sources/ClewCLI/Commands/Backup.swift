import ArgumentParser
import ClewLedger
import Foundation

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the ledger into a new directory: one consistent, compacted snapshot, taken while appends go on.",
        discussion: "The copy is a ledger of its own (views are not copied; they are rebuilt from the log). Bring it back with `clew restore`, which verifies it first.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "A new (or empty) directory for the copy.")
    var directory: String

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let report = try l.backup(to: URL(fileURLWithPath: directory))
            if output.json { print(try JSONOutput.text(report)) } else {
                print("backed up \(report.treeSize) events (root \(report.rootHash)) to \(report.directory)")
                print("  \(report.bytes) bytes, \(report.checkpoints) checkpoint(s)")
            }
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a backup the ledger at --ledger, once it verifies in full (and, with --public-key, carries a checkpoint by that key).",
        discussion: "Exit status 2 when the backup does not verify; nothing is written then.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The backup directory (from `clew backup`).")
    var backup: String

    @Option(name: .long, help: "Require a checkpoint signed by this public key (a .pub file), and trust only its checkpoints.")
    var publicKey: String?

    func run() async throws {
        try await reportingErrors {
            let trusted = try publicKey.map { try CheckpointPublicKey(contentsOf: URL(fileURLWithPath: $0)) }
            try ledger.requireDirectory("restore")
            let report = try Ledger.restore(from: URL(fileURLWithPath: backup), to: ledger.url, trusting: trusted)
            if output.json { print(try JSONOutput.text(report)) } else {
                print("restored \(report.verify.events) events (root \(report.verify.rootHash)) to \(report.directory)")
                if let c = report.trustedCheckpoint { print("  latest checkpoint by key \(c.keyID): size \(c.treeSize)") }
            }
        }
    }
}
