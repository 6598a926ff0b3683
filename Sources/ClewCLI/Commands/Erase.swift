import ArgumentParser
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct Erase: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the payloads of events (an erasure request), keeping the events and every proof.",
        discussion: """
            Each event keeps its envelope (time, actor, stream, type) and its payload's SHA-256, which is what \
            its Merkle leaf commits to, so every proof, checkpoint and `clew verify` still holds; `verify` counts \
            erased payloads. A `ledger.payloads_erased` event (who, which, why) is appended first; the views are \
            rebuilt without the erased payloads. A run with an erased event can no longer be replayed. \
            On a PostgreSQL ledger the record and the removal commit together in the shared log, and every \
            host's replica (and `clew mirror` copy) erases the payloads when it copies the record.
            """)

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "An event whose payload to remove (repeatable).")
    var seq: [UInt64] = []

    @Option(name: .long, help: "Remove the payloads of every event of this stream.")
    var stream: String?

    @Option(name: .long, help: "Why (an erasure request's reference); recorded.")
    var reason: String

    @Option(name: .long, help: "Who asks; recorded as the actor.")
    var actor: String = "clew-cli"

    func validate() throws {
        if seq.isEmpty && stream == nil { throw ValidationError("name the events: --seq N (repeatable) or --stream S") }
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must say why") }
    }

    func run() async throws {
        try await reportingErrors {
            let (report, directory) = try await erase()
            let rebuilt = try await Self.rebuildViews(ledger, at: directory)
            if output.json { print(try JSONOutput.text(report)) } else {
                print("erased the payloads of \(report.erased.count) event(s) (\(report.bytes) bytes, \(report.blobsDeleted) blob(s)); recorded at seq \(report.recordSeq)")
                print("  every proof and checkpoint still holds\(rebuilt ? "; the views were rebuilt without them" : "")")
            }
        }
    }

    /// The views folded what erased payloads said: opening them catches them up, and a catch-up that
    /// meets `ledger.payloads_erased` rebuilds them without those payloads (as a running `clew serve`
    /// does on its next read; other hosts' views do so once their replicas copy the record). `directory`
    /// is the ledger's (its replica's, for a shared log). Returns whether there were views.
    static func rebuildViews(_ ledger: LedgerOptions, at directory: URL) async throws -> Bool {
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("views").path) else { return false }
        let (l, _) = try await ledger.openViews()
        l.close()
        return true
    }

    private func erase() async throws -> (ErasureReport, URL) {
        let l = try await ledger.open()
        defer { l.close() }
        var seqs = seq
        if let stream {
            let inStream = try l.seqs(inStream: stream)
            if inStream.isEmpty { throw CLIFailure(message: "stream \(stream) has no events") }
            seqs += inStream
        }
        let chosen = Array(Set(seqs)).sorted()
        return (try await l.erasePayloads(of: chosen) { Self.record(chosen, stream: stream, reason: reason, actor: actor) }, l.directory)

    }

    /// The `ledger.payloads_erased` event that records an erasure (here and by `clew retention`).
    static func record(_ seqs: [UInt64], stream: String?, reason: String, actor: String) -> NewEvent {
        NewEvent(
            type: EventType.payloadsErased, stream: "ledger", actor: actor,
            payload: PayloadsErased(seqs: seqs, stream: stream, reason: reason).payloadData)
    }
}
