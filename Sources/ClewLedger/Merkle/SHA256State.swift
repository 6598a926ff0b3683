internal import CCrypto
import Foundation

/// SHA-256 whose whole state is a value (OpenSSL's `SHA256_CTX`, from Debian's libcrypto): hashing
/// allocates nothing, and a state already fed with a prefix (a leaf's 0x00 and envelope) is copied with
/// a memcpy. The ledger hashes each event three times (payload, leaf, its share of interior nodes);
/// swift-crypto's `SHA256` boxes its state and copies the box for every leaf, which cost about 2× the
/// time of the hashing itself on these 100–300-byte inputs (`clew bench ledger`, docs/benchmarks.md).
struct SHA256State: Sendable {
    private var context = SHA256_CTX()

    init() {
        // SHA256_Init cannot fail for a valid pointer; its status is ignored.
        _ = SHA256_Init(&context)
    }

    /// Feeds `bytes`.
    @inline(__always)
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        _ = SHA256_Update(&context, bytes.baseAddress, bytes.count)
    }

    /// The digest of everything fed (this state is finished; copy it first to go on feeding).
    @inline(__always)
    mutating func finalize() -> MerkleHash {
        var out = MerkleHash()
        out.withUnsafeMutableBytes { _ = SHA256_Final($0.baseAddress!.assumingMemoryBound(to: UInt8.self), &context) }
        return out
    }

    /// The digest of everything fed so far, this state left as it was.
    var finalizedCopy: MerkleHash {
        var copy = self
        return copy.finalize()
    }

    /// SHA-256 of `bytes`.
    static func hash(_ bytes: UnsafeRawBufferPointer) -> MerkleHash {
        var state = SHA256State()
        state.update(bytes)
        return state.finalize()
    }

    /// SHA-256 of contiguous `bytes` (`Data`, `[UInt8]`).
    static func hash(_ bytes: some ContiguousBytes) -> MerkleHash {
        bytes.withUnsafeBytes { hash($0) }
    }
}
