import ArgumentParser
import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild views from the log: into a fresh database, then swapped in atomically.",
        discussion: "A crash or Ctrl-C during a rebuild leaves the old views in place and valid.")

    @OptionGroup var selection: ViewSelection
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try await ledger.openViews()
            defer { l.close() }
            let names = selection.names
            let started = Date()
            let parts = try views.rebuild(names, progress: ViewsProgress.bar("rebuilding \(names.map(\.rawValue).joined(separator: ", "))"))
            Terminal.endProgress()
            let seconds = Date().timeIntervalSince(started)
            let seq = try l.lastSeq
            if output.json {
                Terminal.line(try JSONOutput.text(RebuildReport(
                    views: names.map(\.rawValue), events: seq, seconds: seconds, foldSeconds: parts.foldSeconds, packSeconds: parts.packSeconds)))
            } else {
                Terminal.line(String(
                    format: "rebuilt %@ from %llu events in %.2fs (%.0f events/s; fold %.2fs, pack %.2fs)", names.map(\.rawValue).joined(separator: ", "),
                    seq, seconds, Double(seq) / max(seconds, 1e-9), parts.foldSeconds, parts.packSeconds))
            }
        }
    }

    struct RebuildReport: Encodable {
        var views: [String]
        var events: UInt64
        var seconds: Double
        /// The rebuild's parts: folding the log, and packing each view into the generation swapped in.
        var foldSeconds: Double
        var packSeconds: Double

        enum CodingKeys: String, CodingKey {
            case views, events, seconds, foldSeconds = "fold_seconds", packSeconds = "pack_seconds"
        }
    }
}

struct ViewsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "views", abstract: "Check the views.", subcommands: [ViewsVerify.self, ViewsStatus.self])
}

struct ViewsVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Fold the log into scratch views and compare a digest per view with the live ones.",
        discussion: "Exit status: 0 when every view equals a fresh fold, 2 naming each view that differs.")

    @OptionGroup var selection: ViewSelection
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let ledger = try await self.ledger.open()
            defer { ledger.close() }
            // Open without repairing, so a damaged view is reported rather than silently rebuilt.
            var options = Views.Options()
            options.integrityScanLimit = 0
            options.progress = ViewsProgress.bar("verifying")
            let views: Views
            do {
                views = try Views.openForVerify(ledger: ledger, options: options)
            }
            let names = selection.names
            let results = try views.verify(names, progress: ViewsProgress.bar("folding a fresh copy"))
            Terminal.endProgress()
            if output.json {
                Terminal.line(try JSONOutput.text(results))
            } else {
                for r in results {
                    if r.equal {
                        Terminal.line("\(Show.pad(r.view, 8)) ok        seq \(r.checkpoint)  \(r.records) records  digest \(r.liveDigest.prefix(16))")
                    } else {
                        Terminal.line("\(Show.pad(r.view, 8)) DIFFERS   seq \(r.checkpoint)  live \(r.liveDigest.prefix(16)) fresh \(r.freshDigest.prefix(16)): \(r.firstDifference ?? "")")
                    }
                }
            }
            let bad = results.filter { !$0.equal }.map(\.view)
            if !bad.isEmpty {
                throw CLIFailure(message: "views differ from a fresh fold of the log: \(bad.joined(separator: ", ")) (`clew rebuild` restores them)", category: .verificationFailed)
            }
        }
    }
}

struct ViewsStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Each view's checkpoint, generation and size.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try await ledger.openViews()
            defer { l.close() }
            let status = try views.status()
            if output.json { Terminal.line(try JSONOutput.text(status)); return }
            for s in status {
                Terminal.line("\(Show.pad(s.view, 8)) seq \(s.checkpoint) of \(s.logSeq)  \(Show.pad(s.generation, 12)) \(String(format: "%.2f MiB", Double(s.bytes) / 1_048_576))  \(s.records) records")
            }
        }
    }
}

/// `--view NAME` (repeatable) for commands that work on some views; all views when none is given.
struct ViewSelection: ParsableArguments {
    @Option(name: .long, help: "Only this view (runs, chunks, lineage, values); repeatable.")
    var view: [String] = []

    var names: [ViewName] { view.isEmpty ? ViewName.allCases : view.compactMap(ViewName.init(rawValue:)) }

    func validate() throws {
        for v in view where ViewName(rawValue: v) == nil {
            throw ValidationError("--view \(v) is not a view; one of \(ViewName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }
}
