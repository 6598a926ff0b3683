import ArgumentParser
import ClewLedger
import Foundation

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recompute every hash, index entry, Merkle node and checkpoint; name the first bad seq.",
        discussion: "Exit status 0 when the ledger is intact, 2 when verification finds a problem, 1 on other errors.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "Trust only checkpoints signed by this public key (a .pub file).")
    var publicKey: String?

    func run() async throws {
        try await reportingErrors {
            let trusted = try publicKey.map { try CheckpointPublicKey(contentsOf: URL(fileURLWithPath: $0)) }
            let l = try ledger.open(readOnly: true)
            defer { l.close() }
            let start = Date()
            let report = try l.verify(trusting: trusted) { done, total in
                Terminal.progress("verifying: \(done)/\(total) events")
            }
            Terminal.endProgress()
            if output.json {
                print(try JSONOutput.text(report))
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
            if !report.isValid { throw ExitCode(2) }
        }
    }
}
