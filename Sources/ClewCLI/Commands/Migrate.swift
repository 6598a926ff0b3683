import ArgumentParser
import ClewLedger
import ClewModel
import Foundation

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a ledger of an older format to the current one, keeping every event, seq and old checkpoint.",
        discussion: """
            Reads the old log whole (every record checked against its hash tag, every signed checkpoint against \
            the root recomputed at its size), copies every event with its seq into a new log, and appends one \
            `ledger.migrated` event recording the old ledger's id, size, root and checkpoints. The new log \
            replaces the old one only once it is complete and verified; the old one is kept as log.format1 \
            beside it until you remove it. Run it again to resume an interrupted migration.
            """)

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "Sign the new tree (bridge event included) with this private key (a .key file from `clew keygen`).")
    var key: String?

    func run() async throws {
        try await reportingErrors {
            try ledger.requireDirectory("migrate")
            let signingKey = try key.map { try CheckpointSigningKey(contentsOf: URL(fileURLWithPath: $0)) }
            let report = try await Ledger.migrate(
                at: ledger.url, options: ledger.options(readOnly: false),
                bridge: { facts in
                    let checkpoints = try JSONTree.parse(try JSONEncoder().encode(facts.oldCheckpoints))
                    let payload = LedgerMigrated(
                        oldLedger: facts.oldLedger, oldFormat: Int(facts.oldFormat), newFormat: 2, oldTreeSize: facts.oldTreeSize,
                        oldRoot: facts.oldRoot, oldCheckpoints: checkpoints)
                    return NewEvent(type: EventType.ledgerMigrated, stream: "ledger", actor: "clew-migrate", payload: payload.payloadData)
                },
                signingKey: signingKey,
                progress: { Terminal.progress("migrating: \($0) events copied") })
            Terminal.endProgress()
            if output.json { print(try JSONOutput.text(report)) } else {
                print("migrated \(report.facts.oldTreeSize) events from format \(report.facts.oldFormat); old root \(report.facts.oldRoot)")
                print("  \(report.facts.oldCheckpoints.count) old checkpoint(s) checked against it and recorded in ledger.migrated (seq \(report.bridgeSeq))")
                print("  new ledger \(report.facts.newLedger): \(report.treeSize) events, root \(report.rootHash)")
                if let c = report.checkpoint { print("  signed at size \(c.treeSize) by key \(c.keyID)") }
                print("  the old log is kept in \(report.oldLog); remove it once you no longer need it")
            }
        }
    }
}
