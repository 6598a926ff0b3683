internal import CLMDB
import ClewCore
import Crypto
import Foundation

/// The outcome of ``Ledger/verify(trusting:progress:)``.
public struct VerifyReport: Codable, Sendable {
    /// One thing found wrong.
    public struct Problem: Codable, Sendable, Hashable {
        /// The seq concerned (for a Merkle node, the first event it covers), if any.
        public var seq: UInt64?
        /// A short kind: `record` (a block, or one event's envelope, that does not decode), `tag`, `payload`, `index`, `blob`,
        /// `merkle`, `checkpoint`, `sequence`.
        public var kind: String
        public var message: String
    }

    public var events: UInt64 = 0
    public var rootHash: String = ""
    public var merkleNodesChecked = 0
    public var blobsChecked = 0
    /// Payloads found erased (by retention or an erasure request): their events still prove, their bytes are gone.
    public var erasedPayloads: UInt64 = 0
    public var checkpointsChecked = 0
    /// Problems in log order; capped at ``Ledger/maxReportedProblems``.
    public var problems: [Problem] = []
    /// The lowest seq with a problem.
    public var firstBadSeq: UInt64?

    public var isValid: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case events, rootHash = "root_hash", merkleNodesChecked = "merkle_nodes_checked"
        case blobsChecked = "blobs_checked", erasedPayloads = "erased_payloads", checkpointsChecked = "checkpoints_checked", problems
        case firstBadSeq = "first_bad_seq", isValid = "ok"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(isValid, forKey: .isValid)
        try c.encode(events, forKey: .events)
        try c.encode(rootHash, forKey: .rootHash)
        try c.encode(merkleNodesChecked, forKey: .merkleNodesChecked)
        try c.encode(blobsChecked, forKey: .blobsChecked)
        try c.encode(erasedPayloads, forKey: .erasedPayloads)
        try c.encode(checkpointsChecked, forKey: .checkpointsChecked)
        try c.encodeIfPresent(firstBadSeq, forKey: .firstBadSeq)
        try c.encode(problems, forKey: .problems)
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        events = try c.decode(UInt64.self, forKey: .events)
        rootHash = try c.decode(String.self, forKey: .rootHash)
        merkleNodesChecked = try c.decode(Int.self, forKey: .merkleNodesChecked)
        blobsChecked = try c.decode(Int.self, forKey: .blobsChecked)
        erasedPayloads = try c.decodeIfPresent(UInt64.self, forKey: .erasedPayloads) ?? 0
        checkpointsChecked = try c.decode(Int.self, forKey: .checkpointsChecked)
        firstBadSeq = try c.decodeIfPresent(UInt64.self, forKey: .firstBadSeq)
        problems = try c.decode([Problem].self, forKey: .problems)
    }

    /// The last seq whose record itself was found bad (undecodable or not matching its tag).
    var lastBadRecord: UInt64?

    mutating func add(_ seq: UInt64?, _ kind: String, _ message: String) {
        if let seq, kind == "record" || kind == "tag" { lastBadRecord = max(lastBadRecord ?? seq, seq) }
        if let seq { firstBadSeq = min(firstBadSeq ?? seq, seq) }
        if problems.count < Ledger.maxReportedProblems { problems.append(Problem(seq: seq, kind: kind, message: message)) }
    }
}

extension Ledger {
    static let maxReportedProblems = 100

