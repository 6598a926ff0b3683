import ArgumentParser
import ClewLedger
import ClewProjections
import ClewReplay
import Foundation

struct ExportRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-run",
        abstract: "Write a run as one self-contained file: its events, the DAG definition, stored values, chunk files, and a Merkle proof per event.")

    @Argument(help: "The run: RUN or DAG/RUN.")
    var run: String

    @Option(name: [.customShort("o"), .customLong("output")], help: "The bundle file to write.")
    var file: String

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let key = try RecordedRun.resolve(run, in: l)
            let s = try RunBundle.export(key, from: l, to: URL(fileURLWithPath: file))
            if output.json { print(try JSONOutput.text(s)); return }
            print("exported \(s.run): \(s.events) events, \(s.files) chunk files, \(s.bytes) bytes to \(file)")
            print("each event is proven against root \(s.root.prefix(16))… of ledger \(s.originLedger.prefix(8)) at size \(s.treeSize)")
        }
    }
}

struct ImportRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-run",
        abstract: "Load a run bundle into this ledger (every event's proof checked first; all or nothing), ready to replay and inspect.")

    @Argument(help: "The bundle file (from clew export-run).")
    var file: String

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let s = try await RunBundle.importBundle(from: URL(fileURLWithPath: file), into: l)
            if output.json { print(try JSONOutput.text(s)); return }
            print("imported \(s.run): \(s.events) events (\(s.skipped) already here), \(s.files) chunk files; every proof checked against root \(s.root.prefix(16))…")
            print("next: clew replay \(s.run) --ledger \(ledger.ledger)")
        }
    }
}
