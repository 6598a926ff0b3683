import ArgumentParser
import ClewLedger
import Foundation

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recompute every hash, index entry, Merkle node and checkpoint; name the first bad seq.",
        discussion: """
            Exit status 0 when the ledger is intact, 2 when verification finds a problem, 1 on other errors.

            For a PostgreSQL ledger, this host's replica is verified, and every row of the shared log is re-read \
            and checked as the server holds it now (payload digests, each batch's recorded root, the head's root), \
            and its root compared with the replica's.
            """)

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "Trust only checkpoints signed by this public key (a .pub file).")
    var publicKey: String?

    func run() async throws {
        try await reportingErrors {
            let trusted = try publicKey.map { try CheckpointPublicKey(contentsOf: URL(fileURLWithPath: $0)) }
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let start = Date()
            let report = try l.verify(trusting: trusted) { done, total in
                Terminal.progress("verifying: \(done)/\(total) events")
            }
            Terminal.endProgress()
            let shared =
                l.sharedLog == nil
                ? nil : try await l.verifyShared(trusting: trusted) { Terminal.progress("verifying the shared log: \($0) events") }
            Terminal.endProgress()
            if output.json {
                if let shared {
                    struct Both: Encodable {
                        var replica: VerifyReport
                        var shared: SharedLogVerification
                    }
                    print(try JSONOutput.text(Both(replica: report, shared: shared)))
                } else {
                    print(try JSONOutput.text(report))
                }
            } else if report.isValid {
                let seconds = Date().timeIntervalSince(start)
                print("ok: \(report.events) events, root \(report.rootHash)")
                print("    \(report.merkleNodesChecked) Merkle nodes, \(report.blobsChecked) blobs, \(report.checkpointsChecked) checkpoints checked in \(String(format: "%.2f", seconds)) s")
                if report.erasedPayloads > 0 { print("    \(report.erasedPayloads) payloads erased (their events and digests still prove)") }
            } else {
                print("FAILED: \(report.problems.count) problem(s); first bad seq: \(report.firstBadSeq.map(String.init) ?? "none (not tied to one event)")")
                for p in report.problems.prefix(20) {
                    print("  [\(p.kind)] \(p.seq.map { "seq \($0): " } ?? "")\(p.message)")
                }
            }
            if let shared, !output.json {
                if shared.isValid {
                    print("ok: \(shared.location): \(shared.events) rows re-read, \(shared.batchesChecked) batch roots and the head agree; the replica's root is the same")
                    print("    \(shared.checkpointsChecked) shared checkpoints checked, \(shared.erasedPayloads) payloads erased (each named by an erasure's record)")

                } else {
                    print("FAILED: \(shared.location): \(shared.problems.count) problem(s) in the shared log")
                    for p in shared.problems.prefix(20) { print("  [shared] \(p)") }
                }
            }
            if !report.isValid || shared?.isValid == false { throw ExitCode(2) }
        }
    }
}
