import Dispatch
public import Foundation
public import Logging
import Synchronization

/// A Clew ledger: a directory holding the append-only, hash-chained event log.
///
/// ```swift
/// let ledger = try Ledger.create(at: URL(fileURLWithPath: "clew.ledger"))
/// let seq = try await ledger.append(NewEvent(type: "run.started", stream: "run/etl/1"))
/// let event = try ledger.event(at: seq)
/// ```
///
/// Appends from any number of tasks are coalesced into group commits on one writer queue and return
/// only once durable. Several processes may append to one ledger; LMDB's writer lock serialises them.
public final class Ledger: Sendable {
    /// How a ledger is opened.
    public struct Options: Sendable {
        /// Initial map size; the map doubles on demand up to ``maxMapSize``.
        public var mapSize: Int = 64 << 20
        /// The largest the map may grow to. An append that would need more fails with
        /// ``LedgerError/Code/mapFull`` and writes nothing.
        public var maxMapSize: Int = 1 << 40
        /// Open for reading only (also works on a read-only medium).
        public var readOnly = false
        /// zstd level for blocks (dictionaries are built at this level too). Level 1: in blocks with a
        /// trained dictionary, level 3 saved ~1% of the bytes for ~30% less append throughput.
        public var compressionLevel: Int32 = 1
        /// Log sizes at which a zstd dictionary is (re)trained from recent events.
        public var dictionaryTrainingPoints: [UInt64] = [1_000, 100_000]
        /// Largest dictionary to train, in bytes.
        public var dictionaryCapacity = 16 << 10
        /// Most events one group commit takes from the queue (whole appends are never split).
        public var maxGroupEvents = 50_000
        public var logger = Logger(label: "clew.ledger", factory: { _ in SwiftLogNoOpLogHandler() })
        /// Commit without fsync (scratch ledgers of the fuzz driver only: a crash may lose what was
        /// acknowledged, which no real ledger may).
        package var noSync = false

        public init() {}
    }

    /// The ledger directory.
    public let directory: URL
    /// The ledger's identity, written at creation (also the origin line of its checkpoints).
    public let id: String
    let options: Options
    let store: LogStore
    let writer: Writer
    let changes = ChangeNotifier()
    /// The shared log this ledger replicates and appends to (nil for an LMDB ledger of its own).
    let upstream: (any SharedLog)?
    /// Whether appends are refused (a read-only open of a ledger over a shared log, whose replica must
    /// still be written to keep up).
    let refusesAppends: Bool

    /// Name of the marker file that makes a directory a ledger.
    public static let markerName = "LEDGER"

    init(directory: URL, id: String, options: Options, replicaOf: String? = nil, upstream: (any SharedLog)? = nil) throws {
        self.directory = directory
        self.id = id
        self.upstream = upstream
        refusesAppends = options.readOnly
        var options = options
        if upstream != nil { options.readOnly = false }  // the replica keeps up even for a reader
        self.options = options
        var envOptions = Environment.Options()
        envOptions.mapSize = options.mapSize
        envOptions.maxMapSize = max(options.maxMapSize, options.mapSize)
        envOptions.readOnly = options.readOnly
        envOptions.noSync = options.noSync
        let env = try Ledger.wrapOpenErrors(directory) {
            try Environment(path: directory.appendingPathComponent("log").path, options: envOptions)
        }
        store = try LogStore(env: env, compressionLevel: options.compressionLevel, replicaOf: replicaOf)
        writer = Writer(store: store, options: options, changes: changes)
    }

    /// Creates a new, empty ledger in `directory` (created if missing; must not already hold a ledger).
    /// - Throws: ``LedgerError`` with `.alreadyExists`, `.readOnly`, or the underlying file error.
    public static func create(at directory: URL, options: Options = Options()) throws -> Ledger {
        let fm = FileManager.default
        let marker = directory.appendingPathComponent(markerName)
        if fm.fileExists(atPath: marker.path) {
            throw LedgerError(.alreadyExists, "\(directory.path) already holds a Clew ledger")
        }
        do {
            try fm.createDirectory(at: directory.appendingPathComponent("log"), withIntermediateDirectories: true)
            let info = LedgerMarker(
                format: LedgerMarker.formatName, version: LogStore.formatVersion, id: UUID().uuidString.lowercased(),
                created: ISO8601DateFormatter().string(from: Date()))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            // Write the marker last-but-atomically so a half-created directory is never taken for a ledger.
            let ledger = try Ledger(directory: directory, id: info.id, options: options)
            try encoder.encode(info).write(to: marker, options: .atomic)
            return ledger
        } catch let error as LedgerError {
            throw error
        } catch let error as CocoaError where error.code == .fileWriteNoPermission || error.code == .fileWriteVolumeReadOnly {
            throw LedgerError(.readOnly, "cannot create a ledger in \(directory.path): permission denied")
        } catch {
            throw LedgerError(.invalidInput, "cannot create a ledger in \(directory.path): \(error)")
        }
    }

