public import Foundation
import ClewCore
import Crypto

/// SHA-256 content digests as lowercase hex, the identifiers of values, chunks and definitions.
public enum ContentDigest {
    /// SHA-256 of `bytes`, 64 hex digits.
    public static func sha256<D: DataProtocol>(_ bytes: D) -> String { Array(SHA256.hash(data: bytes)).hex }

    /// SHA-256 of a file's bytes, read in 1 MiB pieces; nil when it cannot be read.
    public static func sha256(file url: URL) -> String? {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let piece: Data?
            do { piece = try handle.read(upToCount: 1 << 20) } catch { return nil }
            guard let piece, !piece.isEmpty else { break }
            hasher.update(data: piece)
        }
        return Array(hasher.finalize()).hex
    }
}
