import ClewCore
public import Foundation

/// What a migration found in the old log and wrote to the new one.
public struct MigrationFacts: Sendable, Codable {
    /// The old ledger's id, format, tree size and root (recomputed from every record while copying).
    public var oldLedger: String
    public var oldFormat: UInt32
    public var oldTreeSize: UInt64
    public var oldRoot: String
    /// The old log's signed checkpoints, each checked (signature, and root against the recomputed tree)
    /// before anything was written.
    public var oldCheckpoints: [SignedCheckpoint]
    /// The new ledger's id.
    public var newLedger: String

    enum CodingKeys: String, CodingKey {
        case oldLedger = "old_ledger", oldFormat = "old_format", oldTreeSize = "old_tree_size", oldRoot = "old_root"
        case oldCheckpoints = "old_checkpoints", newLedger = "new_ledger"
    }
}

/// The outcome of ``Ledger/migrate(at:options:bridge:signingKey:progress:)``.
public struct MigrationReport: Sendable, Codable {
    public var facts: MigrationFacts
    /// The new log's size (the old events and the bridge event) and root.
    public var treeSize: UInt64
    public var rootHash: String
    /// The bridge event's seq (the last one).
    public var bridgeSeq: UInt64
    /// Where the old log was kept (`log.format1` in the ledger directory).
    public var oldLog: String
    /// The new log's checkpoint, when a key was given.
    public var checkpoint: SignedCheckpoint?

    enum CodingKeys: String, CodingKey {
        case facts, treeSize = "tree_size", rootHash = "root_hash", bridgeSeq = "bridge_seq", oldLog = "old_log", checkpoint
    }
}

extension Ledger {
    /// Converts the format 1 ledger in `directory` to the current format.
    ///
    /// Every event is copied with its seq, time, actor, stream, type, schema version, payload and unknown
    /// fields; the old log is read whole first, every record checked against its hash tag and every
    /// stored checkpoint against the root recomputed at its size, and nothing changes if any check
    /// fails. Then `bridge` builds one last event that records the old id, size, root and checkpoints,
    /// so what was signed before stays checkable against the old root; with `signingKey`, the new tree
    /// (bridge included) is signed. The new log replaces `log/` only once it is complete and verified;
    /// the old one is kept as `log.format1` until the operator removes it. An interrupted migration is
    /// resumed by running it again.
    ///
    /// Why the bridge is last, not first: the events keep their seqs, so every reference to one (views,
    /// bundles, proofs, people's notes) still names the same event.
    public static func migrate(
        at directory: URL, options: Options = Options(), bridge: (MigrationFacts) throws -> NewEvent,
        signingKey: CheckpointSigningKey? = nil, progress: ((UInt64) -> Void)? = nil
    ) async throws -> MigrationReport {
        let fm = FileManager.default
        let marker = directory.appendingPathComponent(markerName)
        guard let data = fm.contents(atPath: marker.path), let info = try? JSONDecoder().decode(LedgerMarker.self, from: data) else {
            throw LedgerError(.notALedger, "\(directory.path) is not a Clew ledger (no readable \(markerName) file)")
        }
        guard info.version < LogStore.formatVersion else {
            throw LedgerError(.invalidInput, "\(directory.path) is already a ledger of format \(info.version); there is nothing to migrate")
        }
        let oldLog = directory.appendingPathComponent("log.format1")
        let live = directory.appendingPathComponent("log")
        // A resumed migration finds the old log already moved aside.
        let source = fm.fileExists(atPath: oldLog.path) ? oldLog : live
        let work = directory.appendingPathComponent(".migrating")
        try? fm.removeItem(at: work)

        let legacy = try LegacyLog(path: source.path)
        defer { legacy.close() }
        let checkpoints = try legacy.storedCheckpoints()
        let sizes = Set(checkpoints.map(\.treeSize))
        var rootsAt: [UInt64: MerkleHash] = sizes.contains(0) ? [0: Merkle.emptyRoot] : [:]

        let target = try Ledger.create(at: work, options: options)
        var closed = false
        defer { if !closed { target.close() } }
        // Copy as it reads (the new log is not the ledger until the swap below, so a check that fails
        // later leaves the old ledger as it was).
        var frontier = MerkleFrontier()
        var dictionaries: [UInt32: ZstdDictionary] = [:]
        var count: UInt64 = 0
        while true {
            let records = try legacy.records(from: count + 1, limit: 10_000, dictionaries: &dictionaries)
            if records.isEmpty { break }
            for record in records {
                frontier.append(record.leaf) { _, _, _ in }
                if sizes.contains(record.event.seq) { rootsAt[record.event.seq] = frontier.root }
            }
            let range = try await target.append(contentsOf: records.map(\.event.draft))
            guard range.lowerBound == count + 1 else {
                throw LedgerError(.corrupted, "the new log assigned seq \(range.lowerBound) where \(count + 1) was expected")
            }
            count = range.upperBound - 1
            progress?(count)
        }
        for checkpoint in checkpoints {
            guard checkpoint.origin == info.id, checkpoint.hasValidSignature() else {
                throw LedgerError(.verificationFailed, "the old checkpoint at size \(checkpoint.treeSize) has an invalid signature; nothing was migrated")
            }
            guard let root = rootsAt[checkpoint.treeSize], root.hex == checkpoint.rootHash else {
                throw LedgerError(
                    .verificationFailed,
                    "the old checkpoint at size \(checkpoint.treeSize) does not match the old log's root there; nothing was migrated")
            }
        }
        let facts = MigrationFacts(
            oldLedger: info.id, oldFormat: info.version, oldTreeSize: count, oldRoot: frontier.root.hex, oldCheckpoints: checkpoints,
            newLedger: target.id)
        let bridgeSeq = try await target.append(try bridge(facts))
        let signed = try signingKey.map { try target.signCheckpoint($0) }
        let report = try target.verify()
        guard report.isValid, report.events == count + 1 else {
            throw LedgerError(
                .corrupted, "the new log did not verify (\(report.problems.first?.message ?? "\(report.events) events")); the old ledger is unchanged")
        }
        target.close()
        closed = true

        // Swap: old log aside, new log in, then the marker (written atomically) makes it a format 2 ledger.
        if source == live { try fm.moveItem(at: live, to: oldLog) }
        try? fm.removeItem(at: live)
        try fm.moveItem(at: work.appendingPathComponent("log"), to: live)
        let newMarker = LedgerMarker(format: LedgerMarker.formatName, version: LogStore.formatVersion, id: facts.newLedger, created: info.created)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(newMarker).write(to: marker, options: .atomic)
        try? fm.removeItem(at: work)
        return MigrationReport(
            facts: facts, treeSize: report.events, rootHash: report.rootHash, bridgeSeq: bridgeSeq, oldLog: oldLog.path, checkpoint: signed)
    }
}
