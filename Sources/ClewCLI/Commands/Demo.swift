import ArgumentParser
import ClewLedger
import ClewModel
import Foundation

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a realistic pipeline history into a ledger, checkpoint it, verify it and print stats.",
        discussion: """
            Simulates daily runs of a six-task sales pipeline (parallel extracts, validation, join, aggregate, \
            load) with hourly chunks, the five questions before every consumption, recorded variables, retries \
            and failures, appending one batch per run. Creates the ledger if needed; running it again adds \
            the following days. Signs a checkpoint with --key (created if missing, next to the ledger).
            """)

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "Daily runs to simulate.")
    var runs = 30

    @Option(name: .long, help: "Checkpoint signing key (default: <ledger>.key beside the ledger directory).")
    var key: String?

    func validate() throws {
        if runs < 1 || runs > 100_000 { throw ValidationError("--runs must be between 1 and 100000") }
    }

    struct Summary: Encodable {
        var ledger: String
        var runs: Int
        var runsSucceeded: Int
        var runsFailed: Int
        var eventsAppended: Int
        var events: UInt64
        var streams: Int
        var bytesPerEvent: Double
        var jsonlBytesPerEvent: Double
        var rootHash: String
        var checkpointSize: UInt64
        var verified: Bool
        var seconds: Double

        enum CodingKeys: String, CodingKey {
            case ledger, runs, runsSucceeded = "runs_succeeded", runsFailed = "runs_failed"
            case eventsAppended = "events_appended", events, streams, bytesPerEvent = "bytes_per_event"
            case jsonlBytesPerEvent = "jsonl_bytes_per_event", rootHash = "root_hash", checkpointSize = "checkpoint_size"
            case verified, seconds
        }
    }

    func run() async throws {
        try await reportingErrors {
            let started = Date()
            let l = try Ledger.openOrCreate(at: ledger.url, options: ledger.options(readOnly: false))
            defer { l.close() }
            let last = try l.lastSeq
            var pipeline = DemoPipeline(seed: 42 &+ last)
            if last > 0, let lastEvent = try l.event(at: last) {
                let day: Int64 = 86_400_000_000
                pipeline.start = (lastEvent.timestampMicros / day + 1) * day + 7_200_000_000
            }
            let domain = pipeline.events(runs: runs)
            var jsonl = 0
            var byStream: [(String, [NewEvent])] = []
            for e in domain {
                jsonl += e.jsonLine.utf8.count + 1
                if byStream.last?.0 != e.stream { byStream.append((e.stream, [])) }
                byStream[byStream.count - 1].1.append(NewEvent(domain: e))
            }
            var succeeded = 0
            var failed = 0
            for (i, (_, batch)) in byStream.enumerated() {
                try await l.append(contentsOf: batch)
                if batch.last?.type == EventType.runSucceeded { succeeded += 1 }
                if batch.last?.type == EventType.runFailed { failed += 1 }
                Terminal.progress("demo: run \(i)/\(byStream.count - 1)")
            }
            Terminal.endProgress()

            let keyURL = URL(fileURLWithPath: key ?? (ledger.url.standardizedFileURL.path + ".key"))
            if !FileManager.default.fileExists(atPath: keyURL.path) {
                try CheckpointSigningKey.generate().write(to: keyURL)
                if !output.json { print("created checkpoint signing key \(keyURL.path) (and .pub)") }
            }
            let signingKey = try CheckpointSigningKey(contentsOf: keyURL)
            let checkpoint = try l.checkpoint(signedWith: signingKey)
            let report = try l.verify(trusting: signingKey.publicKey)
            let stats = try l.stats()
            let summary = Summary(
                ledger: ledger.url.path, runs: runs, runsSucceeded: succeeded, runsFailed: failed,
                eventsAppended: domain.count, events: stats.events, streams: stats.streams,
                bytesPerEvent: stats.bytesPerEvent, jsonlBytesPerEvent: Double(jsonl) / Double(domain.count),
                rootHash: stats.rootHash, checkpointSize: checkpoint.treeSize, verified: report.isValid,
                seconds: Date().timeIntervalSince(started))
            if output.json {
                print(try JSONOutput.text(summary))
            } else {
                print("recorded \(runs) daily runs of \(pipeline.dag): \(succeeded) succeeded, \(failed) failed (\(domain.count) events)")
                print("signed checkpoint at \(checkpoint.treeSize) events, key \(checkpoint.keyID)")
                print(report.isValid
                    ? "verify: ok (\(report.events) events, \(report.merkleNodesChecked) Merkle nodes, \(report.checkpointsChecked) checkpoints)"
                    : "verify: FAILED at seq \(report.firstBadSeq.map(String.init) ?? "?")")
                print("")
                StatsPrinter.print(stats)
                print(String(format: "JSON lines    %.1f bytes/event for the same events (ledger is %.2fx that)",
                             summary.jsonlBytesPerEvent, stats.bytesPerEvent / summary.jsonlBytesPerEvent))
                print("")
                print("try: clew log --ledger \(ledger.ledger) --type run.failed")
                print("     clew proof inclusion \(max(1, stats.events / 2)) --ledger \(ledger.ledger)")
            }
            if !report.isValid { throw ExitCode(2) }
        }
    }
}
