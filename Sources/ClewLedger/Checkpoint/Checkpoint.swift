import ClewCore
import Crypto
public import Foundation

/// A private Ed25519 key that signs checkpoints. Keep it outside the ledger directory: a key stored
/// beside the log would let whoever can rewrite the log re-sign it.
///
/// ```swift
/// let key = CheckpointSigningKey.generate()
/// try key.write(to: URL(fileURLWithPath: "/etc/clew/signing.key"))   // also writes signing.key.pub
/// let checkpoint = try ledger.checkpoint(signedWith: key)
/// ```
public struct CheckpointSigningKey: @unchecked Sendable {
    // @unchecked Sendable: the wrapped key is an immutable value (swift-crypto does not mark it Sendable).
    let key: Curve25519.Signing.PrivateKey
    static let header = "clew-signing-key/ed25519"

    /// A fresh random key.
    public static func generate() -> CheckpointSigningKey { .init(key: .init()) }

    init(key: Curve25519.Signing.PrivateKey) { self.key = key }

    /// Reads a key written by ``write(to:)``.
    /// - Throws: ``LedgerError/Code/invalidInput`` naming the file when it is not such a key.
    public init(contentsOf url: URL) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw LedgerError(.invalidInput, "cannot read the signing key \(url.path)")
        }
        let lines = text.split(whereSeparator: \.isNewline)
        guard lines.count >= 2, lines[0] == Self.header, let raw = Data(base64Encoded: String(lines[1])),
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else {
            throw LedgerError(.invalidInput, "\(url.path) is not a Clew signing key (expected '\(Self.header)' and a base64 key)")
        }
        self.key = key
    }

    /// Writes the key (mode 0600) and its public half to `url.pub`. Refuses to overwrite a key.
    public func write(to url: URL) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path) {
            throw LedgerError(.alreadyExists, "\(url.path) already exists; refusing to overwrite a signing key")
        }
        let text = "\(Self.header)\n\(key.rawRepresentation.base64EncodedString())\n"
        guard fm.createFile(atPath: url.path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw LedgerError(.invalidInput, "cannot write the signing key to \(url.path)")
        }
        try Data((publicKey.base64 + "\n").utf8).write(to: url.appendingPathExtension("pub"))
    }

    /// The public half, which verifiers keep.
    public var publicKey: CheckpointPublicKey { CheckpointPublicKey(key: key.publicKey) }

    func sign(_ message: Data) throws -> Data { try key.signature(for: message) }
}

/// An Ed25519 public key that checkpoint signatures are checked against.
public struct CheckpointPublicKey: @unchecked Sendable, Hashable {
    // @unchecked Sendable: the wrapped key is an immutable value (swift-crypto does not mark it Sendable).
    let key: Curve25519.Signing.PublicKey

    init(key: Curve25519.Signing.PublicKey) { self.key = key }

    /// Parses the base64 raw key (the contents of a `.pub` file).
    public init(base64: String) throws {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { throw LedgerError(.invalidInput, "not a base64 Ed25519 public key: \(base64.prefix(60))") }
        self.key = key
    }

    /// Reads a `.pub` file written next to a signing key.
    public init(contentsOf url: URL) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw LedgerError(.invalidInput, "cannot read the public key \(url.path)")
        }
        try self.init(base64: text)
    }

    public var base64: String { key.rawRepresentation.base64EncodedString() }

    /// Short identifier: first 8 bytes of SHA-256 of the raw key, hex.
    public var keyID: String {
        SHA256.hash(data: key.rawRepresentation).prefix(8).hex
    }

    public static func == (a: Self, b: Self) -> Bool { a.key.rawRepresentation == b.key.rawRepresentation }
    public func hash(into hasher: inout Hasher) { hasher.combine(key.rawRepresentation) }
}

/// A signed statement "the log of ledger `origin` had `treeSize` events with Merkle root `rootHash`".
///
/// The signed message is the UTF-8 text of ``body``, so anyone can check it with any Ed25519 library.
public struct SignedCheckpoint: Codable, Sendable, Hashable {
    public var origin: String
    public var treeSize: UInt64
    public var rootHash: String
    /// ISO 8601 UTC time of signing.
    public var time: String
    public var keyID: String
    public var publicKey: String
    /// Base64 Ed25519 signature of ``body``.
    public var signature: String

    enum CodingKeys: String, CodingKey {
        case origin, treeSize = "tree_size", rootHash = "root_hash", time, keyID = "key_id"
        case publicKey = "public_key", signature
    }

    /// The exact text that is signed.
    public var body: String { "clew-checkpoint/v1\n\(origin)\n\(treeSize)\n\(rootHash)\n\(time)\n" }

    /// Whether the signature checks with the embedded key and, if given, that key is the trusted one.
    public func hasValidSignature(trusting trusted: CheckpointPublicKey? = nil) -> Bool {
        guard let key = try? CheckpointPublicKey(base64: publicKey), let sig = Data(base64Encoded: signature) else {
            return false
        }
        if let trusted, trusted != key { return false }
        return key.key.isValidSignature(sig, for: Data(body.utf8))
    }
}

/// An RFC 6962 inclusion proof for one event.
public struct InclusionProof: Codable, Sendable, Hashable {
    public var seq: UInt64
    public var leafIndex: UInt64
    public var treeSize: UInt64
    public var leafHash: String
    public var rootHash: String
    public var path: [String]

    enum CodingKeys: String, CodingKey {
        case seq, leafIndex = "leaf_index", treeSize = "tree_size", leafHash = "leaf_hash", rootHash = "root_hash", path
    }

    /// Recomputes the root from the leaf and the path (RFC 9162 §2.1.3.2).
    public func verify() -> Bool {
        guard let leaf = try? MerkleHash(hex: leafHash), let root = try? MerkleHash(hex: rootHash),
            let hashes = try? path.map({ try MerkleHash(hex: $0) })
        else { return false }
        return Merkle.verifyInclusion(leaf: leaf, index: leafIndex, treeSize: treeSize, path: hashes, root: root)
    }
}

/// An RFC 6962 consistency proof: the tree of `oldSize` is a prefix of the tree of `newSize`.
public struct ConsistencyProof: Codable, Sendable, Hashable {
    public var oldSize: UInt64
    public var newSize: UInt64
    public var oldRoot: String
    public var newRoot: String
    public var path: [String]

    enum CodingKeys: String, CodingKey {
        case oldSize = "old_size", newSize = "new_size", oldRoot = "old_root", newRoot = "new_root", path
    }

    /// Checks the proof (RFC 9162 §2.1.4.2).
    public func verify() -> Bool {
        guard let a = try? MerkleHash(hex: oldRoot), let b = try? MerkleHash(hex: newRoot),
            let hashes = try? path.map({ try MerkleHash(hex: $0) })
        else { return false }
        return Merkle.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: a, newRoot: b, path: hashes)
    }
}
