import ArgumentParser
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

/// `--as-of` for view queries.
struct AsOfOptions: ParsableArguments {
    @Option(name: .long, help: "Answer as of a point in the log: a seq number, or a UTC time such as 2026-11-21T10:00:00Z.")
    var asOf: String?

    func seq(_ views: Views) throws -> UInt64? {
        try asOf.map { try views.seq(asOf: $0) }
    }
}

extension LedgerOptions {
    /// Opens the ledger and its views, caught up; problems found in the views are rebuilt with a notice on
    /// stderr, and long folds show a progress bar on a terminal.
    func openViews() async throws -> (Ledger, Views) {
        let ledger = try await open()
        var options = Views.Options()
        options.notice = { Terminal.error($0) }
        options.progress = ViewsProgress.bar("folding the log into the views")
        do {
            let views = try Views.open(ledger: ledger, options: options)
            Terminal.endProgress()
            return (ledger, views)
        } catch {
            Terminal.endProgress()
            ledger.close()
            throw error
        }
    }
}

enum ViewsProgress {
    /// A progress bar on stderr when it is a terminal: done/total, events/s, ETA.
    static func bar(_ label: String) -> (@Sendable (FoldProgress) -> Void)? {
        guard Terminal.stderrIsTTY else { return nil }
        return { p in
            let fraction = p.total == 0 ? 1 : Double(p.done) / Double(p.total)
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            let eta = p.etaSeconds.map { String(format: "ETA %.0fs", $0) } ?? ""
            Terminal.progress(String(format: "%@ [%@] %3.0f%%  %@/%@ events  %.0f ev/s  %@", label, bar, fraction * 100, "\(p.done)", "\(p.total)", p.eventsPerSecond, eta))
        }
    }
}

enum Show {
    static func time(_ micros: Int64?) -> String {
        guard let micros else { return "-" }
        return String(ISO8601.string(micros: micros).prefix(19)) + "Z"
    }

    static func millis(_ ms: Int64?) -> String {
        guard let ms else { return "-" }
        if ms < 1000 { return "\(ms)ms" }
        if ms < 60_000 { return String(format: "%.1fs", Double(ms) / 1000) }
        return String(format: "%dm%02ds", ms / 60_000, ms / 1000 % 60)
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s.padding(toLength: n, withPad: " ", startingAt: 0) }

    /// `s` cut to `n` characters (with … when cut).
    static func clip(_ s: String, _ n: Int) -> String { s.count <= n ? s : String(s.prefix(max(1, n - 1))) + "…" }

    /// Rows under a header, each column padded to its widest cell.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        return ([header] + rows).map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : pad(c, widths[i]) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

extension Views {
    /// The one run a user's RUN names, or a failure listing the candidates.
    func oneRun(_ text: String) throws -> RunKey {
        let keys = try resolveRun(text)
        guard let key = keys.first else { throw CLIFailure(message: "no run \(text) in the ledger (give RUN or DAG/RUN; `clew runs` lists them)") }
        guard keys.count == 1 else {
            throw CLIFailure(message: "run id \(text) is used by several DAGs: \(keys.map(\.description).joined(separator: ", ")); give DAG/RUN")
        }
        return key
    }
}
