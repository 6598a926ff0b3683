import ArgumentParser
import ClewCore
import ClewEngine
import ClewForensics
import ClewLedger
import ClewPostgres
import ClewProjections
import ClewReplay
import Foundation

/// Options every ledger command shares.
struct LedgerOptions: ParsableArguments {
    @Option(
        name: .long,
        help: """
            The ledger: a directory (LMDB, the default), or a PostgreSQL URL \
            (postgres://USER:PASSWORD@HOST:PORT/DATABASE) shared by many hosts. Default: $CLEW_LEDGER, else ./clew.ledger.
            """)
    var ledger: String = ProcessInfo.processInfo.environment["CLEW_LEDGER"] ?? "./clew.ledger"

    @Option(
        name: .long,
        help: """
            For a PostgreSQL ledger: the directory of this host's replica of the log and its views. \
            Default: $CLEW_CACHE, else ~/.cache/clew/LEDGER-ID.
            """)
    var cache: String?

    @Option(name: .long, help: "Largest size the ledger's map (the replica's, for PostgreSQL) may grow to, in MiB.")
    var maxMapSize: Int?

    /// Whether the ledger is a PostgreSQL log rather than a directory.
    var isShared: Bool { PostgresLocation.isURL(ledger) }

    /// The ledger directory (for a PostgreSQL ledger, use the opened ledger's `directory`, its replica).
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

    /// Opens the ledger: the directory, or this host's replica of the PostgreSQL log, brought up to date.
    /// - Parameter create: create the ledger (the directory, or the tables) when there is none.
    func open(readOnly: Bool = false, create: Bool = false) async throws -> Ledger {
        guard isShared else {
            let o = options(readOnly: readOnly)
            return try create ? Ledger.openOrCreate(at: url, options: o) : Ledger.open(at: url, options: o)
        }
        let log = try await PostgresLog.connect(try PostgresLocation(ledger), create: create)
        do {
            return try await Ledger.replica(of: log, at: replicaDirectory(id: log.id), options: options(readOnly: readOnly))
        } catch {
            log.close()
            throw error
        }
    }

    /// Where this host keeps its replica of the shared log `id`.
    func replicaDirectory(id: String) -> URL {
        if let dir = cache ?? ProcessInfo.processInfo.environment["CLEW_CACHE"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("clew").appendingPathComponent(id)
    }

    /// Refuses a command that works on a ledger directory only.
    func requireDirectory(_ command: String) throws {
        if isShared {
            throw CLIFailure(message: "clew \(command) works on a ledger directory; \(ledger.prefix(while: { $0 != ":" })):// ledgers are not supported by it yet")
        }
    }

    func validate() throws {
        if ledger.isEmpty { throw ValidationError("--ledger must name a directory or a PostgreSQL URL") }
        if isShared {
            do { _ = try PostgresLocation(ledger) } catch let error as LedgerError { throw ValidationError(error.message) }
        }
        if let maxMapSize, maxMapSize < 1 { throw ValidationError("--max-map-size must be at least 1 (MiB)") }
    }
}

/// Keeps a ledger over a shared log following it (every host's appends) until the task is cancelled;
/// copy failures are reported and retried. Nothing to do for a ledger directory.
func following(_ ledger: Ledger) -> Task<Void, Never> {
    Task {
        await ledger.replicate { error in
            Terminal.error("copying from \(ledger.location) failed (retrying): \(error)")
            return true
        }
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