    /// Opens the ledger in `directory`.
    /// - Throws: ``LedgerError`` with `.notALedger` when the directory holds no ledger, `.readOnly` when
    ///   a writable open is refused, `.corrupted` for a damaged data file.
    public static func open(at directory: URL, options: Options = Options()) throws -> Ledger {
        let marker = directory.appendingPathComponent(markerName)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw LedgerError(.notALedger, "\(directory.path) does not exist; create a ledger there with `clew init`")
        }
        guard let data = FileManager.default.contents(atPath: marker.path) else {
            throw LedgerError(
                .notALedger, "\(directory.path) is not a Clew ledger (no \(markerName) file); create one with `clew init`")
        }
        let info: LedgerMarker
        do { info = try JSONDecoder().decode(LedgerMarker.self, from: data) } catch {
            throw LedgerError(.notALedger, "\(marker.path) is not a Clew ledger marker: \(error)")
        }
        guard info.format == LedgerMarker.formatName else {
            throw LedgerError(.notALedger, "\(marker.path) names format \(info.format), not \(LedgerMarker.formatName)")
        }
        guard info.version >= LogStore.formatVersion else {
            throw LedgerError(
                .unsupportedFormat,
                "\(directory.path) is a ledger of format \(info.version); this build writes format \(LogStore.formatVersion). "
                    + "Convert it with `clew migrate --ledger \(directory.path)` (every event, seq and checkpoint is kept; the old root is recorded)")
        }
        guard info.version <= LogStore.formatVersion else {
            throw LedgerError(
                .unsupportedFormat,
                "\(directory.path) was written by a newer Clew (format \(info.version); this build reads up to \(LogStore.formatVersion))")
        }
        return try Ledger(directory: directory, id: info.id, options: options, replicaOf: info.upstream)
    }

    /// Opens the ledger in `directory`, creating it first if the directory holds none.
    public static func openOrCreate(at directory: URL, options: Options = Options()) throws -> Ledger {
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent(markerName).path) {
            return try open(at: directory, options: options)
        }
        return try create(at: directory, options: options)
    }

    private static func wrapOpenErrors<T>(_ directory: URL, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as LMDBError {
            switch error {
            case .permissionDenied, .readOnlyFileSystem:
                throw LedgerError(
                    .readOnly,
                    "cannot open \(directory.path) for writing: \(error == .permissionDenied ? "permission denied" : "read-only file system")",
                    underlying: error)
            case LMDBError.invalid, LMDBError.versionMismatch, LMDBError.corrupted:
                throw LedgerError(.corrupted, "the log of \(directory.path) is not a valid LMDB environment: \(error)", underlying: error)
            case .noSuchFile:
                throw LedgerError(.notALedger, "\(directory.path) has no log/ environment", underlying: error)
            default:
                throw LedgerError(.corrupted, "cannot open the log of \(directory.path): \(error)", underlying: error)
            }
        }
    }

    /// Closes the ledger (and its shared log's connections); later calls fail with
    /// ``LedgerError/Code/closed``.
    public func close() {
        writer.shutdown()
        store.env.close()
        upstream?.close()
    }

    /// Whether the ledger was opened read-only (a ledger over a shared log keeps its replica writable).
    public var isReadOnly: Bool { options.readOnly }

    /// Where the log lives: the shared log's location, or the ledger directory.
    public var location: String { upstream?.location ?? directory.path }
}

/// The `LEDGER` marker file.
struct LedgerMarker: Codable {
    static let formatName = "clew-ledger"
    var format: String
    var version: UInt32
    var id: String
    var created: String
    /// For a replica of a shared log: where that log is (no password).
    var upstream: String?
}