    /// Recomputes everything from the stored bytes: every record decodes and matches its hash tag,
    /// seqs run 1...n with no gap, every event is in the stream index, every blob matches its address,
    /// every stored Merkle node matches the tree rebuilt from the events, and every stored checkpoint
    /// has a valid signature (by `trusted`, when given) over the root recomputed at its size.
    ///
    /// LMDB keeps no page checksums, so this is also the disk-corruption check.
    /// - Parameter progress: called now and then with (events checked, events in the log).
    public func verify(
        trusting trusted: CheckpointPublicKey? = nil,
        progress: ((UInt64, UInt64) -> Void)? = nil
    ) throws -> VerifyReport {
        var report = VerifyReport()
        let total = try lastSeq
        let storedCheckpoints: [SignedCheckpoint]
        do { storedCheckpoints = try checkpoints() } catch {
            report.add(nil, "checkpoint", "\(error)")
            storedCheckpoints = []
        }
        var rootsAt: [UInt64: MerkleHash] = [:]
        let checkpointSizes = Set(storedCheckpoints.map(\.treeSize))
        if checkpointSizes.contains(0) { rootsAt[0] = Merkle.emptyRoot }

        var frontier = MerkleFrontier()
        var treeBroken = false
        var expected: UInt64 = 1
        var cache = StringCache()
        var done = false
        while !done {
            done = try store.env.read { txn in
                var reader = BlockReader(store: store, txn: txn)
                return try txn.withCursor(store.streams) { index in try txn.withCursor(store.blocks) { c in
                    var entry = try c.seek(expected)
                    var n = 0
                    while let e = entry {
                        guard e.key.count == 8 else {
                            report.add(expected, "sequence", "a key of \(e.key.count) bytes follows event \(expected - 1) in the block table")
                            return true
                        }
                        let first = e.key.bigEndianUInt64
                        if first != expected {
                            report.add(expected, "sequence", "events \(expected)-\(first - 1) are missing (the log jumps from \(expected - 1) to \(first))")
                            treeBroken = true
                        }
                        do { try reader.load(record: e.value, first: first) } catch {
                            // The block's events cannot be read: name them all, and go on after them when the
                            // header still says how many there are.
                            report.add(first, "record", "\(error)")
                            treeBroken = true
                            guard let k = try? Block.parse(e.value, first: first).count else { return true }
                            report.lastBadRecord = first + UInt64(k) - 1
                            expected = first + UInt64(k)
                            n += k
                            entry = try c.next()
                            continue
                        }
                        let count = reader.count
                        for i in 0..<count {
                            let seq = first + UInt64(i)
                            let leaf = check(i, of: reader, txn, &index, &report, &cache)
                            guard !treeBroken else { continue }
                            try frontier.append(leaf) { level, index, hash in
                                guard level >= LogStore.storedMinLevel else { return }
                                report.merkleNodesChecked += 1
                                let stored = try store.storedNode(level: level, index: index, txn)
                                let first = index << UInt64(level) + 1
                                let last = (index + 1) << UInt64(level)
                                // A node over a record already found bad differs as a consequence; only
                                // a node over good records points at damage of its own (or tampering
                                // that rewrote records and their tags together).
                                if stored != hash, (report.lastBadRecord ?? 0) < first {
                                    report.add(
                                        first, "merkle",
                                        stored == nil
                                            ? "the Merkle node over events \(first)-\(last) is missing"
                                            : "the stored Merkle node over events \(first)-\(last) differs from the one recomputed from the events")
                                }
                            }
                            if checkpointSizes.contains(seq) { rootsAt[seq] = frontier.root }
                        }
                        expected = first + UInt64(count)
                        n += count
                        if n >= Self.scanChunk { return false }
                        entry = try c.next()
                    }
                    return true
                } }
            }
            progress?(expected - 1, total)
        }
        report.events = expected - 1
        report.rootHash = treeBroken ? "" : frontier.root.hex

        try store.env.read { txn in
            let indexed = try txn.stat(store.streams).entries
            if indexed != Int(report.events) {
                report.add(nil, "index", "the stream index holds \(indexed) entries for \(report.events) events")
            }
            if !treeBroken {
                var expectedNodes = 0
                for level in LogStore.storedMinLevel..<64 { expectedNodes += Int(report.events >> UInt64(level)) }
                let storedNodes = try txn.stat(store.merkle).entries
                if storedNodes != expectedNodes {
                    report.add(nil, "merkle", "the Merkle table holds \(storedNodes) nodes where \(expectedNodes) are expected")
                }
            }
        }

        for checkpoint in storedCheckpoints {
            report.checkpointsChecked += 1
            let size = checkpoint.treeSize
            if checkpoint.origin != id {
                report.add(nil, "checkpoint", "the checkpoint at size \(size) was signed for ledger \(checkpoint.origin), not \(id)")
            }
            if !checkpoint.hasValidSignature(trusting: trusted) {
                report.add(
                    nil, "checkpoint",
                    trusted != nil && checkpoint.hasValidSignature()
                        ? "the checkpoint at size \(size) is signed by key \(checkpoint.keyID), not the trusted key \(trusted!.keyID)"
                        : "the checkpoint at size \(size) has an invalid signature")
            }
            if size > report.events {
                report.add(
                    report.events + 1, "checkpoint",
                    "a checkpoint vouches for \(size) events but the log has \(report.events): events \(report.events + 1)-\(size) were lost")
            } else if let root = rootsAt[size], root.hex != checkpoint.rootHash {
                report.add(size, "checkpoint", "the root recomputed at size \(size) differs from the signed checkpoint's root")
            }
        }
        report.problems.sort { ($0.seq ?? .max) < ($1.seq ?? .max) }
        return report
    }

    /// Checks the event at `i` of the decoded block: its hash tag, its stream index entry, its payload
    /// against the SHA-256 its envelope names (inline or blob); returns its leaf hash.
    private func check(
        _ i: Int, of reader: BlockReader, _ txn: Transaction, _ index: inout Cursor, _ report: inout VerifyReport,
        _ cache: inout StringCache
    ) -> MerkleHash {
        let seq = reader.first + UInt64(i)
        let leaf = reader.leafHash(i)
        if leaf.tag != reader.tags[i] {
            report.add(seq, "tag", "event \(seq) does not match its stored hash tag: its bytes changed after it was written")
        }
        do {
            // The envelope as stored: in state 3 its digest is the payload's own, already hashed for the
            // leaf above, so the tag and the Merkle tree are what check those bytes.
            let span = reader.spans[i]
            let d = try reader.envelope(i, cache: &cache)
            var stream = d.stream
            let indexed = try stream.withUTF8 { s in
                try withUnsafeBytes(of: seq.bigEndian) { v in
                    try index.seek(UnsafeRawBufferPointer(s), value: v).map { $0.value.bigEndianUInt64 == seq } ?? false
                }
            }
            if !indexed { report.add(seq, "index", "event \(seq) is missing from the index of stream \(d.stream)") }
            if span.state == .inlineDigestImplied { return leaf }
            guard let digest = d.payloadRef else {
                report.add(seq, "payload", "event \(seq) names no payload SHA-256")
                return leaf
            }
            switch span.state {
            case .inlineDigestImplied:
                break
            case .inline:
                let actual = reader.body.withUnsafeBytes { SHA256State.hash(UnsafeRawBufferPointer(rebasing: $0[span.payload])).bytes }
                if actual != digest { report.add(seq, "payload", "the payload of event \(seq) does not match the SHA-256 its event commits to") }
            case .blob:
                report.blobsChecked += 1
                do { _ = try store.blob(digest, seq: seq, txn) } catch { report.add(seq, "blob", "\(error)") }
            case .erased:
                report.erasedPayloads += 1
            }
        } catch {
            report.add(seq, "record", "\(error)")
        }
        return leaf
    }
}
