import ClewCore
import Foundation

extension Ledger {
    /// The Merkle root of the first `size` events (the whole log when nil), with the size used.
    public func root(atSize size: UInt64? = nil) throws -> (size: UInt64, hash: MerkleHash) {
        try store.env.read { txn in
            let last = try store.lastSeq(txn)
            let n = size ?? last
            guard n <= last else {
                throw LedgerError(.outOfRange, "tree size \(n) is beyond the log, which has \(last) events")
            }
            if n == 0 { return (0, Merkle.emptyRoot) }
            var reader = BlockReader(store: store, txn: txn)
            return (n, try store.subtreeHash(0, n, &reader))
        }
    }

    /// Proof that event `seq` is in the tree of `treeSize` events (the whole log when nil).
    public func inclusionProof(seq: UInt64, treeSize: UInt64? = nil) throws -> InclusionProof {
        try store.env.read { txn in
            let last = try store.lastSeq(txn)
            let n = treeSize ?? last
            guard n <= last else { throw LedgerError(.outOfRange, "tree size \(n) is beyond the log, which has \(last) events") }
            guard seq >= 1, seq <= n else {
                throw LedgerError(.outOfRange, "event \(seq) is not in a tree of \(n) events (seqs run 1...\(n))")
            }
            var reader = BlockReader(store: store, txn: txn)
            let index = seq - 1
            let path = try Merkle.inclusionPath(index: index, lo: 0, hi: n) { lo, hi in
                try store.subtreeHash(lo, hi, &reader)
            }
            let leaf = try store.leafHash(index: index, &reader)
            let root = try store.subtreeHash(0, n, &reader)
            return InclusionProof(
                seq: seq, leafIndex: index, treeSize: n, leafHash: leaf.hex, rootHash: root.hex, path: path.map(\.hex))
        }
    }

    /// Proof that the tree of `oldSize` events is a prefix of the tree of `newSize` events.
    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64? = nil) throws -> ConsistencyProof {
        try store.env.read { txn in
            let last = try store.lastSeq(txn)
            let n = newSize ?? last
            guard n <= last else { throw LedgerError(.outOfRange, "tree size \(n) is beyond the log, which has \(last) events") }
            guard oldSize <= n else {
                throw LedgerError(.outOfRange, "the old tree size \(oldSize) is larger than the new one, \(n)")
            }
            var reader = BlockReader(store: store, txn: txn)
            let subtree = { (lo: UInt64, hi: UInt64) throws -> MerkleHash in
                try self.store.subtreeHash(lo, hi, &reader)
            }
            let path = oldSize == 0 || oldSize == n ? [] : try Merkle.consistencyPath(m: oldSize, lo: 0, hi: n, complete: true, subtree: subtree)
            let oldRoot = oldSize == 0 ? Merkle.emptyRoot : try subtree(0, oldSize)
            let newRoot = n == 0 ? Merkle.emptyRoot : try subtree(0, n)
            return ConsistencyProof(oldSize: oldSize, newSize: n, oldRoot: oldRoot.hex, newRoot: newRoot.hex, path: path.map(\.hex))
        }
    }

    /// Signs the current tree (size and root) and stores the checkpoint in the ledger.
    ///
    /// The key never enters the ledger; keep its public half where verifiers can find it. Over a shared
    /// log, the replica is brought up to date first and the checkpoint of its tree (whose root the
    /// shared log recorded) is stored in the shared log, where every host's replica finds it.
    @discardableResult
    public func checkpoint(signedWith key: CheckpointSigningKey) async throws -> SignedCheckpoint {
        if refusesAppends { throw LedgerError(.readOnly, "the ledger was opened read-only") }
        guard let log = upstream else { return try signCheckpoint(key) }
        try await pull()
        let signed = try signCheckpoint(key)
        try await log.storeCheckpoint(signed)
        return signed
    }

    /// Copies the shared log's checkpoints (those within the replica's tree) into the replica, so
    /// ``checkpoints()``, `verify` and proofs see every host's. Opening a replica does it, and so does
    /// ``replicate(every:failed:copied:)`` on each of its timed rounds. Returns how many were new or
    /// changed. Nothing to do for an LMDB ledger.
    @discardableResult
    public func pullCheckpoints() async throws -> Int {
        guard let log = upstream else { return 0 }
        let shared = try await log.checkpoints()
        if shared.isEmpty { return 0 }
        let size = try lastSeq
        let mine = Dictionary(try checkpoints().map { ($0.treeSize, $0) }, uniquingKeysWith: { $1 })
        let new = shared.filter { $0.treeSize <= size && mine[$0.treeSize] != $0 }
        if new.isEmpty { return 0 }
        try store.env.write { txn in
            for checkpoint in new { try putCheckpoint(checkpoint, txn) }
        }
        return new.count
    }

    private func putCheckpoint(_ checkpoint: SignedCheckpoint, _ txn: Transaction) throws {
        let json = try JSONEncoder().encode(checkpoint)
        _ = try withUnsafeBytes(of: checkpoint.treeSize.bigEndian) { k in
            try json.withUnsafeBytes { try txn.put(store.checkpoints, k, $0) }
        }
    }

    func signCheckpoint(_ key: CheckpointSigningKey) throws -> SignedCheckpoint {
        try store.env.write { txn in
            let n = try store.lastSeq(txn)
            var reader = BlockReader(store: store, txn: txn)
            let root = n == 0 ? Merkle.emptyRoot : try store.subtreeHash(0, n, &reader)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let publicKey = key.publicKey
            var checkpoint = SignedCheckpoint(
                origin: id, treeSize: n, rootHash: root.hex, time: formatter.string(from: Date()),
                keyID: publicKey.keyID, publicKey: publicKey.base64, signature: "")
            checkpoint.signature = try key.sign(Data(checkpoint.body.utf8)).base64EncodedString()
            try putCheckpoint(checkpoint, txn)
            return checkpoint

        }
    }

    /// Stored checkpoints, oldest first (one per tree size; re-signing a size replaces it).
    public func checkpoints() throws -> [SignedCheckpoint] {
        try store.env.read { txn in
            try txn.withCursor(store.checkpoints) { c in
                var out: [SignedCheckpoint] = []
                var entry = try c.first()
                while let e = entry {
                    let size = e.key.count == 8 ? e.key.bigEndianUInt64 : 0
                    do { out.append(try JSONDecoder().decode(SignedCheckpoint.self, from: Data(e.value))) } catch {
                        throw LedgerError(.corrupted, "the stored checkpoint at tree size \(size) does not decode: \(error)")
                    }
                    entry = try c.next()
                }
                return out
            }
        }
    }
}
