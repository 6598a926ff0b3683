import ArgumentParser
import ClewCore
import ClewEngine
import ClewForensics
import ClewLedger
import ClewProjections
import ClewReplay
import Foundation

/// Options every ledger command shares.
struct LedgerOptions: ParsableArguments {
    @Option(name: .long, help: "The ledger directory.")
    var ledger: String = "./clew.ledger"

    @Option(name: .long, help: "Largest size the ledger's map may grow to, in MiB.")
    var maxMapSize: Int?

    var url: URL { URL(fileURLWithPath: ledger) }

    func options(readOnly: Bool) -> Ledger.Options {
        var o = Ledger.Options()
        o.readOnly = readOnly
        if let maxMapSize {
            o.maxMapSize = maxMapSize << 20
            o.mapSize = min(o.mapSize, o.maxMapSize)
        }
        return o
    }

    func open(readOnly: Bool = false) throws -> Ledger {
        try Ledger.open(at: url, options: options(readOnly: readOnly))
    }

    func validate() throws {
        if ledger.isEmpty { throw ValidationError("--ledger must name a directory") }
        if let maxMapSize, maxMapSize < 1 { throw ValidationError("--max-map-size must be at least 1 (MiB)") }
    }
}

/// `--json` for commands whose output is data.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON.")
    var json = false
}

/// A failure the CLI reports in one line on stderr, exiting with its category's status.
struct CLIFailure: ClewError {
    var message: String
    var category: ErrorCategory = .invalidInput
    var description: String { message }
}

enum Terminal {
    static var stderrIsTTY: Bool { isatty(2) != 0 }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("clew: \(message)\n".utf8))
    }

    static func progress(_ text: String) {
        guard stderrIsTTY else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    }

    static func endProgress() {
        guard stderrIsTTY else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    /// Writes a line to stdout and flushes, so a reader (or a test) sees it at once.
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}

/// Runs a command body, turning any Clew error into one clear line on stderr and its category's exit
/// status (``ErrorCategory/exitStatus``: 2 when something does not verify, else 1). Other errors
/// (ArgumentParser's `ExitCode`, `ValidationError`, `CleanExit`) pass through to ArgumentParser.
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as any ClewError {
        Terminal.error(error.category == .storage ? "storage error: \(error)" : error.description)
        throw ExitCode(error.category.exitStatus)
    }
}
