import ClewCore
import Crypto
public import Foundation

/// A SHA-256 hash in the ledger's Merkle tree (RFC 6962 / RFC 9162 shape), stored inline.
public struct MerkleHash: Hashable, Sendable, CustomStringConvertible {
    private var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0, d: UInt64 = 0

    public static let byteCount = 32

    init() {}

    /// Copies 32 bytes; throws if `bytes` has another length.
    public init(bytes: some Collection<UInt8>) throws {
        guard bytes.count == 32 else {
            throw LedgerError(.invalidInput, "a hash must be 32 bytes, got \(bytes.count)")
        }
        withUnsafeMutableBytes { dst in dst.copyBytes(from: bytes) }
    }

    /// Parses 64 hex digits.
    public init(hex: String) throws {
        guard hex.utf8.count == 64 else { throw LedgerError(.invalidInput, "a hash must be 64 hex digits, got \(hex.utf8.count)") }
        guard let bytes = Hex.bytes(hex) else { throw LedgerError(.invalidInput, "\(hex) is not a hex hash") }
        try self.init(bytes: bytes)
    }

    init(_ digest: SHA256Digest) {
        withUnsafeMutableBytes { dst in digest.withUnsafeBytes { dst.copyMemory(from: $0) } }
    }

    public func withUnsafeBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try Swift.withUnsafeBytes(of: self) { try body($0) }
    }

    mutating func withUnsafeMutableBytes<T>(_ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows -> T {
        try Swift.withUnsafeMutableBytes(of: &self) { try body($0) }
    }

    /// The 32 bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Lowercase hex.
    public var hex: String { withUnsafeBytes { $0.hex } }

    public var description: String { hex }

    /// First four bytes, as stored in each record's tag.
    var tag: UInt32 { UInt32(truncatingIfNeeded: a) }
}

/// RFC 6962 hashing and proofs, independent of storage.
///
/// Leaves are `SHA-256(0x00 || canonical event bytes)`, interior nodes `SHA-256(0x01 || left || right)`;
/// a tree of `n` leaves splits at the largest power of two below `n`.
public enum Merkle {
    /// The hash of the empty tree: SHA-256 of no bytes.
    public static let emptyRoot = SHA256State().finalizedCopy

    /// A leaf hasher fed with 0x00 already, to which callers add the canonical bytes.
    static let leafHasher: SHA256State = {
        var h = SHA256State()
        withUnsafeBytes(of: UInt8(0)) { h.update($0) }
        return h
    }()

    /// The leaf hash of canonical event bytes.
    public static func leafHash(_ canonical: some DataProtocol) -> MerkleHash {
        var h = leafHasher
        for region in canonical.regions { region.withUnsafeBytes { h.update($0) } }
        return h.finalize()
    }

    /// The interior node over two children.
    public static func nodeHash(_ left: MerkleHash, _ right: MerkleHash) -> MerkleHash {
        var h = SHA256State()
        withUnsafeBytes(of: UInt8(1)) { h.update($0) }
        left.withUnsafeBytes { h.update($0) }
        right.withUnsafeBytes { h.update($0) }
        return h.finalize()
    }

    /// Largest power of two strictly below `n` (n >= 2).
    static func split(_ n: UInt64) -> UInt64 {
        precondition(n >= 2, "split needs at least two leaves")
        return 1 << (63 - (n - 1).leadingZeroBitCount)
    }

    /// The root of leaves `[lo, hi)` given any way to get subtree hashes (`subtree(lo, hi)`), used so
    /// proofs can read stored nodes instead of rehashing the whole log.
    static func inclusionPath(
        index: UInt64, lo: UInt64, hi: UInt64,
        subtree: (UInt64, UInt64) throws -> MerkleHash
    ) rethrows -> [MerkleHash] {
        let n = hi - lo
        if n <= 1 { return [] }
        let k = split(n)
        if index - lo < k {
            return try inclusionPath(index: index, lo: lo, hi: lo + k, subtree: subtree) + [subtree(lo + k, hi)]
        }
        return try inclusionPath(index: index, lo: lo + k, hi: hi, subtree: subtree) + [subtree(lo, lo + k)]
    }

    /// RFC 6962 SUBPROOF(m, D[lo:hi], b).
    static func consistencyPath(
        m: UInt64, lo: UInt64, hi: UInt64, complete: Bool,
        subtree: (UInt64, UInt64) throws -> MerkleHash
    ) rethrows -> [MerkleHash] {
        let n = hi - lo
        if m == n { return complete ? [] : [try subtree(lo, hi)] }
        let k = split(n)
        if m <= k {
            return try consistencyPath(m: m, lo: lo, hi: lo + k, complete: complete, subtree: subtree)
                + [subtree(lo + k, hi)]
        }
        return try consistencyPath(m: m - k, lo: lo + k, hi: hi, complete: false, subtree: subtree)
            + [subtree(lo, lo + k)]
    }

    /// Checks an inclusion proof (RFC 9162 §2.1.3.2).
    public static func verifyInclusion(
        leaf: MerkleHash, index: UInt64, treeSize: UInt64, path: [MerkleHash], root: MerkleHash
    ) -> Bool {
        guard index < treeSize else { return false }
        var fn = index
        var sn = treeSize - 1
        var r = leaf
        for p in path {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// Checks a consistency proof between two tree sizes (RFC 9162 §2.1.4.2).
    public static func verifyConsistency(
        oldSize: UInt64, newSize: UInt64, oldRoot: MerkleHash, newRoot: MerkleHash, path: [MerkleHash]
    ) -> Bool {
        if oldSize > newSize { return false }
        if oldSize == newSize { return path.isEmpty && oldRoot == newRoot }
        if oldSize == 0 { return path.isEmpty }
        if path.isEmpty { return false }
        var path = path
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == oldRoot && sr == newRoot && sn == 0
    }
}

/// The right edge of a growing tree: the roots of its complete subtrees, largest first (a binary
/// counter of perfect subtrees). Appending a leaf merges equal-sized neighbours; the root of the whole
/// tree folds the edge from the right.
struct MerkleFrontier: Sendable, Equatable {
    struct Node: Sendable, Equatable {
        var level: Int
        var hash: MerkleHash
    }

    private(set) var nodes: [Node] = []
    private(set) var size: UInt64 = 0

    init() {}

    init(size: UInt64, nodes: [Node]) {
        self.size = size
        self.nodes = nodes
    }

    /// Adds leaf number `size`; calls `completed(level, index, hash)` for every perfect subtree the leaf
    /// completes (level >= 1), so the store can keep the ones it wants.
    mutating func append(_ leaf: MerkleHash, completed: (Int, UInt64, MerkleHash) throws -> Void) rethrows {
        nodes.append(Node(level: 0, hash: leaf))
        size += 1
        while nodes.count >= 2, nodes[nodes.count - 1].level == nodes[nodes.count - 2].level {
            let right = nodes.removeLast()
            let left = nodes.removeLast()
            let merged = Node(level: left.level + 1, hash: Merkle.nodeHash(left.hash, right.hash))
            nodes.append(merged)
            try completed(merged.level, (size >> UInt64(merged.level)) - 1, merged.hash)
        }
    }

    /// The RFC 6962 root of the tree so far.
    var root: MerkleHash {
        guard var r = nodes.last?.hash else { return Merkle.emptyRoot }
        for node in nodes.dropLast().reversed() { r = Merkle.nodeHash(node.hash, r) }
        return r
    }
}
