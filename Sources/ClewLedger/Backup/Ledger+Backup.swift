import ClewCore
public import Foundation

/// What ``Ledger/backup(to:)`` copied.
public struct BackupReport: Codable, Sendable {
    public var ledger: String
    public var directory: String
    /// The copy's tree size and root: the snapshot is the log as of one moment, every event before it.
    public var treeSize: UInt64
    public var rootHash: String
    public var bytes: Int
    public var checkpoints: Int

    enum CodingKeys: String, CodingKey {
        case ledger, directory, treeSize = "tree_size", rootHash = "root_hash", bytes, checkpoints
    }
}

/// What ``Ledger/restore(from:to:trusting:)`` checked and wrote.
public struct RestoreReport: Codable, Sendable {
    public var ledger: String
    public var directory: String
    public var verify: VerifyReport
    /// The latest checkpoint signed by the trusted key, when one was given.
    public var trustedCheckpoint: SignedCheckpoint?

    enum CodingKeys: String, CodingKey {
        case ledger, directory, verify, trustedCheckpoint = "trusted_checkpoint"
    }
}

extension Ledger {
    /// Copies this ledger into `directory` (which must not exist, or be empty): one consistent,
    /// compacted snapshot of the log, taken while appends go on, with the ledger's marker beside it.
    /// The copy is a ledger of its own; ``restore(from:to:trusting:)`` checks it before it becomes one
    /// in use. Views are not copied: they are rebuilt from the log.
    /// - Throws: ``LedgerError`` `.alreadyExists` when `directory` holds anything; file and LMDB errors.
    public func backup(to directory: URL) throws -> BackupReport {
        let fm = FileManager.default
        if let contents = try? fm.contentsOfDirectory(atPath: directory.path), !contents.isEmpty {
            throw LedgerError(.alreadyExists, "\(directory.path) is not empty; a backup goes into a new or empty directory")
        }
        let log = directory.appendingPathComponent("log")
        try fm.createDirectory(at: log, withIntermediateDirectories: true)
        try store.env.copy(to: log.path)
        let marker = directory.appendingPathComponent(Self.markerName)
        try fm.copyItem(at: self.directory.appendingPathComponent(Self.markerName), to: marker)
        var options = Options()
        options.readOnly = true
        let copy = try Ledger.open(at: directory, options: options)
        defer { copy.close() }
        let (size, root) = try copy.root()
        let bytes = (try? fm.attributesOfItem(atPath: log.appendingPathComponent("data.mdb").path)[.size] as? Int) ?? 0
        return BackupReport(
            ledger: id, directory: directory.path, treeSize: size, rootHash: root.hex, bytes: bytes, checkpoints: try copy.checkpoints().count)
    }

    /// Makes the backup in `backup` the ledger in `directory` (which must not hold a ledger), once it has
    /// passed ``verify(trusting:progress:)`` in full: every record, tag, payload digest, index entry,
    /// Merkle node and checkpoint, and, with `trusted`, at least one checkpoint signed by that key. A
    /// backup that fails any check is refused and nothing is written.
    /// - Throws: ``LedgerError`` `.verificationFailed` naming the first problem; `.alreadyExists` when
    ///   `directory` holds a ledger; `.notALedger` when `backup` is not one.
    public static func restore(from backup: URL, to directory: URL, trusting trusted: CheckpointPublicKey? = nil) throws -> RestoreReport {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.appendingPathComponent(markerName).path) {
            throw LedgerError(.alreadyExists, "\(directory.path) already holds a ledger; restore into a new directory")
        }
        var options = Options()
        options.readOnly = true
        let source = try Ledger.open(at: backup, options: options)
        defer { source.close() }
        let report = try source.verify(trusting: trusted)
        if let problem = report.problems.first {
            throw LedgerError(
                .verificationFailed,
                "the backup in \(backup.path) does not verify (\(report.problems.count) problem(s); first: \(problem.seq.map { "seq \($0): " } ?? "")\(problem.message)); nothing was restored")
        }
        var latest: SignedCheckpoint?
        if let trusted {
            latest = try source.checkpoints().last { $0.keyID == trusted.keyID && $0.hasValidSignature(trusting: trusted) }
            guard latest != nil else {
                throw LedgerError(
                    .verificationFailed,
                    "the backup in \(backup.path) has no checkpoint signed by key \(trusted.keyID); nothing was restored")
            }
        }
        // Into a sibling directory first, moved into place whole.
        let staging = directory.deletingLastPathComponent().appendingPathComponent(".\(directory.lastPathComponent).restoring")
        try? fm.removeItem(at: staging)
        try fm.createDirectory(at: staging.appendingPathComponent("log"), withIntermediateDirectories: true)
        do {
            try source.store.env.copy(to: staging.appendingPathComponent("log").path)
            try fm.copyItem(at: backup.appendingPathComponent(markerName), to: staging.appendingPathComponent(markerName))
            if fm.fileExists(atPath: directory.path) {
                guard (try fm.contentsOfDirectory(atPath: directory.path)).isEmpty else {
                    throw LedgerError(.alreadyExists, "\(directory.path) is not empty; restore into a new or empty directory")
                }
                try fm.removeItem(at: directory)
            }
            try fm.moveItem(at: staging, to: directory)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
        return RestoreReport(ledger: source.id, directory: directory.path, verify: report, trustedCheckpoint: latest)
    }
}
