import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation

struct Debug: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Step through a recorded run's variables interactively: forward, backward, breakpoints, watches, provenance.",
        discussion: "Reads commands from standard input (type help). --exec runs commands first, e.g. --exec 'b rows < 10' --exec c.\n\n" + DebugSession.help)

    @Argument(help: "The run: RUN or DAG/RUN.")
    var run: String

    @Option(name: .customLong("exec"), help: "A command to run before reading standard input (repeatable).")
    var commands: [String] = []

    @OptionGroup var ledger: LedgerOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let key = try RecordedRun.resolve(run, in: l)
            let clock = ContinuousClock.now
            let timeline = Timeline(try RecordedRun.load(key, from: l))
            let loaded = ContinuousClock.now - clock
            let session = DebugSession(timeline)
            let interactive = isatty(0) != 0
            // One unbuffered writer for everything, so prompts and answers keep their order.
            func out(_ text: String, newline: Bool = true) { FileHandle.standardOutput.write(Data((text + (newline ? "\n" : "")).utf8)) }
            let seconds = Double(loaded.components.seconds) + Double(loaded.components.attoseconds) / 1e18
            out("clew debug \(key) (\(timeline.run.status)): \(timeline.count) steps in \(timeline.run.attempts.count) attempts, loaded in \(String(format: "%.2f", seconds)) s; help lists commands")
            out(session.show())
            for c in commands {
                out("(clew) \(c)")
                out(session.handle(c))
            }
            while true {
                out("(clew) ", newline: false)
                guard let line = readLine() else { if interactive { out("") }; break }
                let t = line.trimmingCharacters(in: .whitespaces)
                if !interactive { out(t) }
                if t == "q" || t == "quit" || t == "exit" { break }
                out(session.handle(t))
            }
        }
    }
}
